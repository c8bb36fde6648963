"""The discrete-event simulator: determinism, and failover times that match the timer theory exactly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cnilab.sim.scenario.executor import open_sim
from cnilab.sim.scenario.loader import load_scenario, with_overrides
from cnilab.sim.scenario.runner import run_scenario
from cnilab.sim.scenario.sweep import sweep

SCEN = Path(__file__).resolve().parents[1] / "topologies" / "scenarios"
EPS = 1e-6
FAULT_AT = 20.0
HA = str(SCEN.parent / "ha-three-site.yml")


def _run(name: str, seed: int, overrides: dict | None = None):
    loaded = load_scenario(SCEN / name)
    if overrides:
        loaded = with_overrides(loaded, overrides)
    with open_sim(loaded, seed) as ex:
        report = run_scenario(loaded, ex, seed)
    return loaded, ex, report


def test_same_seed_same_report_different_seed_differs():
    a = _run("ha-failover-bfd.yml", 7)[2].model_dump_json()
    b = _run("ha-failover-bfd.yml", 7)[2].model_dump_json()
    assert a == b
    others = {_run("ha-failover-bfd.yml", s)[2].model_dump_json() for s in (8, 9, 10)}
    assert any(o != a for o in others)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_bfd_failover_matches_theory(seed):
    """BFD 300 ms x 3: the edge declares ewr1 down exactly 900 ms after the last control packet it
    received; that packet came at most one TX interval (300 ms, jitter only shortens it) before the
    fault, so detection lands in [fault + 600 ms, fault + 900 ms]. Traffic is on ewr2 with the next
    packet sent (<= 10 ms at 100 pps) plus the path delay (3 links x 0.5 ms)."""
    _, ex, report = _run("ha-failover-bfd.yml", seed)
    assert report.passed, [(s.description, s.reason) for s in report.failures]
    bfd = ex.world.pairs["ewr1/v4"].bfd_cf
    detections = [d for d in bfd.detections if d[0] > FAULT_AT]
    assert detections, "BFD never detected the fault"
    down, last_rx = detections[0]
    assert abs((down - last_rx) - 0.9) < EPS
    assert 0.6 - EPS <= down - FAULT_AT <= 0.9 + EPS
    step = next(s for s in report.steps if s.description.startswith("expect traffic on ewr2"))
    moved = step.start + step.measured
    assert down <= moved <= down + 0.01 + 3 * 0.0005 + EPS
    # the BGP session went down because of BFD, at the same instant
    idle = [t for t in report.series.transitions
            if t.subject == "ewr1/v4 cf" and t.kind == "session" and t.state == "Idle" and t.t > FAULT_AT]
    assert idle[0].t == pytest.approx(down) and "BFD" in idle[0].reason


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hold_timer_failover_matches_theory(seed):
    """Without BFD the edge's hold timer (9 s) expires exactly 9 s after the last KEEPALIVE it got;
    keepalives come every 3 s x U(0.75, 1), so that is 6-9 s after the fault."""
    loaded, ex, report = _run("ha-failover-no-bfd.yml", seed)
    assert report.passed, [(s.description, s.reason) for s in report.failures]
    assert all(not s.bfd for s in loaded.plan.sessions)
    cf = ex.world.pairs["ewr1/v4"].cf
    expiries = [e for e in cf.hold_expiries if e[0] > FAULT_AT]
    expired, last_rx = expiries[0]
    assert abs((expired - last_rx) - 9.0) < EPS
    assert 6.0 - EPS <= expired - FAULT_AT <= 9.0 + EPS
    step = next(s for s in report.steps if s.description.startswith("expect traffic on ewr2"))
    assert expired <= step.start + step.measured <= expired + 0.01 + 3 * 0.0005 + EPS
    tr = ex.traffic()
    assert tr.loss_window_s == pytest.approx(round((expired - FAULT_AT) * 100) / 100, abs=0.011)


def test_virtual_time_hours_in_milliseconds(tmp_path):
    text = (SCEN / "ha-failover-bfd.yml").read_text().replace("../ha-three-site.yml", HA)
    text = text.replace("    duration: 2s\nend_after: 1s", "    duration: 2s\n  - do: stop_traffic\nend_after: 4h")
    (tmp_path / "long.yml").write_text(text)
    loaded = load_scenario(tmp_path / "long.yml")
    started = time.perf_counter()
    with open_sim(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
    wall = time.perf_counter() - started
    assert report.duration > 4 * 3600
    assert wall < 60, f"4 h of scenario took {wall:.1f}s"
    # sessions stayed up for hours: keepalives and BFD kept running with no spurious flap
    late = [t for t in report.series.transitions if t.t > 60 and t.kind in ("session", "bfd")]
    assert late == []


def test_md5_mismatch_never_establishes():
    wrong_key = {"interconnects": {"ewr2": {"bgp": {"customer_md5": "nope"}}}}
    _, _, report = _run("ha-maintenance-ewr1.yml", 1, wrong_key)
    first = report.steps[0]
    assert first.status == "fail"
    assert "ewr2/v4 customer is Connect" in first.reason and "ewr2/v4 cf is Active" in first.reason
    assert any("MD5" in n for n in report.notes)
    assert not report.passed


def test_withdraw_moves_traffic_without_loss():
    _, ex, report = _run("ha-maintenance-ewr1.yml", 3)
    assert report.passed, [(s.description, s.reason) for s in report.failures]
    tr = ex.traffic()
    assert tr.lost == 0 and tr.delivered > 4000
    assert set(tr.first_on) == {"ewr1", "ewr2"}


def test_unsupported_fault_fails_the_step_with_reason(tmp_path):
    text = (SCEN / "ha-failover-bfd.yml").read_text().replace("../ha-three-site.yml", HA)
    text = text.replace("kind: blackhole", "kind: rate\n    value: 10mbit")
    (tmp_path / "rate.yml").write_text(text)
    loaded = load_scenario(tmp_path / "rate.yml")
    with open_sim(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
    fault = next(s for s in report.steps if s.do == "fault")
    assert fault.status == "fail" and "not modelled by the simulator" in fault.reason
    assert not report.passed


def test_loss_fault_drops_a_share_of_packets():
    _, ex, _ = _run("ha-failover-bfd.yml", 1)
    base = ex.traffic().lost
    loaded = load_scenario(SCEN / "ha-failover-bfd.yml")
    with open_sim(loaded, 1) as ex2:
        ex2.run_until(5)
        ex2.start_traffic("inet", "origin", 1000)
        ex2.fault("lan", "loss", 20)  # the LAN carries no BFD/BGP, so routing stays put
        ex2.run_until(15)
        tr = ex2.traffic()
    assert base > 0
    assert 0.17 < tr.lost / tr.sent < 0.23  # 10,000 packets at 20 % loss
    assert tr.last_path == "ewr1" and tr.loss_window_s < 0.05


def test_sweep_detection_grows_with_timers():
    loaded = load_scenario(SCEN / "ha-failover-bfd.yml")
    rows = sweep(loaded, ["ewr1+ewr2.bfd.tx_ms=100,300", "ewr1+ewr2.bfd.rx_ms=100,300",
                          "ewr1+ewr2.bfd.multiplier=3"], 1)
    assert len(rows) == 4
    by = {(r.params["interconnects.ewr1+ewr2.bfd.tx_ms"], r.params["interconnects.ewr1+ewr2.bfd.rx_ms"]): r
          for r in rows}
    assert by[(100, 100)].failover_s < 0.31
    assert 0.6 - EPS <= by[(300, 300)].failover_s <= 0.92
    with pytest.raises(ValueError, match="not an interconnect"):
        sweep(loaded, ["ewr9.bfd.tx_ms=1,2"], 1)


def test_carrier_loss_resets_sessions_at_once(tmp_path):
    """`down` loses the carrier: both ends drop the session immediately, no BFD or hold timer."""
    text = (SCEN / "ha-failover-no-bfd.yml").read_text().replace("../ha-three-site.yml", HA)
    (tmp_path / "down.yml").write_text(text.replace("kind: blackhole", "kind: down"))
    loaded = load_scenario(tmp_path / "down.yml")
    with open_sim(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
    fault = next(s for s in report.steps if s.do == "fault")
    move = next(s for s in report.steps if s.do == "expect" and "ewr2" in s.description)
    assert move.status == "pass" and move.measured is not None and move.measured < 0.05
    downs = [t for t in report.series.transitions if t.kind == "session" and t.subject.startswith("ewr1/v4")
             and t.state == "Idle" and abs(t.t - fault.start) < 1e-6]
    assert downs and "carrier" in downs[0].reason
