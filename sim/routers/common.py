"""Helpers every router kind shares: the lab interface it needs, errors, process records, templates.

Kept apart from :mod:`cnilab.sim.routers` (the orchestrator entry points) so a kind module can import them
without importing the registry that imports it.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from cnilab.sim.handle import LabHandle
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.load import ConfigError
from cnilab.sim.topology.plan import CUSTOMER, PEER, TRANSIT, LabPlan

SUN_PATH_MAX = 107
"""Longest unix socket path the kernel accepts (sun_path is 108 bytes with the NUL)."""

EXTRA_KEY = "customer_router"
"""Key in ``lab.state.extra`` where the customer router records what it started."""


def extra_key(node: str) -> str:
    """``lab.state.extra`` key for the router in ``node`` (``customer_router`` for the customer)."""
    return EXTRA_KEY if node == CUSTOMER else f"router:{node}"


RouterLab = LabHandle
"""Alias kept for the routers package's annotations: the one lab interface is cnilab.sim.handle.LabHandle."""


class RouterError(RuntimeError):
    """The router daemon would not start or answer; the message carries what the daemon said."""


class UserConfigError(ConfigError):
    """The user's own router config was refused by the daemon's own parser (file + daemon message)."""


def template_context(plan: LabPlan, ifname: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Everything the router templates need, computed once so every kind says the same thing.

    Static blackholes anchor the announced aggregates (the usual practice so unused space in an
    aggregate is dropped, not looped), except for prefixes equal to or inside the customer LAN:
    a blackhole there would be more specific than, or shadow, the connected route to the origin.
    """
    cust = plan.node(CUSTOMER)
    lan_nets = [a.network for i in cust.interfaces if i.name.startswith("lan") for a in i.addresses]

    def covered(p: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        return any(p.version == n.version and p.subnet_of(n) for n in lan_nets)  # type: ignore[arg-type]

    announce = list(dict.fromkeys(plan.customer_announce))
    sessions = []
    profiles: dict[str, dict[str, int]] = {}
    for s in plan.sessions:
        name = f"cf_{s.interconnect}_v{s.family}".replace("-", "_")
        prof = None
        if s.bfd:
            prof = f"cnilab-{s.bfd_tx_ms}x{s.bfd_rx_ms}x{s.bfd_multiplier}"
            profiles[prof] = {"tx": s.bfd_tx_ms, "rx": s.bfd_rx_ms, "mult": s.bfd_multiplier}
        sessions.append({
            "name": name, "route_map": f"CNILAB-FROM-CF-{s.interconnect.upper()}-V{s.family}",
            "key": s.key, "interconnect": s.interconnect, "family": s.family,
            "peer": str(s.cf_addr), "local": str(s.cust_addr), "remote_as": s.cf_asn,
            "password": s.customer_md5, "hold": s.hold_time, "keepalive": s.keepalive,
            "local_pref": s.local_pref, "bfd": s.bfd, "bfd_profile": prof, "bfd_tx": s.bfd_tx_ms,
            "bfd_rx": s.bfd_rx_ms, "bfd_mult": s.bfd_multiplier,
            "iface": ifname(s.cust_iface) if ifname else s.cust_iface,
        })
    bfd_ifaces: dict[str, dict[str, int]] = {}
    for s in sessions:
        if s["bfd"]:
            bfd_ifaces[s["iface"]] = {"tx": s["bfd_tx"], "rx": s["bfd_rx"], "mult": s["bfd_mult"]}
    third = {role: _party_addr(plan, node, role) for role, node in (("transit", TRANSIT), ("peer", PEER))}
    transit = third["transit"]
    v4 = [s for s in plan.sessions if s.family == 4]
    router_id = str(v4[0].cust_addr) if v4 else next(
        str(a.ip) for i in cust.interfaces for a in i.addresses if a.version == 4)
    return {
        "lab": plan.lab, "asn": plan.sessions[0].cust_asn if plan.sessions else None, "router_id": router_id,
        "sessions": sessions, "bfd_profiles": profiles, "bfd_ifaces": bfd_ifaces,
        "announce4": [str(p) for p in announce if p.version == 4],
        "announce6": [str(p) for p in announce if p.version == 6],
        "blackhole4": [str(p) for p in announce if p.version == 4 and not covered(p)],
        "blackhole6": [str(p) for p in announce if p.version == 6 and not covered(p)],
        "transit": transit,
        "transit_asn": _party_asn("transit") if transit else None,
        "peer": third["peer"],
        "peer_asn": _party_asn("peer") if third["peer"] else None,
    }


def _party_addr(plan: LabPlan, node: str, role: str) -> str | None:
    """The third party's IPv4 address on its link to the customer (None: the plan has no such node)."""
    if not any(n.name == node for n in plan.nodes):
        return None
    link = next(lk for lk in plan.links if lk.role == role and CUSTOMER in (lk.a.node, lk.b.node))
    end = link.a if link.a.node == node else link.b
    return next(str(a.ip) for i in plan.node(node).interfaces if i.name == end.iface for a in i.addresses
                if a.version == 4)


def _party_asn(role: str) -> int:
    """The third party's ASN (sim/data/internet-table.yaml): the templates peer with it (cnilab.sim.transit)."""
    from cnilab.sim.transit.table import third_parties

    return getattr(third_parties(), role).asn


def templates() -> jinja2.Environment:
    """The router templates; StrictUndefined so a missing context key fails loudly, not as ''."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def process_dead(rec: ProcessRecord) -> bool:
    if not rec.alive():
        return True
    try:
        return Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


START_TIMEOUT = 15.0
"""How long a daemon may take to open its control socket after it was spawned."""


def wait_started(rec: ProcessRecord, ready: Callable[[], bool], *, what: str, waiting_for: str,
                 log: Callable[[], str], interval: float = 0.05) -> None:
    """Poll ``ready`` until it holds. Fails at once, quoting ``log()``, when the daemon exits instead
    (a config it refuses at start), or when :data:`START_TIMEOUT` passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process_dead(rec):
            raise RouterError(f"{what} exited at start: {log()}")
        if time.monotonic() > deadline:
            raise RouterError(f"{what} did not {waiting_for} within {START_TIMEOUT:.0f}s: {log()}")
        time.sleep(interval)


def check_socket_path(path: Path, daemon: str) -> None:
    """Refuse before starting anything when ``path`` is too long to be a unix socket."""
    if len(str(path)) > SUN_PATH_MAX:
        raise RouterError(f"{daemon} socket path {path} is {len(str(path))} bytes; unix sockets allow "
                          f"{SUN_PATH_MAX}: use a shorter CNILAB_STATE_DIR")


def run_parser(path: Path, argv: list[str], refuser: str, said: Callable[[str], str] | None = None,
               last: int | None = None) -> None:
    """Run a daemon's own config parser (``argv``) on ``path``; nothing starts. When it refuses, raise
    :class:`UserConfigError` naming the file, ``refuser`` ("FRR refuses it (vtysh --dryrun)") and what
    ``said`` picks from the parser's output (by default its non-blank lines, the ``last`` few when
    the parser is verbose); also when the daemon is not installed to ask."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise UserConfigError(path, [f"customer.router.config: cannot check it, {argv[0]} not installed ({exc})"]) \
            from exc
    if r.returncode != 0:
        out = r.stdout + "\n" + r.stderr
        quoted = said(out) if said else "; ".join(output_lines(out)[-last if last else None:]) or "(no message)"
        raise UserConfigError(path, [f"customer.router.config = '{path}': {refuser}: {quoted}"])


def output_lines(text: str) -> list[str]:
    """The non-blank lines of a daemon's output, stripped."""
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def session_key(plan: LabPlan, peer: str) -> str | None:
    """The plan's key (``ewr1/v4``) of the session whose Cloudflare address is ``peer``."""
    for s in plan.sessions:
        if str(s.cf_addr) == peer:
            return s.key
    return None


def record_start(lab: RouterLab, kind: str, node: str, workdir: Path, source: str,
                 procs: list[ProcessRecord], **extra: Any) -> None:
    """Remember what was started in ``lab.state.extra`` so a later shell can find and stop it."""
    lab.state.extra[extra_key(node)] = {
        "kind": kind, "node": node, "dir": str(workdir), "source": source,
        "processes": [p.model_dump() for p in procs], "mss_clamp": None, **extra,
    }
    lab.save()


def stop_recorded(lab: RouterLab, node: str) -> None:
    """Stop every process ``record_start`` noted for ``node`` (start-time checked: never a stranger)."""
    info = lab.state.extra.get(extra_key(node))
    if not info:
        return
    for raw in reversed(info.get("processes", [])):
        ProcessRecord.model_validate(raw).stop()
    info["processes"] = []
