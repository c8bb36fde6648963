"""One fault model for both executors: every kind parses once, and means the same on both.

The first half needs nothing: the registry, the units rule (``flap 4`` is refused, ``flap 4s`` is a
4 s period everywhere) and the simulator's reading of each kind. The second half runs the same
scenario per fault kind on the simulator and on one emulated lab and compares the outcomes step by
step (the emulator is the measurement, the simulator the prediction).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from cnilab.sim.faults.kinds import HELP, KINDS, REGISTRY, FaultError, fault_kind, parse_fault
from cnilab.sim.scenario.executor import open_sim
from cnilab.sim.scenario.loader import load_scenario
from cnilab.sim.scenario.runner import run_scenario
from cnilab.sim.topology.load import ConfigError

from tests.labs import TOPOLOGIES, running_lab

HA = TOPOLOGIES / "ha-three-site.yml"

# -- the registry --------------------------------------------------------------------------------


def test_every_kind_is_registered_with_help_and_round_trips_its_example():
    assert set(KINDS) == set(REGISTRY) and set(HELP) == set(KINDS)
    assert {"down", "flap", "blackhole", "loss", "delay", "rate", "drop-bfd", "drop-bgp", "light", "swap"} <= set(KINDS)
    for kind in KINDS:
        fk = fault_kind(kind)
        spec = parse_fault(kind, fk.example)
        assert parse_fault(kind, spec.value_text) == spec, kind


@pytest.mark.parametrize(("kind", "bare"), [("flap", "4"), ("delay", "100"), ("rate", "10")])
def test_a_bare_duration_or_rate_is_refused_with_the_units_to_use(kind, bare):
    with pytest.raises(FaultError, match="unit"):
        parse_fault(kind, bare)


def test_flap_period_is_seconds_with_units_everywhere():
    assert parse_fault("flap", "4s").period_s == 4.0
    assert parse_fault("flap", "500ms").period_s == 0.5
    assert parse_fault("flap", None).period_s == 4.0
    effect = fault_kind("flap").sim_effect(parse_fault("flap", "4s"))
    assert effect is not None and effect.flap_period_s == 4.0


def test_bare_loss_and_light_mean_percent_and_dbm():
    assert parse_fault("loss", 20).loss_pct == 20.0 and parse_fault("loss", "20%").loss_pct == 20.0
    assert parse_fault("light", -23.5).light_dbm == -23.5 and parse_fault("light", "-23.5dBm").light_dbm == -23.5


def test_carrier_semantics():
    lost = {k for k in KINDS if not parse_fault(k, fault_kind(k).example).carrier_up}
    assert lost == {"down", "swap", "light"}  # light's example (-25 dBm) is below the optic's floor
    assert parse_fault("light", "-10dBm").carrier_up
    assert not parse_fault("light", "none").carrier_up


def test_mock_api_meaning_of_each_kind():
    api = {k: fault_kind(k).api_link(parse_fault(k, fault_kind(k).example)) for k in KINDS}
    assert api["down"] == {"link_up": False} and api["flap"] == {"link_up": False}
    assert api["swap"] == {"swapped": True} and api["light"] == {"light_dbm": -25.0}
    assert api["blackhole"] == api["drop-bfd"] == api["loss"] == {}  # silent: the API still says Active


def _scenario(tmp_path: Path, kind: str, value: str | None) -> Path:
    doc = {"name": f"fault-{kind}", "topology": str(HA), "timeline": [
        {"do": "wait_established", "timeout": "60s"},
        {"at": "10s", "do": "fault", "link": "ewr1", "kind": kind, **({"value": value} if value else {})},
        {"do": "wait", "duration": "5s"}]}
    path = tmp_path / f"{kind}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_scenario_refuses_a_bare_flap_period_at_load(tmp_path):
    with pytest.raises(ConfigError, match="needs a unit"):
        load_scenario(_scenario(tmp_path, "flap", "4"))


def test_simulated_flap_4s_is_down_2s_up_2s(tmp_path):
    loaded = load_scenario(_scenario(tmp_path, "flap", "4s"))
    with open_sim(loaded, 1) as ex:
        run_scenario(loaded, ex, 1)
    flips = [t for t, kind, subject, state, _ in ex.world.transitions
             if kind == "link" and subject == "ewr1" and state in ("flap down", "flap up")]
    assert flips[:4] == pytest.approx([10.0, 12.0, 14.0, 16.0])


def test_rate_is_not_modelled_by_the_simulator_and_says_so(tmp_path):
    loaded = load_scenario(_scenario(tmp_path, "rate", "10mbit"))
    with open_sim(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
    step = next(s for s in report.steps if s.do == "fault")
    assert step.status == "fail" and "not modelled by the simulator" in step.reason


# -- simulator vs emulator, one scenario per kind ------------------------------------------------

# (kind, value, link, what the fault does to traffic inet -> origin that starts on ewr1)
# Compared: where traffic goes and when, the edge's best path, and the revert. Not compared: the
# BGP session state under carrier loss. The simulator drops both ends' sessions at once (what a
# router with fast external failover does); the emulated edge (ExaBGP) keeps its session until BFD
# detection, and only the kernel's route through the downed interface goes at once. Traffic and
# routes agree; the session timelines do not, and that is a known difference, not a tolerance.
BFD_S = 0.91
"""Physics of a silent failure under BFD 300 ms x 3: at most 900 ms, plus one packet at 200 pps."""
HOLD_S = 9.01
"""Physics of a failure only BGP sees: the 9 s hold time, plus one packet."""
CASES = [
    ("down", None, "ewr1", BFD_S),         # carrier loss: the route through the interface goes at once
    ("swap", None, "ewr1", BFD_S),         # RX/TX swapped: no carrier either
    ("light", "-25dBm", "ewr1", BFD_S),    # below the optic's floor: no carrier
    ("flap", "4s", "ewr1", BFD_S),         # first half-period down
    ("blackhole", None, "ewr1", BFD_S),    # silent: BFD 300x3 finds it
    ("drop-bfd", None, "ewr1", BFD_S),     # BFD goes Down, BGP follows it
    ("drop-bgp", None, "ewr1", HOLD_S),    # BFD stays Up: the hold timer finds it, 6-9 s after the cut
    ("loss", "30%", "lan", None),          # LAN carries no BFD/BGP: routing stays, 30 % is lost
]
SLACK_S = 0.6
"""Emulator slack on a timed step: 50 ms polling, a loaded 2-core machine (declared, not physics)."""
COMPARE_S = 0.5
"""How far the simulator's prediction and the emulator's measurement of a timed step may differ."""
KEEPALIVE_S = 3.0
"""Hold-timer detection depends on the keepalive phase at the cut, which neither side controls."""


def _kind_scenario(tmp_path: Path, kind: str, value: str | None, link: str, moves_within: float | None) -> Path:
    fault = {"after": "1s", "do": "fault", "link": link, "kind": kind, **({"value": value} if value else {})}
    if moves_within is not None:
        compare = COMPARE_S + (KEEPALIVE_S if moves_within == HOLD_S else 0.0)
        after = [{"do": "expect", "what": "traffic_on", "link": "ewr2", "within": f"{moves_within}s",
                  "tolerance": f"{SLACK_S}s", "compare_tolerance": f"{compare}s"},
                 {"do": "expect", "what": "path", "link": "ewr2", "within": "0.5s", "tolerance": f"{SLACK_S}s"}]
    else:
        after = [{"do": "wait", "duration": "4s"},
                 {"do": "expect", "what": "traffic_on", "link": "ewr1"}]
    doc = {"name": f"kind-{kind}", "topology": str(HA), "timeline": [
        {"do": "wait_established", "timeout": "60s"},
        {"do": "start_traffic", "rate_pps": 200, "from": "inet", "to": "origin"},
        # a precondition, not a timing claim: the stream's first packets on the primary at any time in
        # the window are the same outcome (ARP and the sampler's window on a loaded host)
        {"do": "expect", "what": "traffic_on", "link": "ewr1", "within": "2s", "compare_tolerance": "2s"},
        fault, *after,
        {"do": "stop_traffic"},
        {"do": "clear", "link": link},
        # revert: BFD slow start and the customer's BGP connect-retry (5 s) phase
        {"do": "expect", "what": "path", "link": "ewr1", "within": "25s", "compare_tolerance": "6s"},
    ], "end_after": "0.2s"}
    path = tmp_path / f"kind-{kind}.yml"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def ha_lab(tmp_path_factory):
    from tests.labs import needs_root_daemons

    needs_root_daemons()
    with running_lab(tmp_path_factory.mktemp("kinds"), "ha-three-site.yml") as lab:
        yield lab


def _bfd_at_timers(lab) -> None:
    """Each case starts like the first: BFD Up at the configured 300 ms, not at slow start."""
    from cnilab.sim.checks import wait_bfd_at_timers
    from cnilab.sim.edge.control import EdgeClient

    edge = EdgeClient(lab.state.control["edge"])
    wait_bfd_at_timers(edge, lab.plan, 60)
    edge.wait_established(timeout=60)


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "value", "link", "moves_within"), CASES, ids=[c[0] for c in CASES])
def test_fault_kind_means_the_same_on_simulator_and_emulator(ha_lab, tmp_path, kind, value, link, moves_within):
    from cnilab.sim.faults.apply import clear_faults
    from cnilab.sim.scenario.emulator import EmuExecutor

    loaded = load_scenario(_kind_scenario(tmp_path, kind, value, link, moves_within))
    with open_sim(loaded, 1) as sim_ex:
        predicted = run_scenario(loaded, sim_ex, 1)
        sim_traffic = sim_ex.traffic()
    _bfd_at_timers(ha_lab)
    emu = EmuExecutor(ha_lab)
    try:
        measured = run_scenario(loaded, emu, 1)
        emu_traffic = emu.traffic()
    finally:
        emu.close()
        clear_faults(ha_lab)
    assert predicted.passed, [(s.description, s.reason) for s in predicted.failures]
    assert measured.passed, ([(s.description, s.reason) for s in measured.failures],
                             [(t.t, t.kind, t.subject, t.state) for t in measured.series.transitions if t.t > 1.0])
    for p, m in zip(predicted.steps, measured.steps, strict=True):
        assert p.status == m.status, (p.description, p.reason, m.reason)
        if p.do == "expect" and p.measured is not None and m.measured is not None:
            # the tight compare bound plus the slack the emulator declared for this step (its measured
            # poll latency on this host): a loaded machine widens the bound, never the physics
            step_tol = getattr(loaded.scenario.timeline[p.index], "compare_tolerance", None) or COMPARE_S
            tol = step_tol + (m.slack or 0.0)
            assert abs(p.measured - m.measured) <= tol, (p.description, p.measured, m.measured, m.slack)
    if moves_within is None:
        sim_ratio = sim_traffic.delivered / max(1, sim_traffic.sent)
        emu_ratio = emu_traffic.delivered / max(1, emu_traffic.sent)
        # ~1000 packets in the fault window: 30 % +/- 10 points is > 6 sigma of a binomial draw
        assert 0.6 <= sim_ratio <= 0.95 and 0.6 <= emu_ratio <= 0.95, (sim_ratio, emu_ratio)
        assert sim_traffic.lost > 0 and emu_traffic.lost > 0


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_emulated_flap_4s_is_down_2s_up_2s_like_the_simulator(ha_lab):
    """The ``flap 4`` bug: the emulator once read a bare 4 as a 4 ms period. Now both say 4 s."""
    from cnilab.sim.faults.apply import apply_fault, clear_faults
    from cnilab.sim.faults.place import resolve_target
    from cnilab.sim.testing import wait_for

    rec = apply_fault(ha_lab, "ewr1", "flap", "4s")
    assert "userspace" in rec.mechanisms
    place = resolve_target(ha_lab.plan, "ewr1")[0]
    node, iface = place.node, ha_lab.ifname(place.node, place.iface)

    def up() -> bool:
        out = ha_lab.run(node, ["ip", "-j", "link", "show", "dev", iface]).stdout
        return "UP" in json.loads(out)[0].get("flags", [])

    try:
        wait_for(lambda: not up(), 3, what=f"{iface} down")
        t_down = time.monotonic()
        wait_for(up, 5, what=f"{iface} up again")
        half = time.monotonic() - t_down
    finally:
        clear_faults(ha_lab)
    # physics: 2.0 s; the poll and a loaded machine only make it look longer
    assert 1.8 <= half <= 2.0 + SLACK_S + 0.5, half


def test_cli_refuses_a_bare_flap_period_before_touching_any_lab():
    from cnilab.sim.cli.main import app
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["fault", "ewr1", "flap", "4", "--lab", "no-such-lab"])
    assert res.exit_code == 2
    assert "needs a unit: write 4s or 4ms" in res.output

