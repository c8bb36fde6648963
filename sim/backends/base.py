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
from typing import TYPE_CHECKING, Any

from cnilab.sim.runtime import process
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.plan import LabPlan, Link, Node

if TYPE_CHECKING:  # pyroute2 is imported where a namespace is configured, not by every CLI start
    from pyroute2 import IPRoute

IFA_F_NODAD = 0x02
"""IPv6 addresses skip duplicate address detection: a lab link has no duplicates, and DAD would
delay every IPv6 session by a second or more."""


class BackendError(RuntimeError):
    """A backend operation failed; the message says which node/link and what the system said."""


class Backend(ABC):
    name: str

    def __init__(self, lab: str, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.ifnames: dict[str, dict[str, str]] = {}
        """node -> plan interface name -> kernel name (``ewr1.100`` is ``ewr1`` without 802.1Q)."""

    def preflight(self) -> None:
        """Refuse before anything is built when this backend cannot work here (privileges, engine);
        nothing to check by default."""
        return

    def adopt(self, nodes: list[str]) -> None:
        """Take over the nodes of a running lab (``Lab.attach``), so destroy/exec know them; a
        backend that finds its nodes by name (containers) has nothing to take over."""
        return

    @abstractmethod
    def create_node(self, node: Node) -> None:
        """Create the node's namespace/container (no interfaces yet)."""

    @abstractmethod
    def create_link(self, link: Link, plan: LabPlan) -> None:
        """Create the veth pair of ``link`` with both ends inside their nodes, MTU set, up."""

    vlan_mode: str | None = None
    """How 802.1Q is implemented in this lab (cnilab.sim.dataplane.vlan constants), once a tagged interface exists."""

    def configure_node(self, node: Node) -> None:
        """Addresses, VLAN sub-interfaces (or their altname fallback), loopbacks and routes of ``node``.

        The same for every backend: whoever created the namespace, it is configured through its path.
        """
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            with IPRoute(netns=self.netns_path(node.name), flags=0) as ipr:  # flags=0: never create it
                names, vlan_mode = configure_l3(ipr, node)
        except (NetlinkError, OSError, IndexError) as exc:
            raise BackendError(f"node {node.name}: configuring interfaces/routes failed: {exc}") from exc
        if vlan_mode is not None:
            self.vlan_mode = vlan_mode
        self.ifnames[node.name] = names

    @abstractmethod
    def netns_path(self, node: str) -> str:
        """Filesystem path of the node's network namespace (for pyroute2 and setns)."""

    @abstractmethod
    def command(self, node: str, argv: list[str]) -> list[str]:
        """The host argv that runs ``argv`` inside ``node`` (``ip netns exec``, ``nsenter``...)."""

    def exec(self, node: str, argv: list[str], *, check: bool = True, timeout: float = 30,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the node and wait for it."""
        try:
            res = subprocess.run(self.command(node, argv), capture_output=True, text=True, timeout=timeout,
                                 input=input, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"{node}: {' '.join(argv)} did not finish within {timeout:g} s") from exc
        if check and res.returncode != 0:
            raise BackendError(f"{node}: {' '.join(argv)} exited {res.returncode}: "
                               f"{(res.stderr or res.stdout).strip()[:500]}")
        return res

    def spawn(self, node: str, name: str, argv: list[str], *, log: Path | None = None,
              env: dict[str, str] | None = None) -> ProcessRecord:
        """Start a long-running process in the node, detached from the caller (its process group
        holds the daemon, so :meth:`ProcessRecord.stop` stops it wherever it runs)."""
        return process.spawn(name, node, self.command(node, argv), log, env=env)

    @abstractmethod
    def destroy(self) -> None:
        """Remove every node and link this backend created for the lab. Idempotent."""


def configure_l3(ipr: IPRoute, node: Node) -> tuple[dict[str, str], str | None]:
    """Addresses, VLAN sub-interfaces (or their altname fallback), loopbacks and routes of ``node``
    through an IPRoute already bound to its namespace. Returns (plan name -> kernel name, VLAN mode
    or None when the node has no tagged interface). Shared by every backend: a node is configured
    the same way whoever created its namespace."""
    from cnilab.sim.dataplane import vlan as vlanmod

    names: dict[str, str] = {}
    vlan_mode: str | None = None
    for iface in node.interfaces:
        idx = ipr.link_lookup(ifname=iface.name)[0]
        l3_idx, real = idx, iface.name
        if iface.vlan:
            if vlanmod.add_vlan(ipr, idx, iface.vlan, iface.l3_name, iface.mtu):
                l3_idx, real = ipr.link_lookup(ifname=iface.l3_name)[0], iface.l3_name
                ipr.link("set", index=l3_idx, state="up")
                vlan_mode = vlanmod.EMULATED
            else:
                vlanmod.add_altname(ipr, idx, iface.l3_name)
                vlan_mode = vlanmod.NOT_EMULATED
        names[iface.l3_name] = real
        for addr in iface.addresses:
            ipr.addr("add", index=l3_idx, address=str(addr.ip), prefixlen=addr.network.prefixlen,
                     **({"flags": IFA_F_NODAD} if addr.version == 6 else {}))
    for addr in node.loopbacks:
        ipr.addr("add", index=1, address=str(addr.ip), prefixlen=addr.network.prefixlen)
    for route in node.routes:
        spec: dict[str, Any] = {"dst": str(route.dst), "priority": route.metric or None}
        if route.via is not None:
            spec["gateway"] = str(route.via)
        if route.dev is not None:
            spec["oif"] = ipr.link_lookup(ifname=names.get(route.dev, route.dev))[0]
        if route.dst.version == 6:
            spec["family"] = 10
        if route.mtu:
            spec["metrics"] = {"mtu": route.mtu, "lock": 1 << 2}  # `mtu lock N` (RTAX_LOCK bit of RTAX_MTU)
        ipr.route("add", **{k: v for k, v in spec.items() if v is not None})
    return names, vlan_mode
