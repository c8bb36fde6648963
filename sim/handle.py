"""The one typed interface every part of cnilab uses to reach a running lab.

:class:`cnilab.sim.lab.lab.Lab` implements it; the edge peer, router kinds, probes, faults, the scenario
emulator, the dashboard and rehearsals take a ``LabHandle`` and nothing else, so none of them
imports the orchestrator or probes the object for optional features.
"""

from __future__ import annotations

import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.state import LabState
from cnilab.sim.topology.plan import LabPlan


class LabHandle(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def plan(self) -> LabPlan: ...

    @property
    def state(self) -> LabState:
        """This process's view of the state file (see Lab.state for when it refreshes)."""
        ...

    def refresh(self) -> LabState:
        """Reload the state file (another process may have recorded tunnels, faults or daemons)."""
        ...

    def run(self, node: str, argv: list[str], check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``node`` and wait for it."""
        ...

    def spawn(self, node: str, name: str, argv: list[str], log: Path | None = None,
              env: dict[str, str] | None = None) -> ProcessRecord:
        """Start a daemon in ``node``, recorded in the state file so ``down`` stops it."""
        ...

    def node_dir(self, node: str) -> Path:
        """Per-node directory for configs, logs and sockets."""
        ...

    def netns_path(self, node: str) -> str:
        """Filesystem path of the node's network namespace (for nsenter, setns, pyroute2)."""
        ...

    def ifname(self, node: str, l3_name: str) -> str:
        """Kernel name of plan interface ``l3_name`` (``ewr1.100`` is ``ewr1`` without 8021q)."""
        ...

    def update(self) -> AbstractContextManager[LabState]:
        """Locked read-modify-write of the state file."""
        ...

    def save(self) -> None:
        """Persist this process's direct edits of ``state.extra``/``control``/``mechanisms``."""
        ...
