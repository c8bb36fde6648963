"""`cnilab down --lab NAME` removes everything tagged with the lab even when its state file is
missing or lags the kernel (a `cnilab up` killed at any point), says what it removed, and `down
--all` under a private state root never touches a lab of another root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cnilab.sim.runtime.cleanup import list_cnilab_netns

pytestmark = [pytest.mark.root]

ROOT = Path(__file__).resolve().parents[1]


def _cnilab(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CNILAB_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def _detached_lab(state: Path, monkeypatch) -> str:
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology import build_plan, load_topology

    monkeypatch.setenv("CNILAB_STATE_DIR", str(state))
    name = f"t-{uuid.uuid4().hex[:8]}"
    plan = build_plan(load_topology(ROOT / "topologies" / "v1-gre.yml"), name)
    with Lab.create(plan, daemons=False) as lab:
        lab.detach()
    return name


@pytest.mark.parametrize("damage", ["missing", "lagging"])
def test_down_lab_sweeps_what_the_state_file_does_not_list(tmp_path, monkeypatch, damage):
    from cnilab.sim.state import update

    state = tmp_path / "s"
    name = _detached_lab(state, monkeypatch)
    made = list_cnilab_netns(f"cnilab-{name}-")
    assert len(made) >= 4
    if damage == "missing":
        (state / "labs" / name / "state.json").unlink()
    else:  # the state file lists namespaces only once made: a kill leaves it one behind
        with update(name) as st:
            st.namespaces.pop("origin")
    r = _cnilab(state, "down", "--lab", name, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert list_cnilab_netns(f"cnilab-{name}-") == []
    assert not (state / "labs" / name).exists()
    if damage == "missing":
        assert sorted(out["orphan_namespaces"]) == sorted(made)
    else:
        assert out["labs"] == [name] and out["orphan_namespaces"] == [f"cnilab-{name}-origin"]


def test_down_all_in_a_private_root_spares_other_roots(tmp_path, monkeypatch):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    other = _detached_lab(theirs, monkeypatch)
    (theirs / "labs" / other / "state.json").unlink()  # their orphan: theirs to remove, not ours
    try:
        r = _cnilab(mine, "down", "--all", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["orphan_namespaces"] == []
        assert len(list_cnilab_netns(f"cnilab-{other}-")) >= 4
    finally:
        assert _cnilab(theirs, "down", "--lab", other).returncode == 0
    assert list_cnilab_netns(f"cnilab-{other}-") == []


def test_down_lab_of_nothing_says_so(tmp_path):
    r = _cnilab(tmp_path, "down", "--lab", "never-made")
    assert r.returncode == 2 and "no lab named 'never-made'" in r.stderr, r.stderr


def test_removing_a_lab_spares_a_lab_whose_name_extends_it(tmp_path, monkeypatch):
    """`demo` and `demo-2` in one state root: tearing down `demo` must not kill what `demo-2` runs
    (its daemons name paths under labs/demo-2/, which start with labs/demo)."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.runtime.process import spawn
    from cnilab.sim.topology import build_plan, load_topology

    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    base = f"t-{uuid.uuid4().hex[:6]}"
    topo = load_topology(ROOT / "topologies" / "v1-gre.yml")
    with Lab.create(build_plan(topo, f"{base}-2"), daemons=False) as other:
        helper = spawn("helper", "cust", ["sh", "-c", "sleep 120", str(other.node_dir("cust") / "x.conf")], None)
        try:
            with Lab.create(build_plan(topo, base), daemons=False):
                pass  # torn down here, with every process naming its own lab dir
            assert Path(f"/proc/{helper.pid}").exists(), "the other lab's process was killed"
            assert list_cnilab_netns(f"cnilab-{base}-2-")
        finally:
            helper.stop()
