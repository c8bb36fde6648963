"""Attach-only backend: a lab that containerlab deployed from a cnilab export.

Users deploy our exports with ``containerlab deploy`` (often with their vendor's router as
``cust``), so containerlab owns every container, veth and namespace, and the edge image's entrypoint
runs ExaBGP and the driver. cnilab only *attaches*: it enters the nodes' namespaces (containerlab
links ``/run/netns/clab-<lab>-<node>``, else ``/proc/<pid>/ns/net`` from the engine), runs commands
in the containers' own userland through ``nsenter``, and talks to the driver's control socket in
the host dir the export binds. Building or removing anything is refused with the command that
does it, because a second owner would fight containerlab's ``destroy``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnilab.sim.backends.base import Backend, BackendError
from cnilab.sim.topology.plan import LabPlan, Link, Node


class DeployedByContainerlab(BackendError):
    """An operation that would build or remove part of a lab containerlab owns."""


class ContainerlabBackend(Backend):
    """Runs commands in, and finds the namespaces of, containers containerlab created.

    ``netns`` maps node -> namespace path and ``pids`` node -> container init PID (either may be
    missing for a node the deployment does not have, e.g. a topology without ``inet``).
    """

    name = "containerlab"

    def __init__(self, lab: str, workdir: Path, netns: dict[str, str] | None = None,
                 pids: dict[str, int] | None = None, destroy_hint: str = "") -> None:
        super().__init__(lab, workdir)
        self.netns = dict(netns or {})
        self.pids = dict(pids or {})
        self.destroy_hint = destroy_hint or "containerlab destroy"

    def _refuse(self, what: str) -> DeployedByContainerlab:
        return DeployedByContainerlab(
            f"lab {self.lab} was deployed by containerlab: cnilab cannot {what}; use `{self.destroy_hint}` "
            "(and `containerlab deploy` to build it)")

    def create_node(self, node: Node) -> None:
        raise self._refuse(f"create node {node.name}")

    def create_link(self, link: Link, plan: LabPlan) -> None:
        raise self._refuse(f"create link {link.name}")

    def configure_node(self, node: Node) -> None:
        raise self._refuse(f"configure node {node.name}")

    def destroy(self) -> None:
        raise self._refuse("remove it")

    # -- access -----------------------------------------------------------------------------------
    def netns_path(self, node: str) -> str:
        try:
            return self.netns[node]
        except KeyError:
            raise BackendError(f"node {node} of containerlab lab {self.lab} has no container (clab-{self.lab}-{node} "
                               f"not found; nodes present: {', '.join(sorted(self.netns)) or 'none'})") from None

    def command(self, node: str, argv: list[str]) -> list[str]:
        """Host argv running ``argv`` in the container's namespaces and root (its own binaries, as
        ``docker exec`` would); only its network namespace when the engine could not give a PID."""
        pid = self.pids.get(node)
        if pid is not None and os.path.exists(f"/proc/{pid}/ns/net"):
            return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]
        return ["nsenter", f"--net={self.netns_path(node)}", "--", *argv]
