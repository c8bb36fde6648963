"""Shared lab checks (cnilab.sim.checks): what "BFD is up" means for the demo, the tests and the benchmarks."""

from __future__ import annotations

from tests.labs import TOPOLOGIES

HA = TOPOLOGIES / "ha-three-site.yml"


def test_bfd_at_timers_holds_for_a_plan_without_bfd_and_waits_for_the_configured_timers():
    from cnilab.sim.checks import bfd_at_timers, wait_bfd_at_timers
    from cnilab.sim.topology import build_plan, load_topology

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


def test_bgp_up_needs_every_planned_session_established_with_the_customers_prefixes():
    from cnilab.sim.checks import bgp_up, prefixes_wanted
    from cnilab.sim.edge.control import SessionInfo
    from cnilab.sim.topology import build_plan, load_topology

    ha = build_plan(load_topology(HA), "t-check")
    want = prefixes_wanted(ha)

    def info(s, up=True, accepted=None):  # only the fields bgp_up reads
        return SessionInfo.model_construct(key=s.key, family=s.family, up=up,
                                           prefixes_accepted=want[s.family] if accepted is None else accepted)

    full = [info(s) for s in ha.sessions]
    assert bgp_up(ha, full)
    assert not bgp_up(ha, full[1:])  # a planned session the edge does not have
    assert not bgp_up(ha, [info(ha.sessions[0], up=False), *full[1:]])
    assert not bgp_up(ha, [info(ha.sessions[0], accepted=want[ha.sessions[0].family] - 1), *full[1:]])


def test_detection_is_bfd_when_both_ends_run_it_else_the_hold_time():
    from cnilab.sim.checks import detection
    from cnilab.sim.topology import build_plan, load_topology

    ha = build_plan(load_topology(HA), "t-check")
    s = next(x for x in ha.sessions if x.bfd)
    assert detection(ha, [s]) == (s.detection_ms / 1000, f"BFD {s.bfd_multiplier}x{s.bfd_tx_ms} ms")
    gobgp = ha.model_copy(update={"customer_router": ha.customer_router.model_copy(update={"kind": "gobgp"})})
    assert detection(gobgp, [s]) == (float(s.hold_time), f"BGP hold time {s.hold_time} s")
    v2 = build_plan(load_topology(TOPOLOGIES / "v2-direct.yml"), "t-check")
    assert detection(v2, v2.sessions)[1].startswith("BGP hold time")
