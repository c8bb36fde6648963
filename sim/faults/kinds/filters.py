"""Silent faults: the carrier stays up and packets vanish (nftables netdev filters)."""

from __future__ import annotations

from typing import ClassVar

from cnilab.sim.faults import mechanisms as mech
from cnilab.sim.faults.kinds.base import EVERYTHING, FaultKind, FaultSpec, SimEffect
from cnilab.sim.faults.mechanisms import Applied, Place, Site


class _Filter(FaultKind):
    rule: ClassVar[str]
    drops: ClassVar[frozenset[str]]
    what: ClassVar[str]

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(drops=self.drops)

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        undo = mech.nft_filter(site.netns_path(place.node), self.name, place.iface, self.rule)
        return Applied(mechanism="nftables", undo=undo,
                       text=f"nftables netdev {self.what} on {place.node}:{place.iface}")


class Blackhole(_Filter, name="blackhole",
                help="silently drop everything both ways (the path dies but the carrier stays up)"):
    rule, drops, what = "drop", EVERYTHING, "ingress+egress drop"


class DropBfd(_Filter, name="drop-bfd", help="drop only BFD (UDP 3784)"):
    rule, drops, what = "udp dport { 3784, 4784 } drop", frozenset({"bfd"}), "drop udp 3784"


class DropBgp(_Filter, name="drop-bgp", help="drop only BGP (TCP 179)"):
    rule, drops, what = "tcp dport 179 drop; tcp sport 179 drop", frozenset({"bgp"}), "drop tcp 179"
