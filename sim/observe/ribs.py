"""The routing picture of a running lab in one read: the edge's sessions, routes and BFD, each third
party's Adj-RIB-In (transit, peer) and the prefixes the customer's daemon installed in its kernel.

A reading is on demand, not part of the background poll: the third parties' tables and the
customer's kernel routes are forks (a file read per party, ``ip route`` per family), too heavy to
repeat every 50 ms, and a convergence check decides itself how often it looks
(:meth:`cnilab.sim.observe.observer.LabObserver.ribs`).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from cnilab.sim.edge.control import EdgeClient, RoutesInfo, SessionInfo
from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import CUSTOMER
from cnilab.sim.transit import party_sessions, read_received
from cnilab.sim.transit.speaker import Received


@dataclass(frozen=True)
class RibReading:
    sessions: list[SessionInfo]
    routes: RoutesInfo
    bfd: list[dict[str, Any]]
    parties: dict[str, Received]
    """Each third party's view (session state, routes received from the customer), by role."""
    installed: dict[str, list[str]]
    """Prefixes the customer's daemon installed, by family (``ipv4``/``ipv6``)."""


def installed_routes(lab: LabHandle) -> dict[str, list[str]]:
    """Prefixes the customer's daemon put in its kernel (proto bgp/bird: not connected or static)."""
    out: dict[str, list[str]] = {}
    for fam in (4, 6):
        r = lab.run(CUSTOMER, ["ip", "-j", f"-{fam}", "route", "show"], check=False)
        try:
            rows = json.loads(r.stdout or "[]")
        except ValueError:
            rows = []
        default = "0.0.0.0/0" if fam == 4 else "::/0"
        out[f"ipv{fam}"] = sorted({str(ipaddress.ip_network(default if x["dst"] == "default" else x["dst"],
                                                            strict=False))
                                   for x in rows if x.get("protocol") in ("bgp", "bird")})
    return out


class RibReader:
    """Reads the routing picture of ``lab``; errors from the edge propagate (a verdict needs the edge)."""

    def __init__(self, lab: LabHandle, edge_timeout: float = 10.0) -> None:
        self.lab = lab
        self.edge = EdgeClient(lab.state.control["edge"], timeout=edge_timeout)
        self.parties = party_sessions(lab.plan)

    def read(self) -> RibReading:
        return RibReading(sessions=self.edge.sessions(), routes=self.edge.routes(), bfd=self.edge.bfd(),
                          parties={t.party: read_received(self.lab, t.party) for t in self.parties},
                          installed=installed_routes(self.lab))
