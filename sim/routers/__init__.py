"""The customer's router: a real routing daemon in the ``cust`` node, from a template or the user's file.

"Bring your own config and see what Cloudflare's side makes of it" is the main use of the lab, so
the customer side is never simulated: it is the real daemon the customer runs, with their real
configuration. Which daemons exist is the registry's business (:mod:`cnilab.sim.routers.registry`, data in
``sim/data/router-kinds.yaml``); this module is what the orchestrator calls, without naming a kind::

    check_customer_config(plan)   # before anything is built: a bad user config fails here
    start_customer(lab)           # after the cust node and its interfaces exist
    customer_routes(lab) -> str   # the daemon's RIB view
    customer_bgp(lab) -> list[dict]
    stop_customer(lab)            # optional: teardown of the namespace also ends it

``customer_bgp`` returns one dict per BGP neighbour, the fields of
:class:`~cnilab.sim.routers.base.BgpNeighbor` (peer, remote_as, state, received, sent, session, timers...).
The MSS clamp Linux routers apply outside the daemon is :mod:`cnilab.sim.routers.mss`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnilab.sim.routers.base import CustomerRouter
from cnilab.sim.routers.common import (
    EXTRA_KEY,
    RouterError,
    RouterLab,
    UserConfigError,
    extra_key,
    template_context,
)
from cnilab.sim.routers.registry import router_class, sniff_kind
from cnilab.sim.topology.plan import CUSTOMER, LabPlan


def check_customer_config(plan: LabPlan) -> None:
    """Refuse a user config the daemon itself would refuse, before any namespace exists.

    Raises :class:`UserConfigError` naming the file and quoting the daemon's parser.
    """
    router = plan.customer_router
    cls = router_class(router.kind)
    if router.config is None or cls is None:
        return
    path = Path(router.config)
    try:
        looks = sniff_kind(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise UserConfigError(path, [f"customer.router.config = '{path}': cannot read it ({exc.strerror})"]) from None
    if looks is not None and looks != router.kind:
        # The other daemon's parser would print dozens of lines about the first foreign keyword.
        other = router_class(looks)
        raise UserConfigError(path, [
            f"customer.router.kind = '{router.kind}', but {path} looks like {other.info().title.split(' (')[0]} "
            f"(its syntax): use kind {looks} (--kind {looks}), or the {cls.info().title.split(' (')[0]} config"])
    cls.validate(path)


def router_for(lab: RouterLab, node: str = CUSTOMER) -> CustomerRouter | None:
    """The customer router object of ``lab`` (None for kind ``external``: nothing runs in the lab)."""
    cls = router_class(lab.plan.customer_router.kind)
    return cls(lab, node) if cls is not None else None


def start_customer(lab: RouterLab) -> None:
    """Start the customer's daemon in ``cust`` and apply the MSS clamp. Kind ``external``: nothing.

    On failure everything this call started is stopped again before the error propagates.
    """
    from cnilab.sim.routers.mss import apply_mss_clamp

    router = router_for(lab)
    if router is None:
        return
    check_customer_config(lab.plan)
    cfg = lab.plan.customer_router.config
    router.start(Path(cfg).read_text(encoding="utf-8") if cfg else None, source=str(cfg) if cfg else "template")
    try:
        mss = apply_mss_clamp(lab)
    except Exception:
        router.stop()
        raise
    lab.state.extra[EXTRA_KEY]["mss_clamp"] = mss
    lab.save()


def stop_customer(lab: RouterLab) -> None:
    """Stop the daemons ``start_customer`` started and remove the clamp. Idempotent."""
    from cnilab.sim.routers.mss import remove_mss_clamp

    router = router_for(lab)
    if router is not None:
        router.stop()
        remove_mss_clamp(lab)


def customer_routes(lab: RouterLab) -> str:
    """The daemon's own RIB view (``show ip route`` + ``show ipv6 route`` / ``birdc show route`` / ...)."""
    router = router_for(lab)
    if router is None:
        return "customer router is external: its routes are on your router\n"
    return router.routes()


def cli_argv(lab: RouterLab, node: str, argv: list[str]) -> list[str]:
    """Point a daemon CLI typed by a user (``vtysh``, ``birdc``, ``gobgp``) at the lab's own sockets.

    The lab's daemons keep their sockets in the lab directory, not the system paths, so a plain
    ``vtysh`` in the node would find no daemon; ``cnilab exec cust -- vtysh ...`` should.
    """
    rec = (lab.state.extra or {}).get(extra_key(node))
    if not argv or not rec or not rec.get("dir") or not rec.get("kind"):
        return argv
    cls = router_class(rec["kind"])
    return cls.cli_argv(argv, Path(rec["dir"])) if cls is not None else argv


def customer_bgp(lab: RouterLab) -> list[dict[str, Any]]:
    """BGP neighbours as the customer's daemon sees them (fields of BgpNeighbor, as dicts)."""
    router = router_for(lab)
    if router is None:
        return []
    return [n.model_dump() for n in router.bgp()]


__all__ = [
    "EXTRA_KEY",
    "CustomerRouter",
    "RouterError",
    "RouterLab",
    "UserConfigError",
    "check_customer_config",
    "cli_argv",
    "customer_bgp",
    "customer_routes",
    "router_for",
    "start_customer",
    "stop_customer",
    "template_context",
]
