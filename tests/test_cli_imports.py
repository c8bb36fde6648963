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
import sim.cli.main as m
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
