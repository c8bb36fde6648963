"""The simulated lab, built from the same LabPlan the emulator builds: links, sessions, routing, traffic.

Routing is decided per address family 4 (the test traffic is IPv4): Cloudflare's edge sends traffic
for the customer's prefixes over the Established session with the highest interconnect priority
that carries the customer's announcement; the customer router sends traffic for Cloudflare's
ranges by local-pref. With ``internet_backup`` both fall back to the transit path when no CNI
route is left (the plan's static backup route, metric 1000).
"""

from __future__ import annotations

import random
from typing import Any

from cnilab.sim.bgp.bestpath import Candidate, best
from cnilab.sim.des.bfd import BfdEnd
from cnilab.sim.des.bgp import BgpEnd
from cnilab.sim.des.engine import Engine, SimClock
from cnilab.sim.des.link import Link
from cnilab.sim.des.params import SimParams
from cnilab.sim.topology.plan import LabPlan, Session

TRANSIT = "transit"


class SessionPair:
    """Both ends of one BGP session, and of its BFD session when BFD is on."""

    def __init__(self, world: World, sess: Session, index: int) -> None:
        link = world.links[sess.interconnect]
        self.sess, self.index = sess, index
        key = sess.key
        self.cf = BgpEnd(world, f"{key} cf", link, active=not sess.passive, md5=sess.md5,
                         hold=sess.hold_time, keepalive=sess.keepalive)
        self.customer = BgpEnd(world, f"{key} customer", link, active=True, md5=sess.customer_md5,
                               hold=sess.hold_time, keepalive=sess.keepalive)
        self.cf.peer, self.customer.peer = self.customer, self.cf
        self.bfd_cf = self.bfd_customer = None
        if sess.bfd:
            timers = (sess.bfd_tx_ms, sess.bfd_rx_ms, sess.bfd_multiplier)
            self.bfd_cf = BfdEnd(world, f"{key} cf", link, *timers, discr=2 * index + 1)
            self.bfd_customer = BfdEnd(world, f"{key} customer", link, *timers, discr=2 * index + 2)
            self.bfd_cf.peer, self.bfd_customer.peer = self.bfd_customer, self.bfd_cf
            self.bfd_cf.on_down, self.bfd_customer.on_down = self.cf.bfd_down, self.customer.bfd_down
            self.cf.bfd, self.customer.bfd = self.bfd_cf, self.bfd_customer

    def end(self, side: str) -> BgpEnd:
        return self.cf if side == "cf" else self.customer

    def bfd(self, side: str) -> BfdEnd | None:
        return self.bfd_cf if side == "cf" else self.bfd_customer


class Flow:
    """A sequenced packet flow at a constant rate; each packet is routed when it is sent."""

    def __init__(self, world: World, src: str, dst: str, rate_pps: float) -> None:
        self.world, self.src, self.dst, self.rate = world, src, dst, rate_pps
        self.interval = 1.0 / rate_pps
        self.side = "cf" if src == "inet" else "customer"
        self.running = True
        self.sent = self.delivered = self.lost = 0
        self.run = self.max_run = 0
        self.last_path: str | None = None
        self.first_on: dict[str, float] = {}
        self.log: list[tuple[float, str | None]] = []  # (send time, path delivered on, None = lost)
        self.timer = world.engine.after(0.0, self._send)

    def stop(self) -> None:
        self.running = False
        self.timer.cancel()

    def _send(self) -> None:
        world = self.world
        now = world.engine.now
        self.sent += 1
        path = world.best[self.side]
        delay = world.path_delay(path)
        if delay is None:
            self.lost += 1
            self.run += 1
            self.max_run = max(self.max_run, self.run)
            self.log.append((now, None))
        else:
            self.run = 0
            self.log.append((now, path))
            world.engine.after(delay, self._arrive, path)
        self.timer = world.engine.after(self.interval, self._send)

    def _arrive(self, path: str) -> None:
        self.delivered += 1
        if path != self.last_path:
            self.world.record("traffic", f"{self.src}->{self.dst}", path)
            self.last_path = path
        self.first_on.setdefault(path, self.world.engine.now)


class World:
    def __init__(self, plan: LabPlan, params: SimParams, seed: int, internet_backup: bool) -> None:
        self.plan, self.params = plan, params
        self.engine = Engine()
        self.clock = SimClock(self.engine)
        self.rng = random.Random(seed)
        self.transitions: list[tuple[float, str, str, str, str]] = []
        self.notes: list[str] = []
        self._conn = 0
        self.backup = internet_backup
        delay = params.link_delay_ms / 1000.0
        self.links = {lk.name: Link(lk.name, delay) for lk in plan.links}
        self.front = [self.links[lk.name] for lk in plan.links if lk.role in ("backbone", "backhaul")]
        self.back = [self.links[lk.name] for lk in plan.links if lk.role == "lan"]
        self.transit = [self.links[lk.name] for lk in plan.links if lk.role == "transit"]
        self.pairs = {s.key: SessionPair(self, s, i) for i, s in enumerate(plan.sessions)}
        self.best: dict[str, str | None] = {"cf": None, "customer": None}
        self.flow: Flow | None = None
        self.recompute()
        for pair in self.pairs.values():
            for bfd in (pair.bfd_cf, pair.bfd_customer):
                if bfd is not None:
                    bfd.start()
            # both ends start at once; the customer's first SYN goes out at a random instant
            pair.cf.start()
            self.engine.after(self.rng.uniform(0.0, 0.1), pair.customer.start)

    # -- bookkeeping ------------------------------------------------------------------------
    def record(self, kind: str, subject: str, state: Any, reason: str = "") -> None:
        self.transitions.append((self.engine.now, kind, subject, "none" if state is None else str(state), reason))

    def note_once(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def new_conn(self) -> int:
        self._conn += 1
        return self._conn

    # -- routing ----------------------------------------------------------------------------
    def recompute(self) -> None:
        cf_cands, cu_cands = [], []
        for pair in self.pairs.values():
            s = pair.sess
            if s.family != 4:
                continue
            if pair.cf.state == "Established" and pair.cf.peer_announces:
                cf_cands.append(Candidate(session=s.interconnect, priority=s.priority, as_path=(s.cust_asn,)))
            cu = pair.customer
            if cu.state == "Established" and cu.peer_announces and not cu.withdrawn:
                cu_cands.append(Candidate(session=s.interconnect, priority=s.local_pref, as_path=(s.cf_asn,)))
        for side, cands in (("cf", cf_cands), ("customer", cu_cands)):
            chosen = best(cands)
            path = chosen.session if chosen else (TRANSIT if self.backup else None)
            if path != self.best[side]:
                self.best[side] = path
                self.record("route", f"{side} best path", path)

    def path_delay(self, path: str | None) -> float | None:
        """One-way delay of a data packet over ``path`` end to end, or None if it is dropped."""
        if path is None:
            return None
        middle = self.transit if path == TRANSIT else [self.links[path]]
        total = 0.0
        for link in (*self.front, *middle, *self.back):
            d = link.carries("data", self.rng)
            if d is None:
                return None
            total += d
        return total
