"""The paths between Cloudflare and the customer, as interfaces on each side, and samplers over them.

A path is named after its interconnect (``ewr1``) or ``internet-backup`` for the transit; the same
names label the counters a :class:`~cnilab.sim.probes.traffic.PathSampler` reads and the best path an
observer reports, so "traffic moved to ewr2" and "the route moved to ewr2" can be compared.
"""

from __future__ import annotations

from cnilab.sim.handle import LabHandle
from cnilab.sim.probes.traffic import PathSampler
from cnilab.sim.topology.plan import CUSTOMER, EDGE, TRANSIT, LabPlan

BACKUP = "internet-backup"
"""Label of the transit path (the customer's Internet backup)."""


def path_ifaces(plan: LabPlan) -> dict[str, str]:
    """Edge interfaces that lead to the customer: each interconnect, and the transit backup."""
    out = {lk.a.iface if lk.a.node == EDGE else lk.b.iface: lk.name
           for lk in plan.links if lk.role == "interconnect"}
    if any(n.name == TRANSIT for n in plan.nodes):
        out["transit0"] = BACKUP
    return out


def customer_path_ifaces(plan: LabPlan) -> dict[str, str]:
    """Customer-router interfaces that lead to Cloudflare: each interconnect, its GRE tunnel (the
    customer's own name for it when declared), and the transit backup."""
    out = {lk.a.iface if lk.a.node == CUSTOMER else lk.b.iface: lk.name
           for lk in plan.links if lk.role == "interconnect"}
    for t in plan.tunnels:
        out[t.declared.name if t.declared else t.cust_ifname] = t.interconnect
    if any(n.name == TRANSIT for n in plan.nodes):
        out["transit0"] = BACKUP
    return out


SIDE_NODE = {"cf": EDGE, "customer": CUSTOMER}
"""Which node's decision a side's path is: Cloudflare->customer is the edge's, the reverse the customer's."""


def side_ifaces(plan: LabPlan, side: str) -> dict[str, str]:
    return path_ifaces(plan) if side == "cf" else customer_path_ifaces(plan)


def path_label(plan: LabPlan, dev: str | None) -> str | None:
    """The path an outgoing interface of either router belongs to (``transit`` for the backup)."""
    if dev is None:
        return None
    if dev.startswith("transit"):
        return "transit"
    base = dev.split(".")[0].removeprefix("gre-")
    if any(s.interconnect == base for s in plan.sessions):
        return base
    known = {**path_ifaces(plan), **{t.cf_ifname: t.interconnect for t in plan.tunnels}}
    return known.get(dev, dev)


def path_sampler(lab: LabHandle, side: str, period: float, min_pkts: int) -> PathSampler:
    """A sampler of the TX counters on ``side``'s paths (not started: use it as a context manager)."""
    return PathSampler(lab.netns_path(SIDE_NODE[side]), side_ifaces(lab.plan, side), period=period,
                       min_pkts=min_pkts)
