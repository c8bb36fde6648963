"""Scenario files: shipped ones pass, malformed ones get errors naming file/field/value, CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from cnilab.sim.cli.main import app
from cnilab.sim.scenario.loader import SCHEMA_PATH, load_scenario, scenario_json_schema
from cnilab.sim.topology.load import ConfigError
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "topologies" / "scenarios"
SHIPPED = sorted(SCEN.glob("*.yml"))
HA = str(ROOT / "topologies" / "ha-three-site.yml")


def _write(tmp_path: Path, doc: dict, name: str = "s.yml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def _base(**extra) -> dict:
    doc = {"topology": HA, "timeline": [{"do": "wait_established", "timeout": "30s"}]}
    doc.update(extra)
    return doc


def test_shipped_scenarios_exist_and_pass_on_the_simulator():
    names = {p.stem for p in SHIPPED}
    assert {"ha-failover-bfd", "ha-failover-no-bfd", "v1-gre-mss-none", "v1-gre-mss-1476",
            "ha-maintenance-ewr1"} <= names
    runner = CliRunner()
    for p in SHIPPED:
        res = runner.invoke(app, ["sim", str(p), "--json"])
        assert res.exit_code == 0, (p.name, res.output[-2000:])
        assert json.loads(res.output)["passed"] is True


def test_schema_file_is_current_and_validates_shipped_scenarios():
    assert json.loads(SCHEMA_PATH.read_text()) == scenario_json_schema()
    for p in SHIPPED:
        jsonschema.validate(yaml.safe_load(p.read_text()), scenario_json_schema())


@pytest.mark.parametrize("step, field, value", [
    ({"do": "fault", "link": "ewr1", "kind": "down", "colour": "red"}, "timeline[1].fault.colour", None),
    ({"do": "fault", "link": "ewr1", "kind": "melt"}, "timeline[1].fault.kind", "melt"),
    ({"do": "wait", "duration": "5 parsecs"}, "timeline[1].wait.duration", "5 parsecs"),
    ({"do": "expect", "what": "bfd_state", "session": "ewr1/v4", "state": "Established"},
     "timeline[1].expect", "Established"),
    ({"do": "teleport"}, "timeline[1]", "teleport"),
])
def test_malformed_step_names_file_field_value(tmp_path, step, field, value):
    doc = _base()
    doc["timeline"].append(step)
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg
    if value:
        assert value in msg


def test_unknown_link_and_session_names_are_refused(tmp_path):
    doc = _base()
    doc["timeline"] += [{"do": "fault", "link": "ewr9", "kind": "down"},
                        {"do": "expect", "what": "session_state", "session": "lax9/v4", "state": "Idle"},
                        {"do": "expect", "what": "bfd_state", "session": "lax1", "state": "Down"}]
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "timeline[1].link = 'ewr9'" in msg and "timeline[2].session = 'lax9/v4'" in msg
    assert "timeline[3].session = 'lax1'" in msg  # lax1 is v2: it has no BFD session


def test_overrides_are_validated_against_the_topology(tmp_path):
    path = _write(tmp_path, _base(overrides={"interconnects": {"ewr7": {"priority": 1}}}))
    with pytest.raises(ConfigError, match=r"overrides.interconnects.ewr7: no interconnect named 'ewr7'"):
        load_scenario(path)
    path = _write(tmp_path, _base(overrides={"interconnects": {"lax1": {"bfd": {"enabled": True}}}}))
    with pytest.raises(ConfigError, match="BFD is not supported on v2"):
        load_scenario(path)
    path = _write(tmp_path, _base(overrides={"interconnects": {"ewr1": {"bgp": {"hold_time": 2}}}}))
    with pytest.raises(ConfigError, match=r"interconnects\[0\].bgp.hold_time = 2"):
        load_scenario(path)


def test_missing_topology_and_bad_yaml(tmp_path):
    path = _write(tmp_path, {"topology": "nope.yml", "timeline": [{"do": "wait", "duration": 1}]})
    with pytest.raises(ConfigError, match=r"topology = 'nope\.yml': file not found"):
        load_scenario(path)
    bad = tmp_path / "bad.yml"
    bad.write_text("topology: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(bad)


def test_cli_bad_scenario_exits_2_with_message(tmp_path):
    doc = _base()
    doc["timeline"].append({"do": "wait", "duration": "soon"})
    path = _write(tmp_path, doc)
    res = CliRunner().invoke(app, ["sim", str(path)])
    assert res.exit_code == 2
    assert "timeline[1].wait.duration" in res.output and "soon" in res.output


def test_failing_expectation_exits_1_and_report_names_it(tmp_path):
    """Same failover, but expecting sub-BFD-detection failover: must fail, and say which and why."""
    doc = yaml.safe_load((SCEN / "ha-failover-bfd.yml").read_text())
    doc["topology"] = HA
    step = next(s for s in doc["timeline"] if s.get("what") == "traffic_on" and s["link"] == "ewr2")
    step["within"], step["tolerance"] = "0.3s", 0
    path = _write(tmp_path, doc)
    junit = tmp_path / "r.xml"
    res = CliRunner().invoke(app, ["sim", str(path), "--json", "--junit", str(junit)])
    assert res.exit_code == 1
    report = json.loads(res.output)
    assert report["passed"] is False
    failed = [s for s in report["steps"] if s["status"] == "fail"]
    assert failed[0]["description"] == "expect traffic on ewr2 within 0.3s"
    assert "traffic last delivered on ewr1" in failed[0]["reason"]
    assert "expect traffic on ewr2 within 0.3s" in junit.read_text()


def test_sweep_cli(tmp_path):
    res = CliRunner().invoke(app, ["sim", str(SCEN / "ha-failover-bfd.yml"), "--json",
                                   "--sweep", "ewr1+ewr2.bfd.multiplier=2,3"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["params"]["interconnects.ewr1+ewr2.bfd.multiplier"] for r in rows] == [2, 3]
    assert rows[0]["failover_s"] < rows[1]["failover_s"]
