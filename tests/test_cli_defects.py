"""CLI defects found while using cnilab as a new user (issue 12 section 5), each checked for real.

None of these need root: each command is driven until the point where it would need a lab, and
the test checks it got there (the argument parsed, the config refused with the documented code).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pytest
import typer.main
from cnilab.sim.cli.lab import split_exec_args
from cnilab.sim.cli.main import app

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "examples" / "customer-configs"
V1 = REPO / "topologies" / "v1-gre.yml"


def _cnilab(*argv: str, cwd: Path = REPO, env_state: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if env_state is not None:
        env["CNILAB_STATE_DIR"] = str(env_state)
    return subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def _commands(cmd: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if isinstance(getattr(cmd, "commands", None), Mapping):  # a group (the root loads lazily)
        for name, sub in cmd.commands.items():  # type: ignore[attr-defined]
            out += _commands(sub, (*path, name))
    return out


def test_every_help_renders() -> None:
    """`cnilab fault --help` crashed on `MS[/JITTER]` (rich markup); now every command's help renders."""
    from typer.testing import CliRunner

    root = typer.main.get_command(app)
    paths = _commands(root)
    assert ("fault",) in paths and ("probe", "mtu") in paths
    runner = CliRunner()
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output, res.exception)
    res = runner.invoke(app, ["fault", "list", "--help"])
    assert res.exit_code == 0 and "jitter" in res.output.lower(), res.output


def test_negative_fault_value_is_an_argument(tmp_path: Path) -> None:
    """`cnilab fault ewr1 light -25dBm` read -25dBm as an option; now it reaches the lab lookup."""
    proc = _cnilab("fault", "ewr1", "light", "-25dBm", "--lab", "nolab", env_state=tmp_path)
    assert "No such option" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and "no lab named 'nolab'" in proc.stderr, proc.stderr


def test_exec_takes_options_after_node(tmp_path: Path) -> None:
    assert split_exec_args(None, None, ["--lab", "x", "--", "vtysh", "-c", "show bgp"]) == \
        ("x", None, ["vtysh", "-c", "show bgp"])
    assert split_exec_args(None, None, ["--lab=x", "--backend", "docker", "ip", "-br", "a"]) == \
        ("x", "docker", ["ip", "-br", "a"])
    assert split_exec_args("y", None, ["ip", "--lab", "z"]) == ("y", None, ["ip", "--lab", "z"])  # CMD's own
    assert split_exec_args(None, None, ["--", "--lab"]) == (None, None, ["--lab"])
    proc = _cnilab("exec", "cust", "--lab", "nolab", "--", "true", env_state=tmp_path)
    assert proc.returncode == 2 and "no lab named 'nolab'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("suite", ["test", "rehearse"])
def test_default_topology_works_outside_the_checkout(tmp_path: Path, suite: str) -> None:
    """Run from another directory, the default topology is the shipped v1-gre (not a relative path)."""
    proc = _cnilab(suite, "--customer-config", str(tmp_path / "nope.conf"), cwd=tmp_path, env_state=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cannot read file" not in proc.stderr and "--customer-config" in proc.stderr, proc.stderr


def test_kind_on_the_other_daemons_file_is_one_line(tmp_path: Path) -> None:
    proc = _cnilab("test", "--kind", "frr", "--customer-config", str(CONFIGS / "bird-v1-gre.conf"),
                   env_state=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "looks like BIRD" in err and "--kind bird" in err, err
    assert len(err.splitlines()) <= 3, err  # one error, not the FRR parser's 70 lines


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR's vtysh is not installed")
def test_a_config_the_parser_refuses_exits_2_everywhere(tmp_path: Path) -> None:
    """One rule: a router config the daemon's parser refuses is refused input (exit 2) for `validate`,
    `up` and `test` alike, and `validate` runs the same check `up` runs (it said "valid" before)."""
    topo = tmp_path / "typo.yml"
    topo.write_text(V1.read_text().replace("router: {kind: frr}",
                                           f"router: {{kind: frr, config: {CONFIGS / 'frr-typo.conf'}}}"))
    assert "frr-typo.conf" in topo.read_text()
    for argv in (["validate", str(topo)], ["up", str(topo), "--name", "never-built"],
                 ["test", "--customer-config", str(CONFIGS / "frr-typo.conf")]):
        proc = _cnilab(*argv, env_state=tmp_path)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert "FRR refuses it" in proc.stdout + proc.stderr, (argv, proc.stdout, proc.stderr)
    assert not (tmp_path / "labs").exists() or not any((tmp_path / "labs").iterdir())


def test_topology_refuses_keepalive_not_below_hold(tmp_path: Path) -> None:
    topo = tmp_path / "ka.yml"
    topo.write_text(V1.read_text().replace("hold_time: 9, keepalive: 3", "hold_time: 9, keepalive: 9"))
    proc = _cnilab("validate", str(topo), env_state=tmp_path)
    assert proc.returncode == 2
    assert f"{topo}: interconnects[0].bgp.keepalive = 9: keepalive 9s >= hold_time 9s" in \
        proc.stderr.replace("\n", " "), proc.stderr


def test_low_light_state_matches_the_readme_and_the_seeds() -> None:
    """-25 dBm is below the -20 dBm floor: Unhealthy (seed 003 lists low light under Unhealthy), even
    though the link also loses carrier; no light is Down; swapped fibres Pending."""
    from cnilab.mock_api.status import derive_status
    from cnilab.sim.faults import parse_fault

    low = parse_fault("light", "-25dBm")
    assert not low.carrier_up
    assert derive_status(True, low.light_dbm, False, link_up=low.carrier_up).state == "Unhealthy"
    assert derive_status(True, None, False, link_up=False).state == "Down"
    assert derive_status(True, -3.0, True, link_up=False).state == "Pending"
    seeds = resources.files("cnilab.sim.data") / "sources" / "seeds"
    text = "\n".join(p.read_text() for p in seeds.iterdir() if p.name.startswith("003_"))
    unhealthy = text[text.index("**Unhealthy:**"):text.index("**Pending:**")]
    assert "Light levels below -20 dBm" in unhealthy
    readme = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    assert "**Unhealthy** when the light is below −20 dBm (`light -25dBm`" in readme
    assert "**Down** for no light (`light none`)" in readme and "**Pending** for swapped fibres" in readme


@pytest.mark.parametrize("command", [("up", str(V1)), ("demo",), ("rehearse",), ("tunnels", "rehearse")])
def test_lab_is_named_with_lab_everywhere(command: tuple[str, ...]) -> None:
    """`down`, `bgp`, `fault` take `--lab NAME`; `up` and the commands that build a lab took only
    `--name`. Both spellings now reach the lab-name rule (a bad name is refused before anything is built)."""
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, [*command, "--lab", "Bad/Name"])
    assert res.exit_code == 2, res.output
    assert "No such option" not in res.output and "lab name" in res.output.lower(), res.output
