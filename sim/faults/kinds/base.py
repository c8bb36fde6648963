"""The fault-kind contract and its registry.

A fault kind is one class: how its value is written (with units), whether the link keeps its
carrier, what the simulator does with it, what the mock API's lifecycle shows, and how the emulator
applies it. ``cnilab fault``, topology files, scenarios (both executors), the dashboard and the mock
API all go through :func:`parse_fault` and the registered class, so a value means one thing
everywhere.

Units. A bare number is accepted only where it cannot be misread: loss (percent) and light (dBm).
Durations (delay, flap period) and rates must carry their unit (``4s``, ``250ms``, ``10mbit``):
``flap 4`` once meant a 4 ms period in the emulator and 4 s half-periods in the simulator.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from cnilab.sim.faults.mechanisms import Applied, FaultError, Place, Site
from pydantic import BaseModel

Traffic = Literal["bfd", "bgp", "data"]
EVERYTHING: frozenset[str] = frozenset({"bfd", "bgp", "data"})


class FaultSpec(BaseModel):
    """A parsed fault: the kind and its value in canonical units."""

    kind: str
    loss_pct: float | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    rate_kbit: int | None = None
    period_s: float | None = None
    light_dbm: float | None = None

    @property
    def value_text(self) -> str | None:
        """The value as ``cnilab fault`` would take it back (round-trips through parse_fault)."""
        return fault_kind(self.kind).value_text(self)

    @property
    def carrier_up(self) -> bool:
        """Whether the link keeps its carrier under this fault."""
        return fault_kind(self.kind).carrier_up(self)


@dataclass(frozen=True, slots=True)
class SimEffect:
    """What a fault does to a simulated link (cnilab.sim.des.link).

    ``carrier=False``: both ends see the interface go down and drop their sessions at once, as
    ``ip link set down`` makes FRR and the edge's kernel do; nothing crosses. ``drops``: traffic
    classes silently dropped with the carrier up (the routers only learn it from BFD or the hold
    timer). ``flap_period_s``: the carrier goes down for half the period, up for the other half.
    """

    carrier: bool = True
    drops: frozenset[str] = frozenset()
    loss_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    flap_period_s: float | None = None


class FaultKind(ABC):
    """One kind of fault. A concrete kind names itself in its class statement, which registers it:
    ``class Loss(FaultKind, name="loss", example="30%", help=...)``; it implements parse and apply.
    A family of kinds (a base sharing apply) gives no name and is not registered."""

    name: ClassVar[str]
    help: ClassVar[str]
    example: ClassVar[str | None] = None
    """A value as the user writes it (None: the kind takes no value)."""

    def __init_subclass__(cls, *, name: str | None = None, help: str = "", example: str | None = None,
                          **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name, cls.help, cls.example = name, help, example
            register(cls)

    def parse(self, text: str | None) -> FaultSpec:
        """Default for kinds without a value."""
        if text:
            raise FaultError(f"fault {self.name} takes no value (got {text!r})")
        return FaultSpec(kind=self.name)

    def required(self, text: str | None) -> str:
        """``text``, or a FaultError asking for a value like the kind's example."""
        if not text:
            raise FaultError(f"fault {self.name} needs a value, e.g. {self.example}")
        return text

    def value_text(self, spec: FaultSpec) -> str | None:
        return None

    def carrier_up(self, spec: FaultSpec) -> bool:
        return True

    @abstractmethod
    def sim_effect(self, spec: FaultSpec) -> SimEffect | None:
        """The effect on a simulated link; None when the simulator does not model this kind."""

    def api_link(self, spec: FaultSpec) -> dict[str, object]:
        """Fields of the mock API's link observation this fault sets (light_dbm, swapped, link_up).

        Empty for faults the API cannot see: a silent failure leaves the interconnect Active.
        """
        return {}

    @abstractmethod
    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        """Make the fault real at one place of a running lab; the undo steps go in the result."""


REGISTRY: dict[str, FaultKind] = {}


def register(cls: type[FaultKind]) -> type[FaultKind]:
    if cls.name in REGISTRY:
        raise RuntimeError(f"fault kind {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def fault_kind(name: str) -> FaultKind:
    try:
        return REGISTRY[name]
    except KeyError:
        raise FaultError(f"unknown fault kind {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def parse_fault(kind: str, value: str | float | None) -> FaultSpec:
    """Turn ``(kind, value)`` from any front end into a :class:`FaultSpec`, or say what is wrong."""
    text = None if value is None else str(value).strip()
    return fault_kind(kind).parse(text or None)


# -- units -------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([\d.]+)\s*(ms|s)?\s*$")
_RATE = re.compile(r"^\s*([\d.]+)\s*([kmg]?)(bit|bps)?\s*$", re.I)


def duration_ms(text: str, what: str) -> float:
    """``250ms`` or ``4s`` in milliseconds; a bare number is refused (ms or s?)."""
    m = _DURATION.match(text)
    if not m:
        raise FaultError(f"{what} {text!r} is not a duration (use e.g. 100ms or 4s)")
    if m.group(2) is None:
        raise FaultError(f"{what} {text!r} needs a unit: write {text}s or {text}ms")
    return float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)


def rate_kbit(text: str, what: str) -> int:
    """``10mbit``, ``512kbit``, ``1gbit`` in kbit/s; a bare number is refused (bit/s or kbit/s?)."""
    m = _RATE.match(text)
    if not m or not m.group(3):
        raise FaultError(f"{what} {text!r} is not a rate with a unit (use e.g. 10mbit or 512kbit)")
    mult = {"": 1 / 1000, "k": 1, "m": 1000, "g": 1000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def unit_number(text: str, unit: str, what: str, usage: str) -> float:
    """``30%`` or ``-25dBm``: a number, its ``unit`` optional (any case); else a FaultError saying ``usage``."""
    try:
        return float(text.strip().lower().removesuffix(unit.lower()))
    except ValueError:
        raise FaultError(f"{what} {text!r} is not {usage}") from None
