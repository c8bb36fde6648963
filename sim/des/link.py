"""A simulated link: base delay plus whatever faults are on it.

Faults are interpreted the way a router on either end would experience them. ``blackhole`` makes
the link silent with the carrier still up (a failure inside a carrier's transport or a patch
panel): the routers find out through BFD or the BGP hold timer, which is the case failover design
is about. ``down``, ``swap`` (RX/TX swapped), ``light`` below the optic's minimum and the down half
of a ``flap`` also lose the carrier: both ends see the interface go down and drop their sessions
at once, as the emulator's ``ip link set down`` makes FRR and the edge's kernel do.
"""

from __future__ import annotations

import random
from typing import Literal

from sim.facts import load_facts

Traffic = Literal["bfd", "bgp", "data"]
SILENT = ("down", "blackhole", "swap")
CARRIER_LOSS = ("down", "swap")
SUPPORTED = ("down", "blackhole", "swap", "light", "flap", "loss", "delay", "drop-bfd", "drop-bgp")


class Link:
    __slots__ = ("delay", "faults", "flap_down", "min_rx", "name")

    def __init__(self, name: str, delay_s: float) -> None:
        self.name = name
        self.delay = delay_s
        self.faults: dict[str, float | None] = {}
        self.flap_down = False
        self.min_rx = load_facts().min_rx_dbm

    def carrier_lost(self) -> bool:
        f = self.faults
        light = f.get("light")
        return self.flap_down or any(k in f for k in CARRIER_LOSS) or (light is not None and light < self.min_rx)

    def silent(self) -> bool:
        f = self.faults
        if not f:
            return False
        if self.flap_down or any(k in f for k in SILENT):
            return True
        light = f.get("light")
        return light is not None and light < self.min_rx

    def carries(self, what: Traffic, rng: random.Random) -> float | None:
        """One-way delay for one packet of ``what``, or None when the link drops it."""
        f = self.faults
        if not f:
            return self.delay
        if self.silent() or (what == "bfd" and "drop-bfd" in f) or (what == "bgp" and "drop-bgp" in f):
            return None
        delay = self.delay + (f.get("delay") or 0.0) / 1000.0
        loss = f.get("loss")
        if loss and rng.random() * 100.0 < loss:
            return None
        return delay
