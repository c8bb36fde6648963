"""The per-lab state file: what exists, who owns it, how each piece is implemented.

``status`` and ``down`` read it from any shell; ``down --all`` also sweeps namespaces with the
cnilab prefix that no state file claims (a crash between creating and recording). Writes are
atomic (rename) and serialised with a lock file, because the API server, the dashboard and the CLI
may update the same lab.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from cnilab.sim.runtime.files import atomic_write, exclusive_lock
from cnilab.sim.runtime.names import LAB_NAME_PATTERN
from cnilab.sim.runtime.paths import lab_dir, state_root
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.plan import LabPlan
from pydantic import BaseModel, Field


class TunnelRecord(BaseModel):
    name: str
    node: str
    ifname: str
    mode: Literal["kernel", "userspace"]
    process: ProcessRecord | None = None


class FaultRecord(BaseModel):
    """An active fault and how it is implemented (``mechanism`` is shown by ``status``)."""

    target: str
    kind: str
    value: Any = None
    mechanism: str
    mechanisms: list[str] = Field(default_factory=list, description="kernel / nftables / userspace / none")
    since: float = Field(default_factory=time.time)
    undo: dict[str, Any] = Field(default_factory=dict, description="What the fault module needs to clear it")
    process: ProcessRecord | None = None


class LabState(BaseModel):
    lab: str
    backend: Literal["netns", "docker", "containerlab"] = "netns"
    topology_path: str | None = None
    created: float = Field(default_factory=time.time)
    status: Literal["starting", "running", "failed", "stopping"] = "starting"
    plan: LabPlan
    namespaces: dict[str, str] = Field(default_factory=dict, description="node -> netns name")
    containers: dict[str, str] = Field(default_factory=dict, description="node -> container id")
    processes: list[ProcessRecord] = Field(default_factory=list)
    tunnels: list[TunnelRecord] = Field(default_factory=list)
    faults: list[FaultRecord] = Field(default_factory=list)
    mechanisms: dict[str, str] = Field(
        default_factory=dict, description="feature -> how it is implemented here, e.g. gre: userspace"
    )
    control: dict[str, str] = Field(default_factory=dict, description="component -> control socket path")
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return lab_dir(self.lab)

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def save(self) -> None:
        atomic_write(self.path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, lab: str) -> LabState:
        path = lab_dir(lab) / "state.json"
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise LabNotFound(lab) from None

    @classmethod
    def exists(cls, lab: str) -> bool:
        return (lab_dir(lab) / "state.json").exists()


class LabNotFound(LookupError):
    def __init__(self, lab: str) -> None:
        super().__init__(f"no lab named {lab!r} is running (see `cnilab status`)")
        self.lab = lab


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """Serialise read-modify-write of one lab's state across processes."""
    with exclusive_lock(lab_dir(lab) / ".lock"):
        yield


@contextlib.contextmanager
def update(lab: str) -> Iterator[LabState]:
    """``with update(lab) as st: st.faults.append(...)`` - load, modify, save under the lock."""
    with locked(lab):
        st = LabState.load(lab)
        yield st
        st.save()


def list_labs() -> list[str]:
    root = state_root() / "labs"
    if not root.is_dir():
        return []
    # A directory whose name breaks the lab-name rule is not a lab (put there by hand): never listed,
    # so nothing downstream joins its name into a path.
    return sorted(p.name for p in root.iterdir()
                  if re.fullmatch(LAB_NAME_PATTERN, p.name) and (p / "state.json").exists())
