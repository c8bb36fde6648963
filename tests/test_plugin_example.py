"""The documented pytest example (examples/test_my_router.py) really runs, against a real lab.

It runs as users run it: a separate ``pytest`` process with the plugin's options, so the test
proves the entry point, the options and the fixtures' teardown, not just the functions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "test_my_router.py"
CONFIG = REPO / "examples" / "customer-configs" / "frr-v1-gre.conf"


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_example_passes_with_a_good_config(short_state: Path, tmp_path: Path) -> None:
    from cnilab.sim.state import list_labs

    state_dir = short_state

    env = {**os.environ, "CNILAB_STATE_DIR": str(state_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLE), "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
         "--cnilab-topology", str(REPO / "topologies" / "v1-gre.yml"), "--cnilab-customer-config", str(CONFIG),
         "--cnilab-kind", "frr", "--cnilab-dataplane", str(REPO / "examples" / "dataplane" / "ewr1-gre.sh")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"\b5 passed\b", out), out
    assert list_labs() == [], "the plugin left a lab behind"
