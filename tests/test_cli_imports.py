"""`cnilab` starts without importing the heavy libraries (issue 16: CLI start <= 0.2 s).

docker (with requests/urllib3), pyroute2 and scapy cost ~0.4 s at every start, also for `down`,
`--help` or `status`; they are imported where a command uses them. Checked in a fresh interpreter
(the test process may have imported them already), with the command groups really registered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("docker", "pyroute2", "scapy")

PROBE = """
import json, sys
import cnilab.sim.cli.main as m
HEAVY = sys.argv[1].split(",")
import typer.main
cmd = typer.main.get_command(m.app)
print(json.dumps({"heavy": sorted(k for k in sys.modules if k.split(".")[0] in HEAVY),
                  "commands": sorted(cmd.commands)}))
"""


def test_cli_import_leaves_heavy_libraries_for_the_commands_that_use_them() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY)], capture_output=True, text=True, env=env,
                       cwd=REPO,
                       timeout=120, check=True)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"up", "down", "export"} <= set(got["commands"])  # the groups were imported, not skipped
    assert got["heavy"] == []


STARTUP = """
import json, sys
from cnilab.sim.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] in ("cnilab", "pydantic", "docker", "pyroute2"))))
"""


def _modules_after(*argv: str) -> list[str]:
    """Modules of ours (and pydantic's) imported by a fresh `cnilab ARGV`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    r = subprocess.run([sys.executable, "-c", STARTUP, *argv], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=120, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_imports_no_command_module() -> None:
    """`cnilab --help` lists every command from the index, importing none of them (nor pydantic)."""
    assert _modules_after("--help") == ["cnilab", "cnilab.sim", "cnilab.sim.cli", "cnilab.sim.cli.command_index",
                                        "cnilab.sim.cli.lazy", "cnilab.sim.cli.main"]


def test_a_command_imports_only_its_own_module() -> None:
    got = _modules_after("status", "--help")
    assert "cnilab.sim.cli.lab" in got  # status's module really loaded: its own --help needs its options
    assert not {"cnilab.sim.cli.scenario", "cnilab.sim.cli.api", "cnilab.sim.cli.verify",
                "cnilab.sim.cli.dashboard"} & set(got)


def test_down_loads_light_before_the_lab_layer() -> None:
    """`down` signals the daemons before importing the lab layer (sim/cli/down.py): its module and
    options import no topology model."""
    got = set(_modules_after("down", "--help"))
    assert "cnilab.sim.cli.down" in got
    assert not {"cnilab.sim.cli.lab", "cnilab.sim.lab.lab", "cnilab.sim.topology", "cnilab.sim.state"} & got


def test_command_index_is_current() -> None:
    from cnilab.sim.cli.command_index import INDEX
    from cnilab.sim.cli.lazy import build_index
    from cnilab.sim.cli.main import COMMAND_MODULES

    assert build_index(COMMAND_MODULES) == INDEX, "stale: run `python -m cnilab.sim.cli.lazy --write`"


def test_lazy_help_is_the_eager_help() -> None:
    """Listing from the index prints exactly what importing every module would print."""
    from cnilab.sim.cli.lazy import new_app
    from cnilab.sim.cli.main import COMMAND_MODULES, app
    from typer.testing import CliRunner

    eager = new_app(name="cnilab", help=app.info.help, no_args_is_help=True)
    for name in COMMAND_MODULES:
        __import__(name, fromlist=["register"]).register(eager)
    for width in ("80", "200"):
        lazy_out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": width}, prog_name="cnilab").output
        eager_out = CliRunner().invoke(eager, ["--help"], env={"COLUMNS": width}, prog_name="cnilab").output
        assert lazy_out == eager_out and "Commands" in lazy_out


def test_command_missing_from_the_index_still_resolves() -> None:
    """A command added without regenerating the index runs (found by importing every module)."""
    from cnilab.sim.cli.lazy import LazyCommands
    from cnilab.sim.cli.main import COMMAND_MODULES

    commands = LazyCommands({}, COMMAND_MODULES, {})
    assert commands["down"].name == "down" and "probe" in commands
