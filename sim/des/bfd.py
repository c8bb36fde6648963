"""BFD asynchronous mode (RFC 5880), one end of a single-hop session.

Modelled: the Down/Init/Up three-way handshake, slow transmission (>= 1 s, from the facts) while
not Up, the transmit interval max(own desired TX, peer's required RX) reduced by 0-25 % random
jitter per packet (RFC 5880 6.8.7; 10-25 % when the multiplier is 1), and the detection timer:
the session goes Down exactly ``peer multiplier x max(own required RX, peer desired TX)`` after
the last control packet received (RFC 5880 6.8.4). That last property is what failover times
are built from, so each detection keeps (time, last packet time) for tests and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.des.engine import Timer
from sim.facts import load_facts

if TYPE_CHECKING:
    from sim.des.link import Link
    from sim.des.world import World


class BfdEnd:
    def __init__(self, world: World, subject: str, link: Link, tx_ms: int, rx_ms: int, mult: int) -> None:
        self.world = world
        self.subject = subject
        self.link = link
        self.tx_ms, self.rx_ms, self.mult = tx_ms, rx_ms, mult
        self.slow_ms = int(load_facts().bfd["slow_tx_interval_ms"]["value"])
        self.state = "Down"
        self.peer: BfdEnd | None = None
        self.remote_tx_ms = self.slow_ms
        self.remote_rx_ms = 0
        self.remote_mult = mult
        self.last_rx: float | None = None
        self.detect: Timer | None = None
        self.detections: list[tuple[float, float]] = []  # (went down, last packet received)
        self.on_down: Callable[[str], None] | None = None

    def start(self) -> None:
        self.world.record("bfd", self.subject, self.state)
        self.world.engine.after(self.world.rng.uniform(0.0, self.slow_ms / 1000.0), self._tx)

    def desired_tx_ms(self) -> int:
        return self.tx_ms if self.state == "Up" else max(self.tx_ms, self.slow_ms)

    def _tx(self) -> None:
        world = self.world
        low, high = (0.75, 0.90) if self.mult == 1 else (0.75, 1.0)
        interval = max(self.desired_tx_ms(), self.remote_rx_ms) / 1000.0
        world.engine.after(interval * world.rng.uniform(low, high), self._tx)
        delay = self.link.carries("bfd", world.rng)
        if delay is not None and self.peer is not None:
            world.engine.after(delay, self.peer.receive, self.state, self.desired_tx_ms(), self.rx_ms, self.mult)

    def receive(self, rstate: str, rtx_ms: int, rrx_ms: int, rmult: int) -> None:
        self.remote_tx_ms, self.remote_rx_ms, self.remote_mult = rtx_ms, rrx_ms, rmult
        self.last_rx = self.world.engine.now
        if self.state == "AdminDown":
            return
        if rstate == "AdminDown":
            self._set("Down", "neighbor signalled AdminDown")
        elif self.state == "Down":
            if rstate == "Down":
                self._set("Init", "")
            elif rstate == "Init":
                self._set("Up", "")
        elif self.state == "Init":
            if rstate in ("Init", "Up"):
                self._set("Up", "")
        elif self.state == "Up" and rstate == "Down":
            self._set("Down", "neighbor signalled session down")
        if self.state in ("Init", "Up"):
            if self.detect is not None:
                self.detect.cancel()
            self.detect = self.world.engine.after(self.detection_s(), self._expired)

    def detection_s(self) -> float:
        return self.remote_mult * max(self.rx_ms, self.remote_tx_ms) / 1000.0

    def _expired(self) -> None:
        self.detections.append((self.world.engine.now, self.last_rx or 0.0))
        self._set("Down", f"control detection time expired ({self.detection_s() * 1000:g} ms without a packet)")

    def _set(self, state: str, reason: str) -> None:
        if state == self.state:
            return
        old, self.state = self.state, state
        if state == "Down" and self.detect is not None:
            self.detect.cancel()
            self.detect = None
        self.world.record("bfd", self.subject, state, reason)
        if old == "Up" and state != "Up" and self.on_down is not None:
            self.on_down(reason)
