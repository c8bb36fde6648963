"""The backend interface: everything above it (edge peer, routers, probes, faults) is backend-agnostic.

Every backend gives each node a Linux network namespace reachable at a path (``netns_path``); the
netns backend creates it, the docker backend borrows the container's, exactly as containerlab
links ``/run/netns/<container>``. Probes and faults work on that path, so they do not care which
backend built the node. What differs is where processes run: ``spawn`` starts a daemon in the node
(``ip netns exec`` on the host, or ``exec`` inside the container).
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

from sim.lab.process import ProcessRecord
from sim.topology.plan import LabPlan, Link, Node


class BackendError(RuntimeError):
    """A backend operation failed; the message says which node/link and what the system said."""


class Backend(ABC):
    name: str

    def __init__(self, lab: str, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir

    @abstractmethod
    def create_node(self, node: Node) -> None:
        """Create the node's namespace/container (no interfaces yet)."""

    @abstractmethod
    def create_link(self, link: Link, plan: LabPlan) -> None:
        """Create the veth pair of ``link`` with both ends inside their nodes, MTU set, up."""

    @abstractmethod
    def configure_node(self, node: Node) -> None:
        """Addresses, VLAN sub-interfaces, routes and forwarding sysctls of ``node``."""

    @abstractmethod
    def netns_path(self, node: str) -> str:
        """Filesystem path of the node's network namespace (for pyroute2 and setns)."""

    @abstractmethod
    def exec(self, node: str, argv: list[str], *, check: bool = True, timeout: float = 30,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the node and wait for it."""

    @abstractmethod
    def spawn(self, node: str, name: str, argv: list[str], *, log: Path | None = None,
              env: dict[str, str] | None = None) -> ProcessRecord:
        """Start a long-running process in the node, detached from the caller."""

    @abstractmethod
    def destroy(self) -> None:
        """Remove every node and link this backend created for the lab. Idempotent."""
