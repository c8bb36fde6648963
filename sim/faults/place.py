"""Where a fault lands in a lab plan: a link's edge-side end, or every link of a node.

Parsing values and the kinds themselves live in :mod:`cnilab.sim.faults.kinds`.
"""

from __future__ import annotations

from cnilab.sim.faults.mechanisms import FaultError, Place
from cnilab.sim.topology.plan import EDGE, LabPlan


def resolve_target(plan: LabPlan, target: str) -> list[Place]:
    """A link name -> its edge-side end; a node name -> every link of that node."""
    names = [lk.name for lk in plan.links]
    link = next((lk for lk in plan.links if lk.name == target), None)
    if link is not None:
        # Faults sit on the Cloudflare side of interconnects: the customer's side may be a router
        # image the lab does not control.
        a, b = (link.a, link.b) if link.b.node != EDGE else (link.b, link.a)
        l3 = plan.node(a.node).iface(a.iface).l3_name
        return [Place(target=target, node=a.node, iface=l3, peer_node=b.node, peer_iface=b.iface,
                      interconnect=link.interconnect)]
    if any(n.name == target for n in plan.nodes):
        places = []
        for lk in plan.links:
            for me, other in ((lk.a, lk.b), (lk.b, lk.a)):
                if me.node == target:
                    l3 = plan.node(me.node).iface(me.iface).l3_name
                    places.append(Place(target=target, node=me.node, iface=l3, peer_node=other.node,
                                        peer_iface=other.iface, interconnect=lk.interconnect))
        return places
    nodes = [n.name for n in plan.nodes]
    raise FaultError(f"no link or node named {target!r}; links: {', '.join(names)}; nodes: {', '.join(nodes)}")
