"""The static picture of a lab: nodes, links and interconnect labels, built once at start-up.

The plan has addressing and MTUs but not the site or dataplane version of an interconnect; those
come from the topology file recorded in the lab state. A topology file that moved or no longer
validates only costs the labels (the drawing still works), since the lab that runs is the plan.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cnilab.sim.dashboard.models import EndView, InterconnectView, LinkView, NodeView, PathView, TopologyView
from cnilab.sim.state import LabState
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.plan import EDGE, LabPlan

log = logging.getLogger(__name__)

TRANSIT_PATH = "transit"


def kernel_ifname(state: LabState, node: str, l3_name: str) -> str:
    """Same mapping as ``Lab.ifname`` (VLAN sub-interfaces fall back to the parent without 8021q)."""
    return state.extra.get("ifnames", {}).get(node, {}).get(l3_name, l3_name)


def _load_topology(state: LabState) -> Topology | None:
    if not state.topology_path:
        return None
    from cnilab.sim.topology.load import ConfigError, load_topology

    try:
        return load_topology(Path(state.topology_path))
    except (ConfigError, OSError, ValueError) as exc:
        log.warning("topology %s not readable (%s); interconnect labels limited to the plan", state.topology_path, exc)
        return None


def _interconnect(plan: LabPlan, topo: Topology | None, name: str, mtu: int) -> InterconnectView:
    spec = next((ic for ic in topo.interconnects if ic.name == name), None) if topo else None
    iface = next((i for i in plan.node(EDGE).interfaces if i.name == name), None)
    sess = plan.sessions_for(name)
    bfd = next((f"{s.bfd_tx_ms}x{s.bfd_multiplier}" for s in sess if s.bfd), None)
    return InterconnectView(
        name=name, site=spec.site if spec else None, dataplane=spec.dataplane if spec else None,
        service=spec.service if spec else None, gre=any(t.interconnect == name for t in plan.tunnels),
        vlan=iface.vlan if iface else None, mtu=mtu, path_mtu=plan.path_mtu.get(name, {}), bfd=bfd)


def build_view(state: LabState) -> TopologyView:
    """Nodes, links (kernel interface names) and the edge interfaces that tell which path carries traffic."""
    plan = state.plan
    topo = _load_topology(state)
    links: list[LinkView] = []
    paths: list[PathView] = []
    for lk in plan.links:
        ends = []
        for ep in (lk.a, lk.b):
            l3 = plan.node(ep.node).iface(ep.iface).l3_name
            ends.append(EndView(node=ep.node, iface=kernel_ifname(state, ep.node, l3)))
        view = LinkView(name=lk.name, role=lk.role, a=ends[0], b=ends[1], mtu=lk.mtu,
                        interconnect=_interconnect(plan, topo, lk.interconnect, lk.mtu) if lk.interconnect else None)
        edge_end = next((e for e in ends if e.node == EDGE), None)
        if edge_end is not None and (lk.role == "interconnect" or (lk.role == "transit")):
            label = lk.interconnect or TRANSIT_PATH
            view.path = label
            paths.append(PathView(label=label, iface=edge_end.iface))
        links.append(view)
    return TopologyView(lab=plan.lab, topology=plan.topology, description=topo.description if topo else None,
                        nodes=[NodeView(name=n.name, role=n.role) for n in plan.nodes], links=links, paths=paths)
