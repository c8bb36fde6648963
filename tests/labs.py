"""The test frame: namespace pairs, mini labs and running labs, all inside the leak safety net.

Everything here makes kernel objects the same way: namespaces named ``cnilab-t-<tag>-<node>`` whose
loopback carries the owner tag of a directory under pytest's tmp tree (see
:mod:`cnilab.sim.runtime.cleanup`). A context manager removes them when the test ends, pass or fail; the
session safety net in ``conftest.py`` finds any it missed (and fails the run), and a colleague's
``cnilab down --all`` leaves them alone because their owner is not in its state root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cnilab.sim.lab.lab import Lab
from cnilab.sim.state import LabState
from cnilab.sim.topology import build_plan, load_topology
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.plan import LabPlan, Link, Node

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


def needs_root_daemons() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def unique_tag() -> str:
    return uuid.uuid4().hex[:8]


# -- a private state root -----------------------------------------------------------------------------


@contextlib.contextmanager
def private_state(d: Path) -> Iterator[Path]:
    """``CNILAB_STATE_DIR=d`` for the block; a lab still recorded there at the end is destroyed and fails the
    test (the code under test should have removed it). ``d`` should come from ``tmp_path_factory.mktemp``:
    short, for FRR's unix socket paths (< 108 bytes), and inside the namespace safety net."""
    from cnilab.sim.state import list_labs

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNILAB_STATE_DIR", str(d))
        try:
            yield d
        finally:
            left = list_labs()
            for name in left:
                Lab.attach(name).destroy()
    assert not left, f"labs left behind: {left}"


# -- two namespaces and a veth ----------------------------------------------------------------------


def _ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], check=check, capture_output=True, timeout=20)


@dataclass
class NsPair:
    """Namespaces ``a`` and ``b`` joined by the veth ``if_a`` - ``if_b``, with one IPv4 /30 and one IPv6 /64."""

    a: str
    b: str
    if_a: str
    if_b: str
    a4: str = "10.213.0.1"
    b4: str = "10.213.0.2"
    a6: str = "fd00:bfd::1"
    b6: str = "fd00:bfd::2"

    def ifname(self, ns: str) -> str:
        return self.if_a if ns == self.a else self.if_b

    def sh(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True,
                              timeout=20)

    def blackhole(self, ns: str, udp_port: int) -> None:
        """Drop UDP ``udp_port`` arriving in ``ns`` (nftables), falling back to taking the veth down."""
        if shutil.which("nft"):
            rules = ("table inet cnilabtest {\n chain in {\n  type filter hook input priority 0;\n"
                     f"  udp dport {udp_port} drop\n }}\n}}\n")
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, check=True, text=True,
                           timeout=10)
        else:
            self.sh(ns, "ip", "link", "set", self.ifname(ns), "down")

    def heal(self, ns: str) -> None:
        if shutil.which("nft"):
            self.sh(ns, "nft", "delete", "table", "inet", "cnilabtest", check=False)
        self.sh(ns, "ip", "link", "set", self.ifname(ns), "up", check=False)


@contextlib.contextmanager
def ns_pair(owner: Path) -> Iterator[NsPair]:
    """An :class:`NsPair` tagged as owned by ``owner`` (a directory under pytest's tmp tree); always removed."""
    from cnilab.sim.runtime.cleanup import owner_tag, remove_netns
    from cnilab.sim.runtime.paths import ns_name

    tag = unique_tag()
    pair = NsPair(a=ns_name(f"t-{tag}", "a"), b=ns_name(f"t-{tag}", "b"), if_a=f"nsa{tag}", if_b=f"nsb{tag}")
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up", "alias", owner_tag(owner))
        _ip("link", "add", pair.if_a, "netns", pair.a, "type", "veth", "peer", "name", pair.if_b, "netns", pair.b)
        for ns, ifn, v4, v6 in ((pair.a, pair.if_a, pair.a4, pair.a6), (pair.b, pair.if_b, pair.b4, pair.b6)):
            _ip("-n", ns, "addr", "add", f"{v4}/30", "dev", ifn)
            _ip("-n", ns, "addr", "add", f"{v6}/64", "dev", ifn, "nodad")
            _ip("-n", ns, "link", "set", ifn, "up")
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            remove_netns(ns)


# -- some nodes of a plan ---------------------------------------------------------------------------


class MiniLab(Lab):
    """Some nodes of a plan on the netns backend: the orchestrator's own :class:`~cnilab.sim.lab.lab.Lab`
    (state file, the LabHandle the parts take, teardown) without its edge peer or daemons. A test
    starts what it studies (a router kind and a stand-in peer); :meth:`destroy` stops them and
    removes the namespaces and the lab dir."""

    def __init__(self, plan: LabPlan) -> None:
        from cnilab.sim.backends.netns import NetnsBackend
        from cnilab.sim.runtime.paths import lab_dir

        state = LabState(lab=plan.lab, plan=plan)
        state.save()
        super().__init__(state, NetnsBackend(plan.lab, lab_dir(plan.lab)))

    def build(self, nodes: list[str], extra_routes: dict[str, list[tuple[str, str]]] | None = None) -> MiniLab:
        """Nodes ``nodes``, the plan's links between them, and each node's addresses and routes on those links."""
        from cnilab.sim.runtime.paths import ns_name

        plan, be = self.plan, self.backend
        links = [lk for lk in plan.links if lk.a.node in nodes and lk.b.node in nodes]
        for n in nodes:
            be.create_node(plan.node(n))
            with self.update() as st:
                st.namespaces[n] = ns_name(self.name, n)
        for lk in links:
            be.create_link(lk, plan)
        for n in nodes:
            be.configure_node(_on_links(plan.node(n), links))
            for dst, via in (extra_routes or {}).get(n, []):
                self.run(n, ["ip", "route", "add", dst, "via", via])
        with self.update() as st:
            st.extra["ifnames"] = be.ifnames
            st.status = "running"
        return self

    def destroy(self) -> None:
        from cnilab.sim.routers.frr import remove_scratch

        started = self.refresh().processes
        super().destroy()
        for rec in started:  # FRR's per-pid crash dirs, which FRR itself cannot remove
            remove_scratch(rec)


def _on_links(node: Node, links: list[Link]) -> Node:
    """``node`` with only the interfaces on ``links`` and the routes reachable through them."""
    ends = {e.iface for lk in links for e in (lk.a, lk.b) if e.node == node.name}
    ifaces = [i for i in node.interfaces if i.name in ends]
    nets = [a.network for i in ifaces for a in i.addresses]
    routes = [r for r in node.routes if r.via is None or any(r.via in n for n in nets)]
    return node.model_copy(update={"interfaces": ifaces, "routes": routes})


@contextlib.contextmanager
def mini_labs() -> Iterator[Callable[..., MiniLab]]:
    """A factory of :class:`MiniLab` (``make(plan, nodes, extra_routes=...)``); every lab made is destroyed."""
    labs: list[MiniLab] = []

    def make(plan: LabPlan, nodes: list[str], **kw: object) -> MiniLab:
        lab = MiniLab(plan)
        labs.append(lab)
        return lab.build(nodes, **kw)  # type: ignore[arg-type]

    try:
        yield make
    finally:
        for lab in reversed(labs):
            lab.destroy()


# -- a whole topology with daemons ------------------------------------------------------------------


@contextlib.contextmanager
def running_lab(tmp: Path, topology: str, edit: Callable[[Topology], Topology] | None = None,
                wait_prefixes: bool = True) -> Iterator[object]:
    """Bring up ``topology`` with daemons under a private state dir; wait for BGP; always destroy."""
    from cnilab.sim.checks import wait_converged
    from cnilab.sim.edge.control import EdgeClient

    topo = load_topology(TOPOLOGIES / topology)
    if edit is not None:
        topo = edit(topo)
    plan = build_plan(topo, f"t-{unique_tag()}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNILAB_STATE_DIR", str(tmp))
        with Lab.create(plan) as lab:
            if wait_prefixes:
                # BFD comes Up at the 1 s slow-start rate; tests time detection at the configured one.
                wait_converged(EdgeClient(lab.state.control["edge"]), plan)
            yield lab


def lab_fixture(topology: str, **kw: Any) -> Any:
    """A module-scoped fixture running ``topology`` with daemons (:func:`running_lab`, ``kw`` as it takes
    them) for every test of the module that asks for it: ``v1 = lab_fixture("v1-gre.yml")``."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
        with running_lab(tmp_path_factory.mktemp(Path(topology).stem), topology, **kw) as lab:
            yield lab

    return fixture
