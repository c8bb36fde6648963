"""The netns backend: one Linux network namespace per node, veth pairs for links, pyroute2 for netlink.

Why namespaces: they start in milliseconds, need no images, and the customer's real FRR/BIRD runs
unchanged inside one with ``ip netns exec``. Each veth pair is created with its two ends placed
directly in the two node namespaces, so nothing is ever left with a host-side name. The loopback
of every namespace carries an owner tag (see :mod:`cnilab.sim.runtime.cleanup`) so ``down --all`` can tell
an orphan from a colleague's running lab.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnilab.sim.backends.base import Backend, BackendError
from cnilab.sim.runtime import proc
from cnilab.sim.runtime.cleanup import netns_path as _ns_path
from cnilab.sim.runtime.cleanup import owner_tag, remove_netns
from cnilab.sim.runtime.nsenter import in_netns
from cnilab.sim.runtime.paths import lab_dir, ns_name
from cnilab.sim.topology.plan import LabPlan, Link, Node

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def check_privileges() -> None:
    """Refuse early, before anything exists, when namespaces cannot be created here."""
    try:
        caps = proc.effective_caps()
    except (OSError, StopIteration, ValueError):
        caps = 0
    missing = [n for bit, n in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
               if not caps >> bit & 1]
    if missing:
        raise BackendError(
            f"the netns backend needs root (missing {', '.join(missing)}): network namespaces and veth "
            "links cannot be created by this user; run with sudo"
        )


def _sysctls(node: Node) -> dict[str, str]:
    """Per-namespace sysctls; set before interfaces exist so 'default' applies to them too."""
    out = {
        "net/ipv6/conf/all/accept_dad": "0",  # addresses usable at once: no 1-2 s DAD wait
        "net/ipv6/conf/default/accept_dad": "0",
        # A router keeps its configured addresses when the carrier drops: without this the kernel
        # flushes a veth's IPv6 address when the peer's link goes down (fault down/light/flap), and
        # nothing in a node without a routing daemon (the edge) would ever add it back.
        "net/ipv6/conf/all/keep_addr_on_down": "1",
        "net/ipv6/conf/default/keep_addr_on_down": "1",
    }
    if node.forwarding:
        out |= {
            "net/ipv4/ip_forward": "1",
            "net/ipv6/conf/all/forwarding": "1",
            "net/ipv6/conf/default/forwarding": "1",
            # asymmetric paths (GRE one way, plain IP back) are the point of v1: no rp_filter
            "net/ipv4/conf/all/rp_filter": "0",
            "net/ipv4/conf/default/rp_filter": "0",
        }
    return out


class NetnsBackend(Backend):
    """Builds a :class:`LabPlan` in network namespaces named ``cnilab-<lab>-<node>``."""

    name = "netns"

    def __init__(self, lab: str, workdir: Path) -> None:
        super().__init__(lab, workdir)
        self.nodes: list[str] = []

    def preflight(self) -> None:
        check_privileges()

    # -- nodes and links ------------------------------------------------------------------------
    def adopt(self, nodes: list[str]) -> None:
        """Take over the nodes of a running lab (``Lab.attach``), so destroy/exec know them."""
        self.nodes = list(nodes)

    def create_node(self, node: Node) -> None:
        from pyroute2 import IPRoute, netns  # here: `cnilab down` never needs pyroute2
        from pyroute2.netlink.exceptions import NetlinkError

        ns = ns_name(self.lab, node.name)
        if os.path.exists(_ns_path(ns)):
            raise BackendError(f"namespace {ns} already exists (another lab named {self.lab!r}?); "
                               "choose another --name or run `cnilab down`")
        try:
            netns.create(ns)
        except OSError as exc:
            raise BackendError(f"cannot create namespace {ns}: {exc}") from exc
        self.nodes.append(node.name)
        try:
            with IPRoute(netns=ns) as ipr:
                ipr.link("set", index=1, state="up", ifalias=owner_tag(lab_dir(self.lab)))
            self._write_sysctls(node.name, _sysctls(node))
        except (NetlinkError, OSError) as exc:
            raise BackendError(f"node {node.name}: cannot set up namespace {ns}: {exc}") from exc

    def _write_sysctls(self, node: str, values: dict[str, str]) -> None:
        # /proc/sys/net follows the network namespace of the calling thread, so no fork is needed.
        with in_netns(self.netns_path(node)):
            for key, value in values.items():
                Path("/proc/sys", key).write_text(value)

    def create_link(self, link: Link, plan: LabPlan) -> None:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        a_mtu = plan.node(link.a.node).iface(link.a.iface).mtu
        b_mtu = plan.node(link.b.node).iface(link.b.iface).mtu
        try:
            with IPRoute(netns=ns_name(self.lab, link.a.node)) as ipr:
                ipr.link("add", ifname=link.a.iface, kind="veth", mtu=a_mtu,
                         peer={"ifname": link.b.iface, "mtu": b_mtu,
                               "net_ns_fd": self.netns_path(link.b.node)})
                ipr.link("set", index=ipr.link_lookup(ifname=link.a.iface)[0], state="up")
            with IPRoute(netns=ns_name(self.lab, link.b.node)) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=link.b.iface)[0], state="up")
        except (NetlinkError, OSError, IndexError) as exc:
            raise BackendError(f"link {link.name} ({link.a.node}:{link.a.iface} - {link.b.node}:{link.b.iface}): "
                               f"{exc}") from exc

    # -- access -----------------------------------------------------------------------------------
    def netns_path(self, node: str) -> str:
        return _ns_path(ns_name(self.lab, node))

    def command(self, node: str, argv: list[str]) -> list[str]:
        """The host argv that runs ``argv`` inside ``node`` (for callers that want their own stdio)."""
        return ["ip", "netns", "exec", ns_name(self.lab, node), *argv]

    # -- teardown ---------------------------------------------------------------------------------
    def destroy(self) -> None:
        """Delete every node namespace (killing what still runs inside); idempotent."""
        errors = []
        for node in reversed(self.nodes):
            try:
                remove_netns(ns_name(self.lab, node))
            except OSError as exc:
                errors.append(f"{ns_name(self.lab, node)}: {exc}")
        self.nodes = [n for n in self.nodes if os.path.exists(self.netns_path(n))]
        if errors:
            raise BackendError("could not remove " + "; ".join(errors))

