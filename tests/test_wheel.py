"""The built wheel works outside the checkout: a fresh venv, an empty directory, bare shipped names.

This is what ``pipx install .`` gives a user: no repository beside the code, no ``topologies/`` in
the working directory, and only ``cnilab`` at the top level of site-packages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    home = cwd.parent / "home"  # not the working directory: vtysh keeps its history in $HOME
    home.mkdir(exist_ok=True)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), **env})


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv, empty working directory) with the wheel built from this checkout installed."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and "No matching distribution" in res.stderr:
        pytest.skip(f"cannot fetch the build backend here: {res.stderr.strip()[-300:]}")
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = dist.glob("cnilab-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=900)
    if res.returncode != 0 and "No matching distribution" in res.stderr:
        pytest.skip(f"cannot install the dependencies here: {res.stderr.strip()[-300:]}")
    assert res.returncode == 0, res.stderr[-2000:]
    empty = base / "empty"
    empty.mkdir()
    return venv, empty


def test_the_wheel_installs_only_the_cnilab_namespace(installed: tuple[Path, Path]) -> None:
    venv, _ = installed
    (wheel,) = (venv.parent / "dist").glob("cnilab-*.whl")
    tops = {n.split("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"cnilab", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}


def test_import_cnilab_sim_works_and_import_sim_does_not(installed: tuple[Path, Path]) -> None:
    venv, empty = installed
    py = str(venv / "bin" / "python")
    ok = _run([py, "-c", "import cnilab.sim, cnilab.mock_api; import cnilab.sim.cli.main; print(cnilab.__version__)"],
              empty)
    assert ok.returncode == 0, ok.stderr
    for name in ("sim", "mock_api", "topologies"):
        res = _run([py, "-c", f"import {name}"], empty)
        assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, (name, res.stdout, res.stderr)
    where = _run([py, "-c", "import cnilab.sim; print(cnilab.sim.__file__)"], empty)
    assert str(venv) in where.stdout, f"cnilab.sim imported from outside the venv: {where.stdout}"


def test_validate_a_shipped_topology_by_name_from_an_empty_directory(installed: tuple[Path, Path]) -> None:
    venv, empty = installed
    res = _run([str(venv / "bin" / "cnilab"), "validate", "v1-gre"], empty)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "v1-gre" in res.stdout


def test_simulate_a_shipped_scenario_by_name_from_an_empty_directory(installed: tuple[Path, Path]) -> None:
    venv, empty = installed
    res = _run([str(venv / "bin" / "cnilab"), "sim", "ha-failover-bfd", "--json"], empty)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    reports = json.loads(res.stdout)
    report = reports[0] if isinstance(reports, list) else reports
    assert report["passed"] is True
    assert list(empty.iterdir()) == [], "the simulator wrote into the working directory"


def test_python_m_runs_the_cli(installed: tuple[Path, Path]) -> None:
    venv, empty = installed
    res = _run([str(venv / "bin" / "python"), "-m", "cnilab.sim.cli.main", "validate", "ha-three-site"], empty)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR's vtysh is not installed")
def test_up_and_test_a_shipped_topology_by_name_from_an_empty_directory(installed: tuple[Path, Path]) -> None:
    """The lab itself from the wheel: daemons, helpers (``-m cnilab.sim...``), the userspace GRE
    source and the templates all come from the installed package."""
    venv, empty = installed
    cnilab = str(venv / "bin" / "cnilab")
    # FRR's unix socket paths live under the state dir and must fit in 107 bytes: a short private dir
    state = Path(tempfile.mkdtemp(prefix="cnw-", dir="/tmp"))
    lab = f"w-{uuid.uuid4().hex[:6]}"
    try:
        up = _run([cnilab, "up", "v1-gre", "--name", lab], empty, timeout=300, CNILAB_STATE_DIR=str(state))
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert "every BGP session Established" in up.stdout, up.stdout[-2000:]
        st = _run([cnilab, "status", "--lab", lab, "--json"], empty, CNILAB_STATE_DIR=str(state))
        assert st.returncode == 0, st.stderr
        down = _run([cnilab, "down", "--lab", lab], empty, timeout=120, CNILAB_STATE_DIR=str(state))
        assert down.returncode == 0, down.stdout + down.stderr
        test = _run([cnilab, "test", "--name", lab, "--json"], empty, timeout=600, CNILAB_STATE_DIR=str(state))
        assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-2000:]
        assert json.loads(test.stdout)["passed"] is True
        assert list(empty.iterdir()) == [], "the lab wrote into the working directory"
    finally:
        _run([cnilab, "down", "--lab", lab, "--quiet"], empty, timeout=120, CNILAB_STATE_DIR=str(state))
        shutil.rmtree(state, ignore_errors=True)
