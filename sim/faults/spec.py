"""Fault kinds, their values, and where a fault lands.

Values are written the way an engineer says them: ``30%``, ``100ms/20ms``, ``10mbit``, ``-25dBm``,
``4s``. Parsing them is separated from applying them so the CLI, the topology file, scenarios, the
dashboard and the simulator agree on what ``loss 30%`` means.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from sim.facts import load_facts
from sim.topology.plan import EDGE, LabPlan

FaultKind = Literal["down", "flap", "blackhole", "loss", "delay", "rate", "drop-bfd", "drop-bgp", "light", "swap"]
KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]

HELP = {
    "down": "carrier down (no value)",
    "flap": "carrier down/up every PERIOD, e.g. 4s (default 4s)",
    "blackhole": "silently drop everything both ways (the path dies but the carrier stays up)",
    "loss": "random loss, e.g. 30%",
    "delay": "one-way delay each direction, e.g. 100ms or 100ms/20ms (delay/jitter)",
    "rate": "rate limit each direction, e.g. 10mbit",
    "drop-bfd": "drop only BFD (UDP 3784)",
    "drop-bgp": "drop only BGP (TCP 179)",
    "light": "receive light level in dBm, e.g. -25dBm (below -20 dBm: Unhealthy); 'none' = no light",
    "swap": "RX/TX fibres swapped (no link; the API shows Pending)",
}


class FaultError(ValueError):
    """A fault request that cannot be honoured, phrased for the person who asked."""


class FaultSpec(BaseModel):
    kind: FaultKind
    loss_pct: float | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    rate_kbit: int | None = None
    period_s: float | None = None
    light_dbm: float | None = None

    @property
    def value_text(self) -> str | None:
        k = self.kind
        if k == "loss":
            return f"{self.loss_pct:g}%"
        if k == "delay":
            return f"{self.delay_ms:g}ms" + (f"/{self.jitter_ms:g}ms" if self.jitter_ms else "")
        if k == "rate":
            return f"{self.rate_kbit}kbit"
        if k == "flap":
            return f"{self.period_s:g}s"
        if k == "light":
            return "none" if self.light_dbm is None else f"{self.light_dbm:g}dBm"
        return None

    @property
    def carrier_up(self) -> bool:
        """Whether the link keeps its carrier under this fault (light above the optic's floor)."""
        if self.kind in ("down", "swap"):
            return False
        if self.kind == "light":
            return self.light_dbm is not None and self.light_dbm >= load_facts().min_rx_dbm
        return True


_MS = re.compile(r"^\s*([\d.]+)\s*(ms|s)?\s*$")
_RATE = re.compile(r"^\s*([\d.]+)\s*([kmg]?)(bit|bps)?\s*$", re.I)


def _ms(text: str, what: str) -> float:
    m = _MS.match(text)
    if not m:
        raise FaultError(f"{what} {text!r} is not a duration (use e.g. 100ms or 1s)")
    return float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)


def parse_fault(kind: str, value: str | float | None) -> FaultSpec:
    """Turn ``(kind, value)`` from any front end into a :class:`FaultSpec`, or say what is wrong."""
    if kind not in KINDS:
        raise FaultError(f"unknown fault kind {kind!r}; choose one of: {', '.join(KINDS)}")
    text = None if value is None else str(value).strip()
    if kind in ("down", "blackhole", "drop-bfd", "drop-bgp", "swap"):
        if text:
            raise FaultError(f"fault {kind} takes no value (got {text!r})")
        return FaultSpec(kind=kind)
    if kind == "loss":
        if not text:
            raise FaultError("fault loss needs a percentage, e.g. 30%")
        try:
            pct = float(text.rstrip("%"))
        except ValueError:
            raise FaultError(f"loss {text!r} is not a percentage (use e.g. 30%)") from None
        if not 0 < pct <= 100:
            raise FaultError(f"loss {text!r} must be between 0 and 100%")
        return FaultSpec(kind=kind, loss_pct=pct)
    if kind == "delay":
        if not text:
            raise FaultError("fault delay needs a value, e.g. 100ms or 100ms/20ms")
        d, _, j = text.partition("/")
        return FaultSpec(kind=kind, delay_ms=_ms(d, "delay"), jitter_ms=_ms(j, "jitter") if j else 0.0)
    if kind == "rate":
        m = _RATE.match(text or "")
        if not m:
            raise FaultError(f"rate {text!r} is not a rate (use e.g. 10mbit)")
        mult = {"": 1 / 1000, "k": 1, "m": 1000, "g": 1000_000}[m.group(2).lower()]
        kbit = int(float(m.group(1)) * mult)
        if kbit < 8:
            raise FaultError(f"rate {text!r} is below 8kbit")
        return FaultSpec(kind=kind, rate_kbit=kbit)
    if kind == "flap":
        return FaultSpec(kind=kind, period_s=_ms(text, "flap period") / 1000.0 if text else 4.0)
    # light
    if text in (None, "", "none", "off"):
        return FaultSpec(kind=kind, light_dbm=None)
    try:
        dbm = float(text.lower().removesuffix("dbm"))
    except ValueError:
        raise FaultError(f"light {text!r} is not a level in dBm (use e.g. -25dBm or none)") from None
    return FaultSpec(kind=kind, light_dbm=dbm)


class Place(BaseModel):
    """Where a fault is applied: a node's interface (always on the side the lab owns)."""

    target: str
    node: str
    iface: str
    peer_node: str
    peer_iface: str
    interconnect: str | None = None


def resolve_target(plan: LabPlan, target: str) -> list[Place]:
    """A link name -> its edge-side end; a node name -> every link of that node."""
    names = [lk.name for lk in plan.links]
    link = next((lk for lk in plan.links if lk.name == target), None)
    if link is not None:
        # Faults sit on the Cloudflare side of interconnects: the customer's side may be a router
        # image the lab does not control.
        a, b = (link.a, link.b) if link.b.node != EDGE else (link.b, link.a)
        l3 = plan.node(a.node).iface(a.iface).l3_name
        return [Place(target=target, node=a.node, iface=l3, peer_node=b.node, peer_iface=b.iface,
                      interconnect=link.interconnect)]
    if any(n.name == target for n in plan.nodes):
        places = []
        for lk in plan.links:
            for me, other in ((lk.a, lk.b), (lk.b, lk.a)):
                if me.node == target:
                    l3 = plan.node(me.node).iface(me.iface).l3_name
                    places.append(Place(target=target, node=me.node, iface=l3, peer_node=other.node,
                                        peer_iface=other.iface, interconnect=lk.interconnect))
        return places
    nodes = [n.name for n in plan.nodes]
    raise FaultError(f"no link or node named {target!r}; links: {', '.join(names)}; nodes: {', '.join(nodes)}")
