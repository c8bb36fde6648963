"""The transit node as a BGP speaker: ExaBGP config, start-up as a lab hook, and what it recorded.

Only labs whose plan has a ``transit`` node (``internet_backup: true``) get one. The customer router
template peers with it and exports only the customer's own prefixes (the correct config); a user's
config that forgets that filter leaks Cloudflare's routes, and :mod:`sim.transit.leaks` names them.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sim.edge.exabgp_conf import EXABGP_ENV
from sim.topology.plan import CUSTOMER, TRANSIT, LabPlan
from sim.transit.table import Party, third_parties

TRANSIT_NODE = TRANSIT
RECEIVED = "received.json"
HOLD_TIME = 9
"""Same short timers as the shipped CNI sessions: a leak shows within seconds, not minutes."""


class TransitSession(BaseModel):
    """The customer <-> transit BGP session, as both sides must configure it."""

    party: str = "transit"
    local: ipaddress.IPv4Address = Field(description="The transit's address")
    peer: ipaddress.IPv4Address = Field(description="The customer's address on the transit link")
    local_asn: int
    peer_asn: int
    hold_time: int = HOLD_TIME


class ReceivedRoute(BaseModel):
    as_path: list[int] = Field(default_factory=list)
    med: int | None = None
    communities: list[str] = Field(default_factory=list)
    nexthop: str = ""
    time: float = 0.0


class Received(BaseModel):
    """What the customer announced to the third party (Adj-RIB-In before any filter) + raw UPDATEs."""

    state: str = "absent"
    since: float | None = None
    established_count: int = 0
    updates: int = 0
    routes: dict[str, ReceivedRoute] = Field(default_factory=dict)
    raw: list[dict[str, Any]] = Field(default_factory=list)


def transit_session(plan: LabPlan) -> TransitSession | None:
    """The session from the plan's transit link, or None when the lab has no transit node."""
    if not any(n.name == TRANSIT for n in plan.nodes):
        return None
    link = next((lk for lk in plan.links if lk.role == "transit" and CUSTOMER in (lk.a.node, lk.b.node)), None)
    if link is None:
        return None
    t_end, c_end = (link.a, link.b) if link.a.node == TRANSIT else (link.b, link.a)

    def v4(node: str, iface: str) -> ipaddress.IPv4Address:
        return next(a.ip for a in plan.node(node).iface(iface).addresses if a.version == 4)  # type: ignore[return-value]

    cust_asn = plan.sessions[0].cust_asn if plan.sessions else 0
    return TransitSession(local=v4(TRANSIT, t_end.iface), peer=v4(CUSTOMER, c_end.iface),
                          local_asn=third_parties().transit.asn, peer_asn=cust_asn)


def render(sess: TransitSession, party: Party, workdir: Path, python: str = sys.executable) -> str:
    """exabgp.conf for the third party: one neighbor (the customer), its table, the recorder."""
    routes = []
    for r in party.routes:
        # ExaBGP sends an explicit as-path as given (it adds its own AS only when none is given)
        path = f" as-path [ {' '.join(map(str, r.as_path))} ]" if r.as_path else ""
        routes.append(f"        route {r.prefix} next-hop {sess.local}{path};")
    return "\n".join([
        f"# rendered by sim.transit.speaker: AS{party.asn} ({party.description})",
        "process recorder {",
        f"    run {python} -m sim.transit.recorder {workdir / RECEIVED};",
        "    encoder json;",
        "}",
        f"neighbor {sess.peer} {{",
        f"    description \"{sess.party}\";",
        f"    router-id {sess.local};",
        f"    local-address {sess.local};",
        f"    local-as {sess.local_asn};",
        f"    peer-as {sess.peer_asn};",
        f"    hold-time {sess.hold_time};",
        "    passive false;",
        "    listen 179;",
        "    family {",
        "        ipv4 unicast;",
        "    }",
        "    api {",
        "        processes [ recorder ];",
        "        neighbor-changes;",
        "        receive {",
        "            parsed;",
        "            update;",
        "        }",
        "    }",
        "    static {",
        *routes,
        "    }",
        "}",
        "",
    ])


def start_transit(lab: Any) -> None:
    """Lab hook: spawn ExaBGP as the transit in node ``transit`` (nothing when the plan has none)."""
    sess = transit_session(lab.plan)
    if sess is None:
        return
    workdir = Path(lab.node_dir(TRANSIT))
    if any(c.isspace() for c in str(workdir)):
        raise ValueError(f"transit work directory {workdir} contains whitespace: ExaBGP's `run` cannot quote it")
    conf = workdir / "exabgp.conf"
    conf.write_text(render(sess, third_parties().transit, workdir))
    (workdir / RECEIVED).unlink(missing_ok=True)
    exe = str(Path(sys.executable).with_name("exabgp"))
    argv = ["env", *(f"{k}={v}" for k, v in EXABGP_ENV.items()), exe, "server", str(conf)]
    lab.spawn(TRANSIT, "exabgp-transit", argv, log=workdir / "exabgp.log")


def read_received(lab: Any) -> Received:
    """What the transit recorded; ``state`` is ``absent`` when no speaker runs (or it never wrote)."""
    path = Path(lab.node_dir(TRANSIT)) / RECEIVED
    try:
        return Received.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Received()
