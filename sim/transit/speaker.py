"""The third parties as BGP speakers: ExaBGP config, start-up as a lab hook, and what they recorded.

One speaker class for every role: the ``transit`` (labs with ``internet_backup: true``) and the
settlement-free ``peer`` (``peer: true``). Each sits in the node of its name, on the plan link of
the same role, with the ASN and table of its entry in ``sim/data/internet-table.yaml``. The customer
router template peers with each and exports only the customer's own prefixes (the correct config);
a user's config that forgets that filter leaks Cloudflare's routes, and :mod:`cnilab.sim.transit.leaks`
names them.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any, Literal

from cnilab.sim.edge.exabgp_conf import EXABGP_ENV
from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import CUSTOMER, PEER, TRANSIT, LabPlan
from cnilab.sim.transit.table import Party, third_parties
from pydantic import BaseModel, Field

PartyRole = Literal["transit", "peer"]
NODE_OF: dict[str, str] = {"transit": TRANSIT, "peer": PEER}
"""Role -> plan node (and link role): the speaker of that role runs there."""
TRANSIT_NODE = TRANSIT
RECEIVED = "received.json"
HOLD_TIME = 9
"""Same short timers as the shipped CNI sessions: a leak shows within seconds, not minutes."""


class TransitSession(BaseModel):
    """The customer <-> third-party BGP session, as both sides must configure it."""

    party: PartyRole = "transit"
    local: ipaddress.IPv4Address = Field(description="The third party's address")
    peer: ipaddress.IPv4Address = Field(description="The customer's address on the link to it")
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


def party_session(plan: LabPlan, role: str) -> TransitSession | None:
    """The session from the plan's link of that role, or None when the lab has no such node."""
    node = NODE_OF[role]
    if not any(n.name == node for n in plan.nodes):
        return None
    link = next((lk for lk in plan.links if lk.role == role and CUSTOMER in (lk.a.node, lk.b.node)), None)
    if link is None:
        return None
    t_end, c_end = (link.a, link.b) if link.a.node == node else (link.b, link.a)

    def v4(n: str, iface: str) -> ipaddress.IPv4Address:
        return next(a.ip for a in plan.node(n).iface(iface).addresses if a.version == 4)  # type: ignore[return-value]

    cust_asn = plan.sessions[0].cust_asn if plan.sessions else 0
    party: Party = getattr(third_parties(), role)
    return TransitSession(party=role, local=v4(node, t_end.iface), peer=v4(CUSTOMER, c_end.iface),  # type: ignore[arg-type]
                          local_asn=party.asn, peer_asn=cust_asn)


def party_sessions(plan: LabPlan) -> list[TransitSession]:
    """Every third party of the lab (transit first), each a speaker to start and a receiver to read."""
    return [s for role in NODE_OF if (s := party_session(plan, role)) is not None]


def transit_session(plan: LabPlan) -> TransitSession | None:
    return party_session(plan, "transit")


def render(sess: TransitSession, party: Party, workdir: Path, python: str = sys.executable) -> str:
    """exabgp.conf for the third party: one neighbor (the customer), its table, the recorder."""
    routes = []
    for r in party.routes:
        # ExaBGP sends an explicit as-path as given (it adds its own AS only when none is given)
        path = f" as-path [ {' '.join(map(str, r.as_path))} ]" if r.as_path else ""
        routes.append(f"        route {r.prefix} next-hop {sess.local}{path};")
    return "\n".join([
        f"# rendered by cnilab.sim.transit.speaker: AS{party.asn} ({party.description})",
        "process recorder {",
        f"    run {python} -m cnilab.sim.transit.recorder {workdir / RECEIVED};",
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


def start_party(lab: LabHandle, sess: TransitSession) -> None:
    """Spawn ExaBGP as the third party ``sess.party`` in its node."""
    node = NODE_OF[sess.party]
    workdir = Path(lab.node_dir(node))
    if any(c.isspace() for c in str(workdir)):
        raise ValueError(f"{sess.party} work directory {workdir} contains whitespace: ExaBGP's `run` cannot quote it")
    conf = workdir / "exabgp.conf"
    conf.write_text(render(sess, getattr(third_parties(), sess.party), workdir))
    (workdir / RECEIVED).unlink(missing_ok=True)
    exe = str(Path(sys.executable).with_name("exabgp"))
    argv = ["env", *(f"{k}={v}" for k, v in EXABGP_ENV.items()), exe, "server", str(conf)]
    lab.spawn(node, f"exabgp-{sess.party}", argv, log=workdir / "exabgp.log")


def start_third_parties(lab: LabHandle) -> None:
    """Lab hook: one speaker per third party the plan has (none without transit or peer)."""
    for sess in party_sessions(lab.plan):
        start_party(lab, sess)


def start_transit(lab: LabHandle) -> None:
    sess = transit_session(lab.plan)
    if sess is not None:
        start_party(lab, sess)


def read_received(lab: LabHandle, party: str = "transit") -> Received:
    """What the third party recorded; ``state`` is ``absent`` when no speaker runs (or it never wrote)."""
    path = Path(lab.node_dir(NODE_OF[party])) / RECEIVED
    try:
        return Received.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Received()
