"""The emulator runs the same scenario files as the simulator and agrees with its prediction."""

from __future__ import annotations

import pytest

from sim.scenario.executor import open_sim
from sim.scenario.loader import load_scenario
from sim.scenario.runner import run_scenario
from tests.labs import TOPOLOGIES

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]

TOLERANCE_S = 0.5
"""Stated tolerance between prediction and measurement (also `cnilab compare`'s default): the
emulator polls every 50 ms and shares two cores with FRR, ExaBGP and the test itself."""


def test_bfd_failover_scenario_passes_on_emulator_and_matches_simulator(tmp_path, monkeypatch):
    from sim.scenario.emulator import open_executor

    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    loaded = load_scenario(TOPOLOGIES / "scenarios" / "ha-failover-bfd.yml")
    with open_sim(loaded, 1) as ex:
        predicted = run_scenario(loaded, ex, 1)
    with open_executor(loaded, 1) as ex:
        measured = run_scenario(loaded, ex, 1)
    assert measured.executor == "emu"
    assert measured.passed, [(s.description, s.reason) for s in measured.failures]
    pairs = list(zip(predicted.steps, measured.steps, strict=True))
    move = next((p, m) for p, m in pairs if p.do == "expect" and "ewr2" in p.description)
    assert move[0].measured is not None and move[1].measured is not None
    assert abs(move[0].measured - move[1].measured) <= TOLERANCE_S, (move[0].measured, move[1].measured)
    # The timeline shows the session going down on the Cloudflare side and traffic on ewr2.
    subjects = {(t.kind, t.subject, t.state) for t in measured.series.transitions}
    assert ("route", "cf", "ewr2") in subjects
    assert any(k == "session" and s.startswith("ewr1/v4 cf") and st != "Established" for k, s, st in subjects)


def test_graceful_maintenance_scenario_loses_nothing_on_emulator(tmp_path, monkeypatch):
    """Withdraw, shut down, restore EWR1 with FRR's own commands: traffic moves and reverts, 0 lost."""
    from sim.scenario.emulator import open_executor

    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    loaded = load_scenario(TOPOLOGIES / "scenarios" / "ha-maintenance-ewr1.yml")
    with open_executor(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
        lost = ex.traffic().lost
    assert report.passed, [(s.description, s.reason) for s in report.failures]
    assert lost == 0
