"""A simulated link: base delay plus the effects of whatever faults are on it.

The faults are the same objects the emulator applies (cnilab.sim.faults.kinds); each kind says what it
does here through :class:`~cnilab.sim.faults.kinds.SimEffect`. A lost carrier (``down``, ``swap``,
``light`` below the optic's floor, the down half of a ``flap``) lets nothing through and both ends
drop their sessions at once; a silent fault (``blackhole``, ``drop-bfd``) drops packets with the
carrier up, so the routers find out through BFD or the BGP hold timer.
"""

from __future__ import annotations

import random

from cnilab.sim.faults.kinds import EVERYTHING, FaultSpec, SimEffect, Traffic


class Link:
    __slots__ = ("delay", "effects", "faults", "flap_down", "name")

    def __init__(self, name: str, delay_s: float) -> None:
        self.name = name
        self.delay = delay_s
        self.faults: dict[str, FaultSpec] = {}
        self.effects: dict[str, SimEffect] = {}
        self.flap_down = False

    def set_fault(self, spec: FaultSpec, effect: SimEffect) -> None:
        self.faults[spec.kind] = spec
        self.effects[spec.kind] = effect

    def clear(self) -> bool:
        """Remove every fault; True when there was something to remove."""
        had = bool(self.faults) or self.flap_down
        self.faults.clear()
        self.effects.clear()
        self.flap_down = False
        return had

    def carrier_lost(self) -> bool:
        return self.flap_down or any(not e.carrier for e in self.effects.values())

    def silent(self) -> bool:
        """Nothing crosses: no carrier, or everything dropped."""
        return self.carrier_lost() or any(e.drops >= EVERYTHING for e in self.effects.values())

    def carries(self, what: Traffic, rng: random.Random) -> float | None:
        """One-way delay for one packet of ``what``, or None when the link drops it."""
        if not self.effects and not self.flap_down:
            return self.delay
        if self.carrier_lost() or any(what in e.drops for e in self.effects.values()):
            return None
        delay = self.delay
        for e in self.effects.values():
            if e.loss_pct and rng.random() * 100.0 < e.loss_pct:
                return None
            if e.delay_ms:
                jitter = rng.uniform(-e.jitter_ms, e.jitter_ms) if e.jitter_ms else 0.0
                delay += max(0.0, e.delay_ms + jitter) / 1000.0
        return delay
