"""A simulated link: base delay plus whatever faults are on it.

Faults are interpreted the way a router on either end would experience them: ``down``,
``blackhole``, ``swap`` (RX/TX swapped: no link), ``light`` below the minimum receive level, and
the down half of a ``flap`` all make the link silent. The routers get no carrier event from this;
they find out through BFD or the BGP hold timer, as across a carrier's transport or cross-connect
failure, which is the case failover design is about.
"""

from __future__ import annotations

import random
from typing import Literal

from sim.facts import load_facts

Traffic = Literal["bfd", "bgp", "data"]
SILENT = ("down", "blackhole", "swap")
SUPPORTED = ("down", "blackhole", "swap", "light", "flap", "loss", "delay", "drop-bfd", "drop-bgp")


class Link:
    __slots__ = ("delay", "faults", "flap_down", "min_rx", "name")

    def __init__(self, name: str, delay_s: float) -> None:
        self.name = name
        self.delay = delay_s
        self.faults: dict[str, float | None] = {}
        self.flap_down = False
        self.min_rx = load_facts().min_rx_dbm

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
