"""Property-based: bad input never shows a traceback (issue 13 part 4).

Hypothesis mutates one field of a shipped topology or scenario file (a wrong type, an odd value,
an unknown key) and throws arbitrary strings at CLI arguments. Whatever it finds, the answer is
either "fine" or an error that names the file, the field and the value, with exit code 2, no
traceback, and nothing created under the state directory. Fixed seed (``derandomize``) and a
bounded example budget, so the suite is repeatable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from cnilab.sim.cli.main import app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
TOPO = yaml.safe_load((ROOT / "topologies" / "v1-gre.yml").read_text())
SCEN = yaml.safe_load((ROOT / "topologies" / "scenarios" / "ha-failover-bfd.yml").read_text())
SCEN["topology"] = str(ROOT / "topologies" / "ha-three-site.yml")

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ODD = st.one_of(
    st.text(max_size=12), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from(["x", "md5key", "a"]), st.integers(),
                                                              max_size=2),
    st.sampled_from(["../../etc", "-1", "1e309", "Ewr1", "300ms", "bfd_detection", "0x10", "", " ", "∞"]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a leaf or container inside a parsed YAML document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: dict, path: tuple, value: Any, extra_key: bool) -> tuple[dict, bool]:
    """``doc`` with the field at ``path`` set to ``value`` (or an unknown key added beside it);
    also says whether an unknown key was really added (not possible inside a list)."""
    import copy

    doc = copy.deepcopy(doc)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if extra_key and isinstance(parent, dict):
        parent[f"unknown_{path[-1]}"] = value
        return doc, True
    parent[path[-1]] = value
    return doc, False


def _run(args: list[str], state: Path) -> Any:
    env = {"CNILAB_STATE_DIR": str(state), "COLUMNS": "400"}
    return CliRunner().invoke(app, args, env=env)


def _check(res: Any, path: Path, state: Path, ok_codes: tuple[int, ...]) -> None:
    out = res.output
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (*ok_codes, 2), (res.exit_code, out)
    if res.exit_code == 2:
        assert path.name in out, out
    assert not (state / "labs").exists() or not any((state / "labs").iterdir())


def _value_named(out: str, value: Any, extra_key: bool) -> bool:
    """The error shows the offending value (scalars; an unknown key is named by its key)."""
    if extra_key or isinstance(value, dict | list):
        return True
    flat = " ".join(out.split())
    shown = {"null" if value is None else repr(value), str(value)}
    return any(v in flat or v in out for v in shown)  # raw too: a value may be whitespace itself


def _field_named(out: str, path: tuple, extra_key: bool) -> bool:
    """The error points at the mutated field (or, for a cross-field rule, at its parent)."""
    names = [str(p) for p in path if isinstance(p, str)]
    if extra_key:
        names = [f"unknown_{path[-1]}"]
    return any(n in out for n in names[-2:] or ["interconnects", "timeline"])


@SETTINGS
@given(data=st.data(), value=ODD, extra_key=st.booleans())
def test_bad_topology_files_get_a_clear_error(data, value, extra_key):
    path_in_doc = data.draw(st.sampled_from(_paths(TOPO)))
    doc, extra_key = _mutate(TOPO, path_in_doc, value, extra_key)
    with tempfile.TemporaryDirectory(prefix="cnbad-") as d:
        f, state = Path(d) / "topo.yml", Path(d) / "state"
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
        res = _run(["validate", str(f)], state)
        _check(res, f, state, (0,))
        if res.exit_code == 2:
            assert _field_named(res.output, path_in_doc, extra_key), (path_in_doc, res.output)
            assert _value_named(res.output, value, extra_key), (path_in_doc, value, res.output)
            if os.geteuid() == 0:  # `up` refuses the same file before building anything
                res = _run(["up", str(f), "--name", "hyp-never-built"], state)
                _check(res, f, state, ())


@SETTINGS
@given(data=st.data(), value=ODD, extra_key=st.booleans())
def test_bad_scenario_files_get_a_clear_error(data, value, extra_key):
    path_in_doc = data.draw(st.sampled_from([p for p in _paths(SCEN) if p[0] != "topology"]))
    doc, extra_key = _mutate(SCEN, path_in_doc, value, extra_key)
    with tempfile.TemporaryDirectory(prefix="cnbad-") as d:
        f, state = Path(d) / "scen.yml", Path(d) / "state"
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
        res = _run(["sim", str(f), "--json"], state)
        _check(res, f, state, (0, 1))  # 1: a valid scenario whose expectations fail
        if res.exit_code == 2:
            assert _field_named(res.output, path_in_doc, extra_key), (path_in_doc, res.output)
            assert _value_named(res.output, value, extra_key), (path_in_doc, value, res.output)


@SETTINGS
@given(name=st.one_of(st.text(max_size=40), st.sampled_from(["../x", "/etc", "a" * 33, "-a", "A", "ok-name"])),
       cmd=st.sampled_from([["status", "--lab"], ["down", "--lab"], ["bgp", "--lab"], ["fault", "list", "--lab"]]))
def test_cli_lab_names_are_checked_without_traceback(name, cmd):
    with tempfile.TemporaryDirectory(prefix="cnbad-") as d:
        state = Path(d) / "state"
        res = _run([*cmd, name], state)
        assert "Traceback" not in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
        assert res.exit_code == 2, (res.exit_code, res.output)  # bad name, or no such lab
        assert not state.exists() or not any(state.rglob("state.json"))


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    out = []
    for name, cmd in getattr(click_group, "commands", {}).items():
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):
            out += _commands(cmd, (*prefix, name))
    return out


def test_every_command_help_renders_without_traceback():
    """--help is the first thing a newcomer runs; rich markup in a docstring once crashed it."""
    cmds = _commands(app)
    assert len(cmds) > 15
    for cmd in cmds:
        res = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "120"})
        assert res.exit_code == 0 and res.exception is None, (cmd, res.output[-500:], repr(res.exception))


@SETTINGS
@given(arg=st.one_of(st.text(max_size=30), st.sampled_from(["", "-", "--", "/", "/dev/null", "../", "v1-gre.yml/x",
                                                             "-x", "--seed", "\x00"])),
       where=st.sampled_from(["topology", "scenario", "seed"]))
def test_odd_cli_arguments_never_trace_back(arg, where):
    scenario = str(ROOT / "topologies" / "scenarios" / "v1-gre-mss-none.yml")
    args = {"topology": ["validate", arg], "scenario": ["sim", arg], "seed": ["sim", scenario, "--seed", arg]}[where]
    with tempfile.TemporaryDirectory(prefix="cnbad-") as d:
        state = Path(d) / "state"
        res = _run(args, state)
        assert "Traceback" not in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
        assert res.exit_code in (0, 1, 2), (res.exit_code, res.output)
        assert not state.exists() or not any(state.rglob("state.json"))
