"""Checks on a running lab that the demo, rehearsals, scenarios, benchmarks, tests and the pytest
plugin share.

Each is a predicate over what the edge reports, plus a wait that polls it; one definition so "BGP
is up" (Established *with the customer's prefixes accepted*), "BFD is up" (Up *at the configured
timers*, not at the 1 s slow start) and "a silent failure was detected" (every session of the link
torn down, within BFD's detection time or the hold time) mean the same everywhere.
"""

from __future__ import annotations

import time
from typing import Any

from cnilab.sim.edge.control import EdgeClient, SessionInfo
from cnilab.sim.facts import router_kinds
from cnilab.sim.testing import wait_for
from cnilab.sim.topology.plan import LabPlan, Session


# -- BGP -------------------------------------------------------------------------------------------
def prefixes_wanted(plan: LabPlan) -> dict[int, int]:
    """How many of the customer's prefixes each address family's session must have accepted."""
    return {f: sum(1 for p in plan.customer_prefixes if p.version == f) for f in (4, 6)}


def bgp_up(plan: LabPlan, sessions: list[SessionInfo]) -> bool:
    """Every planned session Established at the edge with all of the customer's prefixes accepted."""
    want = prefixes_wanted(plan)
    seen = {s.key: s for s in sessions}
    return all(s.key in seen and seen[s.key].up and seen[s.key].prefixes_accepted >= want[s.family]
               for s in plan.sessions)


def wait_bgp_up(edge: EdgeClient, plan: LabPlan, timeout: float = 60.0, interval: float = 0.2) -> list[SessionInfo]:
    """Poll the edge until :func:`bgp_up` holds; returns the edge's sessions."""
    seen: list[list[SessionInfo]] = []

    def ready() -> bool:
        seen.append(edge.sessions())
        return bgp_up(plan, seen[-1])

    wait_for(ready, timeout, interval, what="sessions Established with the customer's prefixes accepted")
    return seen[-1]


# -- BFD -------------------------------------------------------------------------------------------
def router_has_bfd(plan: LabPlan) -> bool:
    """Whether the customer's kind can run BFD at all (the registry's data; GoBGP cannot)."""
    return router_kinds()[plan.customer_router.kind].bfd


def bfd_sessions(plan: LabPlan) -> list[Session]:
    """Sessions that run BFD at both ends: the plan asks for it and the customer's kind has BFD
    (GoBGP has none: the edge's BFD toward it stays Down and the hold timer decides)."""
    if not router_has_bfd(plan):
        return []
    return [s for s in plan.sessions if s.bfd]


def bfd_up(plan: LabPlan, bfd: list[dict[str, Any]]) -> bool:
    """Every BFD session of the plan is Up (at whatever rate: see :func:`bfd_at_timers`)."""
    seen = {str(b["peer"]): str(b["state"]) for b in bfd}
    return all(seen.get(str(s.cust_addr)) == "Up" for s in bfd_sessions(plan))


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


def wait_converged(edge: EdgeClient, plan: LabPlan, timeout: float = 90.0) -> list[SessionInfo]:
    """BGP up with prefixes exchanged, then BFD at the configured timers: the state a test or a
    benchmark starts timing from."""
    sessions = wait_bgp_up(edge, plan, timeout)
    wait_bfd_at_timers(edge, plan, 30)
    return sessions


# -- silent failure --------------------------------------------------------------------------------
def detection(plan: LabPlan, sessions: list[Session]) -> tuple[float, str]:
    """How long the edge needs to see a dead link on these sessions (s), and by which mechanism:
    BFD when both ends run it, else the BGP hold time."""
    s = sessions[0]
    if s.bfd and s.detection_ms and router_has_bfd(plan):
        return s.detection_ms / 1000, f"BFD {s.bfd_multiplier}x{s.bfd_tx_ms} ms"
    return float(s.hold_time), f"BGP hold time {s.hold_time} s"


def wait_torn_down(edge: EdgeClient, keys: list[str], since: float, limit_s: float,
                   interval: float = 0.05) -> tuple[float, list[str]]:
    """Seconds from ``since`` (monotonic) until none of ``keys`` is Established at the edge, and the
    keys still up when ``limit_s`` ran out (empty: all torn down)."""
    while True:
        up = [s.key for s in edge.sessions() if s.key in keys and s.up]
        took = time.monotonic() - since
        if not up or took > limit_s:
            return took, up
        time.sleep(interval)
