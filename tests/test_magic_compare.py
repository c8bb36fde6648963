"""Emulator and simulator agree on Magic scenarios: the real lab's times (from the edge daemon's own
records) fall inside the simulator's range over probe phases, widened by the scenario's stated
tolerance (``compare_tolerance_s``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cnilab.sim.magic.emulate import compare, emulate, scenario_lab
from cnilab.sim.magic.scenario import load_scenario

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]

SCEN = Path(__file__).resolve().parent.parent / "topologies" / "magic-scenarios"


@pytest.mark.parametrize("name", ["cni-fails-to-backup", "up-pref"])
def test_agrees(name, short_state, lab_name):
    sc = load_scenario(SCEN / f"{name}.yml")
    with scenario_lab(sc, lab_name) as lab:
        run = emulate(sc, lab)
    assert run.passed, run.model_dump_json(indent=1)
    agreement = compare(sc, run)
    assert agreement, "the scenario has no timed expectation to compare"
    for a in agreement:
        assert a.agree, a
