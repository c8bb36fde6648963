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
    from sim.checks import wait_bfd_at_timers
    from sim.edge.control import EdgeClient
    from sim.lab.lab import Lab
    from sim.testing import wait_for

    topo = load_topology(TOPOLOGIES / topology)
    if edit is not None:
        topo = edit(topo)
    plan = build_plan(topo, f"t-{uuid.uuid4().hex[:8]}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNILAB_STATE_DIR", str(tmp))
        with Lab.create(plan) as lab:
            if wait_prefixes:
                edge = EdgeClient(lab.state.control["edge"])
                edge.wait_established(timeout=90)
                want = {f: sum(1 for p in plan.customer_prefixes if p.version == f) for f in (4, 6)}
                wait_for(lambda: all(s.prefixes_accepted >= want[s.family] for s in edge.sessions()), 60,
                         what="customer prefixes accepted at the edge")
                # BFD comes Up at the 1 s slow-start rate; tests time detection at the configured one.
                wait_bfd_at_timers(edge, plan, 30)
            yield lab


def needs_root_daemons() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
