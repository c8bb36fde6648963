"""Degraded links: random loss, delay, rate limits (netem/tbf when the kernel has them)."""

from __future__ import annotations

from cnilab.sim.faults import mechanisms as mech
from cnilab.sim.faults.kinds.base import FaultKind, FaultSpec, SimEffect, duration_ms, rate_kbit, unit_number
from cnilab.sim.faults.mechanisms import Applied, FaultError, Place, Site


class Loss(FaultKind, name="loss", example="30%",
           help="random loss of each packet, each direction, e.g. 30% (a bare number is a percentage)"):

    def parse(self, text: str | None) -> FaultSpec:
        text = self.required(text)
        pct = unit_number(text, "%", "loss", "a percentage (use e.g. 30%)")
        if not 0 < pct <= 100:
            raise FaultError(f"loss {text!r} must be between 0 and 100%")
        return FaultSpec(kind=self.name, loss_pct=pct)

    def value_text(self, spec: FaultSpec) -> str:
        return f"{spec.loss_pct:g}%"

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(loss_pct=spec.loss_pct or 0.0)

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        path, where = site.netns_path(place.node), f"{place.node}:{place.iface}"
        if mech.netem_available():
            undo = mech.tc_root(path, place.iface, "netem", "loss", f"{spec.loss_pct}%")
            return Applied(mechanism="kernel", undo=undo,
                           text=f"kernel netem loss {spec.loss_pct:g}% on {where} egress")
        # numgen: a per-packet uniform draw, in both directions, so each direction loses loss_pct
        # independently. IP packets only: losing ARP too would add neighbour outages on top.
        rule = f"meta protocol {{ ip, ip6 }} numgen random mod 10000 < {int((spec.loss_pct or 0) * 100)} drop"
        return Applied(mechanism="nftables", undo=mech.nft_filter(path, self.name, place.iface, rule),
                       text=f"nftables numgen random {spec.loss_pct:g}% of IP packets both directions on {where} "
                            "(no netem in this kernel)")


class Delay(FaultKind, name="delay", example="100ms/20ms",
            help="one-way delay each direction with a unit, e.g. 100ms or 100ms/20ms (delay/jitter)"):

    def parse(self, text: str | None) -> FaultSpec:
        d, _, j = self.required(text).partition("/")
        return FaultSpec(kind=self.name, delay_ms=duration_ms(d, "delay"),
                         jitter_ms=duration_ms(j, "jitter") if j else 0.0)

    def value_text(self, spec: FaultSpec) -> str:
        return f"{spec.delay_ms:g}ms" + (f"/{spec.jitter_ms:g}ms" if spec.jitter_ms else "")

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(delay_ms=spec.delay_ms or 0.0, jitter_ms=spec.jitter_ms or 0.0)

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        path, where = site.netns_path(place.node), f"{place.node}:{place.iface}"
        if mech.netem_available():
            args = ["netem", "delay", f"{spec.delay_ms}ms"] + ([f"{spec.jitter_ms}ms"] if spec.jitter_ms else [])
            peer = site.netns_path(place.peer_node)
            undo = mech.tc_root(path, place.iface, *args) + mech.tc_root(peer, place.peer_iface, *args)
            return Applied(mechanism="kernel", undo=undo,
                           text=f"kernel netem delay {self.value_text(spec)} on both ends of {where}")
        q = mech.nfqueue_num(site.lab, place.iface)
        # until the helper is bound, --queue-bypass lets packets through undelayed
        undo = mech.helper(site, place, "delay", "cnilab.sim.faults.delayd", "--queue", str(q), "--delay-ms",
                           str(spec.delay_ms), "--jitter-ms", str(spec.jitter_ms or 0), ready="bound to NFQUEUE")
        try:
            undo = mech.nfqueue_both_ways(path, place.iface, q) + undo
        except FaultError:
            mech.undo(undo)
            raise
        return Applied(mechanism="userspace", undo=undo,
                       text=f"userspace delay {self.value_text(spec)} each direction on {where} "
                            f"(NFQUEUE {q}; no netem in this kernel)")


class Rate(FaultKind, name="rate", example="10mbit", help="rate limit each direction with a unit, e.g. 10mbit"):

    def parse(self, text: str | None) -> FaultSpec:
        kbit = rate_kbit(self.required(text), "rate")
        if kbit < 8:
            raise FaultError(f"rate {text!r} is below 8kbit")
        return FaultSpec(kind=self.name, rate_kbit=kbit)

    def value_text(self, spec: FaultSpec) -> str:
        return f"{spec.rate_kbit}kbit"

    def sim_effect(self, spec: FaultSpec) -> None:
        return None  # the simulator has no queues: a rate limit needs the emulator

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        burst = max(1600, (spec.rate_kbit or 0) * 1000 // 8 // 50)  # ~20 ms of traffic
        undo = []
        for node, iface in ((place.node, place.iface), (place.peer_node, place.peer_iface)):
            undo += mech.tc_root(site.netns_path(node), iface, "tbf", "rate", f"{spec.rate_kbit}kbit",
                                 "burst", str(burst), "latency", "50ms")
        return Applied(mechanism="kernel", undo=undo,
                       text=f"kernel tc tbf {spec.rate_kbit}kbit on both ends of {place.node}:{place.iface}")
