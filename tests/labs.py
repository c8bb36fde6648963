"""Helpers for tests that need a running lab with daemons (module-scoped, always torn down)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.topology import build_plan, load_topology
from sim.topology.model import Topology

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


@contextlib.contextmanager
def running_lab(tmp: Path, topology: str, edit: Callable[[Topology], Topology] | None = None,
                wait_prefixes: bool = True) -> Iterator[object]:
    """Bring up ``topology`` with daemons under a private state dir; wait for BGP; always destroy."""
    from sim.checks import wait_converged
    from sim.edge.control import EdgeClient
    from sim.lab.lab import Lab

    topo = load_topology(TOPOLOGIES / topology)
    if edit is not None:
        topo = edit(topo)
    plan = build_plan(topo, f"t-{uuid.uuid4().hex[:8]}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNILAB_STATE_DIR", str(tmp))
        with Lab.create(plan) as lab:
            if wait_prefixes:
                # BFD comes Up at the 1 s slow-start rate; tests time detection at the configured one.
                wait_converged(EdgeClient(lab.state.control["edge"]), plan)
            yield lab


def needs_root_daemons() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
