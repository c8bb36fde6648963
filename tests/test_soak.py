"""Soak and crash safety, short version (`make soak` runs the long one into bench/RESULTS.md):
up/down cycles with a fault each leave nothing behind; `kill -9` of `cnilab up` at random points
then a scoped `down` leaves nothing and never touches a lab of another state root; two labs side
by side do not disturb each other."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.faults.apply import apply_fault

from bench.soak import kill_runs, leaks, up_down_cycles
from tests.labs import running_lab

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def tmp_path():
    """A short private root (FRR's unix socket paths must stay under 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="cnsk-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ten_up_down_cycles_with_a_fault_leave_nothing(tmp_path):
    r = up_down_cycles("v1-gre.yml", 10, tmp_path / "state", say=lambda _m: None)
    assert r["cycles"] == 10  # each cycle raised if anything was left
    # The driver (this process) does not grow with cycles: no leaked sockets or namespace handles.
    assert r["driver_fds_last"] <= r["driver_fds_first"] + 5, r


def test_kill_9_of_up_then_scoped_down_leaves_nothing_and_spares_other_roots(tmp_path):
    with running_lab(tmp_path / "neighbour", "v1-gre.yml") as neighbour:
        r = kill_runs("v1-gre.yml", 5, tmp_path / "kills", seed=13, say=lambda _m: None, neighbour=neighbour)
        assert len(r["outcomes"]) == 5
        # `down --all` under the private root swept only that root: the neighbour is whole.
        edge = EdgeClient(neighbour.state.control["edge"])
        assert all(s.up for s in edge.sessions())
        assert len(leaks(tmp_path / "neighbour", [neighbour.name], set()).namespaces) == len(neighbour.plan.nodes)


def test_two_labs_side_by_side_fault_and_teardown_of_one_spare_the_other(tmp_path):
    with running_lab(tmp_path / "a", "v1-gre.yml") as a:
        edge_a = EdgeClient(a.state.control["edge"])
        seen: set[tuple[str, str]] = set()

        def watch(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                seen.update((s.key, s.state) for s in edge_a.sessions())
                seen.update((b["peer"], b["state"]) for b in edge_a.bfd())
                time.sleep(0.05)

        with running_lab(tmp_path / "b", "v1-gre.yml") as b:
            edge_b = EdgeClient(b.state.control["edge"])
            apply_fault(b, "ewr1", "blackhole")  # same link names, same addresses: only b's may go down
            from cnilab.sim.testing import wait_for

            wait_for(lambda: not any(s.up for s in edge_b.sessions()), 15, 0.05, "b's sessions down")
            watch(1.5)
        watch(1.5)  # b's teardown happened meanwhile
        assert {st for _k, st in seen} == {"Established", "Up"}, seen
        assert all(s.up for s in edge_a.sessions())
