"""Shared lab checks (sim.checks): what "BFD is up" means for the demo, the tests and the benchmarks."""

from __future__ import annotations

from tests.labs import TOPOLOGIES

HA = TOPOLOGIES / "ha-three-site.yml"


def test_bfd_at_timers_holds_for_a_plan_without_bfd_and_waits_for_the_configured_timers():
    from sim.checks import bfd_at_timers, wait_bfd_at_timers
    from sim.topology import build_plan, load_topology

    ha = build_plan(load_topology(HA), "t-check")
    v2 = build_plan(load_topology(TOPOLOGIES / "v2-direct.yml"), "t-check")
    up = [{"peer": str(s.cust_addr), "state": "Up", "detection_ms": s.detection_ms} for s in ha.sessions if s.bfd]
    assert bfd_at_timers(ha, up)
    assert not bfd_at_timers(ha, [{**b, "detection_ms": 3000.0} for b in up])  # still at slow start
    assert not bfd_at_timers(ha, up[:1])

    class NoBfdEdge:
        def bfd(self) -> list:
            return []

    assert wait_bfd_at_timers(NoBfdEdge(), v2, 1) == []  # type: ignore[arg-type]
