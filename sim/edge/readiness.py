"""When a lab is ready: every planned BGP session Established and BFD Up where configured.

``cnilab up`` waits for this by default, with a budget derived from the plan's timers instead of a
bare number, and stops early on evidence that waiting cannot fix (a refused OPEN, repeated kernel
MD5 drops): a wrong key fails in seconds, not after the whole budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cnilab.sim.edge.control import ControlError, EdgeClient, SessionInfo
from cnilab.sim.facts import load_facts
from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import LabPlan
from pydantic import BaseModel, Field

CUSTOMER_FIRST_CONNECT_S = 5.0
"""BIRD's default ``start delay time`` before its first connection attempt (FRR connects at once)."""
LOADED_MACHINE_SLACK_S = 30.0
"""Starting daemons and spawning processes on a shared, loaded 2-core machine."""


class Readiness(BaseModel):
    """What ``up`` waited for and what it saw (``cnilab up --json`` carries it)."""

    ready: bool
    waited_s: float
    budget_s: float = Field(description="Derived from the plan's timers plus slack (see bring_up_budget)")
    problems: list[str] = Field(default_factory=list, description="One line per session that is not ready")
    failed_fast: bool = Field(default=False, description="Stopped early on deterministic evidence")


def bring_up_budget(plan: LabPlan) -> float:
    """Seconds a healthy lab needs to be ready: the customer's first connect, one hold time (the
    longest an exchange can stall before either side retries), BFD's slow start (multiplier x the
    1 s RFC 5880 slow interval) and the loaded-machine slack."""
    if not plan.sessions:
        return LOADED_MACHINE_SLACK_S
    hold = max(s.hold_time for s in plan.sessions)
    slow_s = float(load_facts().bfd["slow_tx_interval_ms"]["value"]) / 1000
    bfd = max((s.bfd_multiplier * slow_s for s in plan.sessions if s.bfd), default=0.0)
    return CUSTOMER_FIRST_CONNECT_S + hold + bfd + LOADED_MACHINE_SLACK_S


def deterministic_evidence(s: SessionInfo, since: float) -> str | None:
    """Evidence (seen after ``since``, epoch) that this session will not come up by waiting: a
    refused OPEN (NOTIFICATION 2/x or Cease 6/5 Connection Rejected), or repeated kernel MD5 drops."""
    n = s.last_notification
    if n is not None and n.time >= since and (n.code == 2 or (n.code, n.subcode) == (6, 5)):
        return f"NOTIFICATION {n.code}/{n.subcode} {n.name}"
    md5 = s.md5_evidence
    if md5 is not None and md5.confirmed and (md5.last or 0) >= since:
        return f"TCP MD5 drops ({md5.counters})"
    return None


def wait_sessions(client: EdgeClient, plan: LabPlan, budget_s: float,
                  progress: Callable[[str], None] | None = None) -> Readiness:
    """Poll the edge until every session is Established (and BFD Up where the plan runs it)."""
    say = progress or (lambda _m: None)
    keys = {s.key for s in plan.sessions}
    bfd_keys = {s.key for s in plan.sessions if s.bfd}
    t0 = time.monotonic()
    since = time.time() - budget_s
    while True:
        try:
            sessions = [s for s in client.sessions() if s.key in keys]
        except ControlError as exc:
            return Readiness(ready=False, waited_s=round(time.monotonic() - t0, 2), budget_s=budget_s,
                             problems=[f"edge driver: {exc}"])
        not_up = [s for s in sessions if not s.up]
        bfd_down = [s for s in sessions if s.key in bfd_keys and s.bfd_state != "Up"]
        missing = sorted(keys - {s.key for s in sessions})
        waited = round(time.monotonic() - t0, 2)
        if not (not_up or bfd_down or missing):
            return Readiness(ready=True, waited_s=waited, budget_s=budget_s)
        evidence = {s.key: deterministic_evidence(s, since) for s in not_up}
        fast = bool(not_up) and all(evidence.values())
        if fast or waited > budget_s:
            problems = [f"{s.key}: {s.state}: {s.last_error or evidence.get(s.key) or 'no error reported'}"
                        for s in not_up]
            problems += [f"{s.key}: BFD {s.bfd_state or 'not started'}" for s in bfd_down if s.up]
            problems += [f"{k}: not configured on the edge" for k in missing]
            return Readiness(ready=False, waited_s=waited, budget_s=budget_s, problems=problems, failed_fast=fast)
        say(f"waiting for BGP: {len(sessions) - len(not_up)}/{len(keys)} Established"
            + (f", BFD Up {len(bfd_keys) - len(bfd_down)}/{len(bfd_keys)}" if bfd_keys else "")
            + f" ({waited:.0f}s of {budget_s:.0f}s)")
        time.sleep(0.3)


def wait_lab_sessions(lab: LabHandle, budget_s: float | None = None,
                      progress: Callable[[str], None] | None = None) -> Readiness:
    from cnilab.sim.edge import client_for

    budget = budget_s if budget_s is not None else bring_up_budget(lab.plan)
    return wait_sessions(client_for(lab), lab.plan, budget, progress)
