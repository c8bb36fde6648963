"""Checks on a running lab that the demo, rehearsals, benchmarks and tests share.

Each is a predicate over what the edge reports, plus a wait that polls it; one definition so "BFD
is up" means the same everywhere (Up *at the configured timers*, not at the 1 s slow start).
"""

from __future__ import annotations

from typing import Any

from sim.edge.control import EdgeClient
from sim.facts import router_kinds
from sim.testing import wait_for
from sim.topology.plan import LabPlan, Session


def bfd_sessions(plan: LabPlan) -> list[Session]:
    """Sessions that run BFD at both ends: the plan asks for it and the customer's kind has BFD
    (GoBGP has none: the edge's BFD toward it stays Down and the hold timer decides)."""
    if not router_kinds()[plan.customer_router.kind].bfd:
        return []
    return [s for s in plan.sessions if s.bfd]


def bfd_at_timers(plan: LabPlan, bfd: list[dict[str, Any]]) -> bool:
    """Every BFD session of the plan is Up with the plan's detection time (RFC 5880 6.8.4).

    Up comes first at the slow-start rate; a Poll/Final then moves both ends to the configured
    timers, and only then is a detection time measured against ``Session.detection_ms`` meaningful.
    """
    seen = {str(b["peer"]): b for b in bfd}
    return all(str(s.cust_addr) in seen and seen[str(s.cust_addr)]["state"] == "Up"
               and seen[str(s.cust_addr)]["detection_ms"] == s.detection_ms
               for s in bfd_sessions(plan))


def wait_bfd_at_timers(edge: EdgeClient, plan: LabPlan, timeout: float = 30.0,
                       interval: float = 0.2) -> list[dict[str, Any]]:
    """Poll the edge until :func:`bfd_at_timers` holds; returns the edge's BFD sessions (empty for a
    plan without BFD, which holds at once)."""
    seen: list[list[dict[str, Any]]] = []

    def ready() -> bool:
        seen.append(edge.bfd())
        return bfd_at_timers(plan, seen[-1])

    wait_for(ready, timeout, interval, what="BFD Up at the configured timers")
    return seen[-1]
