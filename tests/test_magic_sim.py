"""Magic health checks and steering without a lab: facts, the state machine, the probe schedule,
steering, and the simulator's scenarios (rate sweep)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cnilab.sim.magic.facts import raw, timing
from cnilab.sim.magic.health import Prober, Sample, TunnelHealth
from cnilab.sim.magic.scenario import load_scenario
from cnilab.sim.magic.simulate import simulate, sweep
from cnilab.sim.magic.steering import MagicRoute, steer
from typer.testing import CliRunner

SCEN = Path(__file__).resolve().parent.parent / "topologies" / "magic-scenarios"


def test_every_magic_fact_cites_a_source_and_unpublished_ones_say_model():
    d = raw()
    for key, fact in d["health_check"].items():
        assert "source" in fact, key
    assert d["health_check"]["probe_interval_s"]["source"].startswith("model")
    assert d["health_check"]["probe_timeout_s"]["source"].startswith("model")
    assert "up to two more times" in d["health_check"]["reprobes"]["source"]
    pen = d["priority"]["penalty"]
    assert (pen["degraded"], pen["down"]) == (500000, 1000000) and "500,000" in pen["source"]
    assert d["states"]["tunnel_state"] == {"healthy": 1.0, "degraded": 0.5, "down": 0.0}
    # three samples must fit in the one-second down window
    assert (timing().reprobes + 1) * timing().probe_timeout_s < timing().down_window_s


def _h(initial="healthy"):
    h = TunnelHealth(timing(), initial=initial)
    for i in range(30):
        h.samples.append(Sample(t=-30 + i, ok=True))
    return h


def test_one_lost_probe_is_not_a_penalty_two_are_degraded_three_in_a_second_down():
    h = _h()
    assert h.record(Sample(t=1.0, ok=False)) is None and h.state == "healthy"
    assert h.record(Sample(t=1.3, ok=False)).to == "degraded"
    tr = h.record(Sample(t=1.6, ok=False))
    assert tr.to == "down" and "3 of 3" in tr.reason


def test_spread_out_failures_degrade_but_do_not_take_the_tunnel_down():
    h = _h()
    for t in (1.0, 5.0, 9.0):
        h.record(Sample(t=t, ok=False))
    assert h.state == "degraded"


def test_recovery_is_slow_hysteresis():
    h = _h(initial="down")
    h.record(Sample(t=0.0, ok=True))
    h.record(Sample(t=0.01, ok=True))
    assert h.state == "down"
    assert h.record(Sample(t=0.02, ok=True)).to == "degraded"
    h.record(Sample(t=1.0, ok=False))
    for i in range(29):
        h.record(Sample(t=2.0 + i, ok=True))
    assert h.state == "degraded", "a failure within the last 30 probes keeps it degraded"
    h.record(Sample(t=40.0, ok=True))
    assert h.state == "healthy"


def test_prober_reprobes_twice_at_once_then_waits_the_interval():
    h = _h()
    p = Prober(h, interval_s=5.0, t0=0.0)
    assert p.due(0.0)
    p.sent(0.0)
    p.result(0.3, False)
    assert p.due(0.3) and p.attempt == 1
    p.sent(0.3)
    p.result(0.6, False)
    p.sent(0.6)
    p.result(0.9, False)
    assert h.state == "down" and p.attempt == 0 and not p.due(4.9) and p.due(5.0)
    # a down tunnel's success is confirmed by two more probes at once
    p.sent(5.0)
    p.result(5.001, True)
    assert p.due(5.001) and p.attempt == 1


def _r(nh, prio, w=None):
    return MagicRoute(prefix=ipaddress.ip_network("198.51.100.0/24"), nexthop=nh, priority=prio, weight=w)


def test_steering_lower_priority_wins_penalties_ecmp_and_all_down():
    routes = [_r("a", 100), _r("b", 200)]
    assert [h.tunnel for h in steer(routes, {"a": "healthy", "b": "healthy"})["198.51.100.0/24"]] == ["a"]
    assert [h.tunnel for h in steer(routes, {"a": "degraded", "b": "healthy"})["198.51.100.0/24"]] == ["b"]
    both_down = steer(routes, {"a": "down", "b": "down"})["198.51.100.0/24"]
    assert [(h.tunnel, h.effective_priority) for h in both_down] == [("a", 1000100)]
    ecmp = steer([_r("a", 100, 3), _r("b", 100, 1)], {"a": "healthy", "b": "healthy"})["198.51.100.0/24"]
    assert [(h.tunnel, h.weight) for h in ecmp] == [("a", 3), ("b", 1)]


def test_failover_time_grows_with_a_lower_rate():
    sc = load_scenario(SCEN / "cni-fails-to-backup.yml")
    means = {}
    for rate in ("high", "mid", "low"):
        sc.rate = rate
        spread = sweep(sc, 60)
        move = spread[0]
        iv = simulate(sc).steps[2].bound_s
        assert move.passed == move.n == 60
        # two failed probes (degraded loses to a healthy backup) after the next probe
        assert 2 * timing().probe_timeout_s <= move.min_s and move.max_s <= iv
        means[rate] = move.mean_s
    assert means["high"] < means["mid"] < means["low"]


@pytest.mark.parametrize("name", ["cni-fails-to-backup", "customer-stops-returning-probes", "up-pref"])
def test_shipped_scenarios_pass_in_the_simulator_deterministically(name):
    sc = load_scenario(SCEN / f"{name}.yml")
    a, b = simulate(sc, seed=7), simulate(sc, seed=7)
    assert a.passed, a.model_dump_json(indent=1)
    assert a == b


def test_recovery_waits_for_30_clean_probes():
    sc = load_scenario(SCEN / "customer-stops-returning-probes.yml")
    back = simulate(sc, seed=3).steps[-1]
    iv = 1.0  # the topology's lab interval at rate high
    assert back.measured_s >= (timing().healthy_window_probes - timing().reprobes - 1) * iv


def test_cli_sim_sweep_json():
    from cnilab.sim.cli.main import app

    res = CliRunner().invoke(app, ["tunnels", "sim", str(SCEN / "cni-fails-to-backup.yml"), "--sweep-rate",
                                   "--seeds", "20", "--json"])
    assert res.exit_code == 0, res.output
    import json

    data = json.loads(res.stdout)
    assert set(data) == {"low", "mid", "high"}
    assert data["high"][0]["mean_s"] < data["low"][0]["mean_s"]


def _tun(**hc):
    from cnilab.sim.magic.config import HcTunnel
    from cnilab.sim.magic.model import HealthCheck

    return HcTunnel(name="t", kind="cni", ifname="gre-t", cf_inner="10.212.0.0", cust_inner="10.212.0.1",
                    cf_outer="192.0.2.10", cust_outer="192.0.2.11", health_check=HealthCheck(**hc))


@pytest.mark.parametrize(("hc", "want"), [
    ({"type": "reply", "direction": "bidirectional"}, ("10.212.0.1", "10.212.0.0", 0, True)),
    ({"type": "request", "direction": "bidirectional"}, ("10.212.0.0", "10.212.0.1", 8, True)),
    ({"type": "reply", "direction": "unidirectional"}, ("192.0.2.11", "192.0.2.10", 0, False)),
    ({"type": "request", "direction": "unidirectional"}, ("192.0.2.10", "192.0.2.11", 8, False)),
    ({"legacy": True, "target": "172.64.240.253"}, ("172.64.240.253", "10.212.0.0", 0, True)),
])
def test_probe_addressing_follows_cloudflares_table(hc, want):
    from cnilab.sim.magic.hcd import addressing

    src, dst, typ, through = addressing(_tun(**hc))
    assert (str(src), str(dst), typ, through) == want


def test_probe_packet_checksums_verify():
    from cnilab.sim.magic.hcd import _csum, build_probe

    pkt = build_probe(ipaddress.IPv4Address("10.212.0.1"), ipaddress.IPv4Address("10.212.0.0"), 0, 0xC001, 7,
                      b"CNILABHC" + bytes(12))
    assert _csum(pkt[:20]) == 0 and _csum(pkt[20:]) == 0
    assert pkt[9] == 1 and pkt[20] == 0 and pkt[12:16] == bytes([10, 212, 0, 1])


def test_a_tunnel_without_health_checks_is_never_penalised():
    from cnilab.sim.magic.scenario import TunnelFault
    from cnilab.sim.magic.simulate import MagicSim, config_for

    cfg = config_for(load_scenario(SCEN / "cni-fails-to-backup.yml"))
    cni = next(t for t in cfg.tunnels if t.name == "cni-ewr1")
    cni.health_check = cni.health_check.model_copy(update={"enabled": False})
    sim = MagicSim(cfg, seed=1, start_healthy=False)
    sim.fault(TunnelFault(tunnel="cni-ewr1", kind="blackhole"), True)
    sim.sleep(30)
    snap = sim.snapshot()
    assert snap.states["cni-ewr1"] == "healthy" and snap.steered == ["cni-ewr1"]
