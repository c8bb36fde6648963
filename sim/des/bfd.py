"""BFD in the simulator: the edge's own RFC 5880 state machine, driven by the virtual clock.

There is one BFD implementation (:class:`cnilab.sim.edge.bfd_fsm.BfdSession`). Here it gets the
simulator's clock, the world's seeded RNG and a ``send`` that puts the encoded packet on the
simulated link (which may drop or delay it). What the simulator adds is bookkeeping: transitions
for the report, the BGP end to tear down on Down, and each detection as (time, last packet
received) for tests and reports, since failover times are built from that figure.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from typing import TYPE_CHECKING

from cnilab.sim.edge.bfd_fsm import BfdSession, BfdSessionInfo
from cnilab.sim.edge.bfd_packet import BfdPacket, Diag
from cnilab.sim.facts import load_facts

if TYPE_CHECKING:
    from cnilab.sim.des.link import Link
    from cnilab.sim.des.world import World

_REASONS = {
    Diag.ControlDetectionTimeExpired: "control detection time expired ({ms:g} ms without a packet)",
    Diag.NeighborSignaledSessionDown: "neighbor signalled session down",
    Diag.AdministrativelyDown: "administratively down",
}


class BfdEnd:
    def __init__(self, world: World, subject: str, link: Link, tx_ms: int, rx_ms: int, mult: int,
                 discr: int) -> None:
        self.world, self.subject, self.link = world, subject, link
        self.peer: BfdEnd | None = None
        self.on_down: Callable[[str], None] | None = None
        self.detections: list[tuple[float, float]] = []  # (went down, last packet received)
        slow_us = int(load_facts().bfd["slow_tx_interval_ms"]["value"]) * 1000
        self.fsm = BfdSession(key=subject, local=ip_address("192.0.2.1"), peer=ip_address("192.0.2.2"), ifname=None,
                              tx_ms=tx_ms, rx_ms=rx_ms, multiplier=mult, discr=discr, send=self._send,
                              clock=world.clock, rng=world.rng, on_change=self._changed, slow_tx_us=slow_us,
                              wall=lambda: world.engine.now)

    @property
    def state(self) -> str:
        return self.fsm.state.name

    def start(self) -> None:
        self.world.record("bfd", self.subject, self.state)
        self.fsm.start()

    def _send(self, data: bytes) -> None:
        delay = self.link.carries("bfd", self.world.rng)
        if delay is not None and self.peer is not None:
            self.world.engine.after(delay, self.peer.fsm.receive, BfdPacket.decode(data))

    def _changed(self, info: BfdSessionInfo, old: str, new: str) -> None:
        reason = ""
        if new == "Down":
            reason = _REASONS.get(Diag(info.local_diag), info.local_diag_name).format(ms=info.detection_ms)
            if info.local_diag == Diag.ControlDetectionTimeExpired:
                self.detections.append((self.world.engine.now, info.last_rx or 0.0))
        self.world.record("bfd", self.subject, new, reason)
        if old == "Up" and new != "Up" and self.on_down is not None:
            self.on_down(reason)
