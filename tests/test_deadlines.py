"""Deadlines are physics plus executor slack: scenario files state the physics (seconds or a plan
timer), the executor adds the slack it declares, and reports keep the physical limit and the ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cnilab.sim.des.executor import SimExecutor
from cnilab.sim.scenario.loader import load_scenario, plan_timers
from cnilab.sim.scenario.runner import run_scenario
from cnilab.sim.topology.load import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BFD = ROOT / "topologies" / "scenarios" / "ha-failover-bfd.yml"


def _with_move_within(tmp_path: Path, within: str) -> Path:
    doc = yaml.safe_load(BFD.read_text())
    doc["topology"] = str(ROOT / "topologies" / "ha-three-site.yml")
    step = next(s for s in doc["timeline"] if s.get("do") == "expect" and s.get("link") == "ewr2")
    step["within"], step["tolerance"] = within, "0s"
    p = tmp_path / "s.yml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


class _SlowObserver(SimExecutor):
    """The simulator with a declared slack that grows during a wait (as a loaded host's would)."""

    def __init__(self, loaded, seed, slack):
        super().__init__(loaded.plan, loaded.topology, loaded.scenario.sim, seed)
        self._slack, self.reads = slack, 0

    @property
    def slack(self) -> float:
        self.reads += 1
        return self._slack(self.reads)


def _sim(loaded) -> SimExecutor:
    return SimExecutor(loaded.plan, loaded.topology, loaded.scenario.sim, 1)


def _move(report):
    return next(s for s in report.steps if s.do == "expect" and "ewr2" in s.description)


def test_plan_timers_resolve_named_deadlines():
    loaded = load_scenario(BFD)
    assert plan_timers(loaded.plan) == {"bfd_detection": 0.9, "hold_time": 9.0}
    move = _move(run_scenario(loaded, _sim(loaded), 1))
    assert move.limit == 0.9 and move.slack == 0.0 and move.status == "pass"
    assert move.ratio == round(move.measured / 0.9, 3)


def test_executor_slack_is_added_reported_and_reread_at_the_deadline(tmp_path):
    loaded = load_scenario(_with_move_within(tmp_path, "bfd_detection + 100ms"))
    tight = load_scenario(_with_move_within(tmp_path, "500ms"))  # shorter than BFD can ever be
    assert _move(run_scenario(tight, _sim(tight), 1)).status == "fail"
    # Slack 0.1 s at the start of the wait, 0.5 s once the host got slower: the deadline widens.
    report = run_scenario(tight, _SlowObserver(tight, 1, lambda n: 0.1 if n <= 1 else 0.5), 1)
    move = _move(report)
    assert move.status == "pass" and move.limit == 0.5 and move.slack == 0.5
    assert move.ratio is not None and move.ratio > 1  # beyond the physics, inside the slack: visible
    assert _move(run_scenario(loaded, _sim(loaded), 1)).status == "pass"


@pytest.mark.parametrize("within, says", [
    ("bfd_detectoin", "is not a deadline"),
    ("bfd_detection + soon", "is not a deadline"),
])
def test_bad_deadlines_are_refused_with_file_field_value(tmp_path, within, says):
    with pytest.raises(ConfigError) as exc:
        load_scenario(_with_move_within(tmp_path, within))
    text = str(exc.value)
    assert "s.yml" in text and "within" in text and within in text and says in text, text


def test_a_timer_the_plan_does_not_have_is_refused(tmp_path):
    doc = yaml.safe_load((ROOT / "topologies" / "scenarios" / "ha-failover-no-bfd.yml").read_text())
    doc["topology"] = str(ROOT / "topologies" / "ha-three-site.yml")
    step = next(s for s in doc["timeline"] if s.get("do") == "expect" and s.get("link") == "ewr2")
    step["within"] = "bfd_detection"
    p = tmp_path / "nobfd.yml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match=r"within = 'bfd_detection': .*the plan has no bfd detection"):
        load_scenario(p)
