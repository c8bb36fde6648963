"""Faults on the physical link: the carrier goes away (down, swap, flap, light below the floor)."""

from __future__ import annotations

import time
from typing import ClassVar

from cnilab.sim.facts import load_facts
from cnilab.sim.faults import mechanisms as mech
from cnilab.sim.faults.kinds.base import FaultKind, FaultSpec, SimEffect, duration_ms, unit_number
from cnilab.sim.faults.mechanisms import Applied, FaultError, Place, Site

DEFAULT_FLAP_PERIOD_S = 4.0


def _down(site: Site, place: Place, why: str) -> Applied:
    undo = mech.link_down(site.netns_path(place.node), place.iface)
    return Applied(mechanism="kernel", undo=undo,
                   text=f"{why} (ip link set {place.node}:{place.iface} down; the peer sees NO-CARRIER)")


class _NoCarrier(FaultKind):
    """The link is gone at layer 1: both ends see NO-CARRIER and drop their sessions at once."""

    api: ClassVar[dict[str, object]]
    why: ClassVar[str]

    def carrier_up(self, spec: FaultSpec) -> bool:
        return False

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(carrier=False)

    def api_link(self, spec: FaultSpec) -> dict[str, object]:
        return dict(self.api)

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        return _down(site, place, self.why)


class Down(_NoCarrier, name="down", help="carrier down (no value)"):
    api, why = {"link_up": False}, "carrier down"


class Swap(_NoCarrier, name="swap", help="RX/TX fibres swapped (no link; the API shows Pending)"):
    api, why = {"swapped": True}, "RX/TX swapped: no link"


class Flap(FaultKind, name="flap", example="4s",
           help=f"carrier down for half of PERIOD, up for the other half, repeatedly; PERIOD needs a unit, "
                f"e.g. 4s or 500ms (default {DEFAULT_FLAP_PERIOD_S:g}s)"):

    def parse(self, text: str | None) -> FaultSpec:
        period = duration_ms(text, "flap period") / 1000.0 if text else DEFAULT_FLAP_PERIOD_S
        if period <= 0:
            raise FaultError(f"flap period {text!r} must be positive")
        return FaultSpec(kind=self.name, period_s=period)

    def value_text(self, spec: FaultSpec) -> str:
        return f"{spec.period_s:g}s"

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(flap_period_s=spec.period_s)

    def api_link(self, spec: FaultSpec) -> dict[str, object]:
        return {"link_up": False}

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        # the first down is synchronous, so the flap starts now and not when the helper has started
        t0 = time.monotonic()
        link_up = mech.link_down(site.netns_path(place.node), place.iface)
        try:
            helper = mech.helper(site, place, "flap", "cnilab.sim.faults.flapd", "--iface", place.iface,
                                 "--period", str(spec.period_s), "--since", repr(t0))
        except Exception:
            mech.undo(link_up)
            raise
        undo = helper + link_up  # stop the flapper first, then make sure the link is up
        return Applied(mechanism="userspace", undo=undo,
                       text=f"userspace flapper: {place.node}:{place.iface} down {spec.period_s / 2:g}s / "
                            f"up {spec.period_s / 2:g}s")


class Light(FaultKind, name="light", example="-25dBm",
            help="receive light level in dBm, e.g. -25dBm (below the optic's floor: no link); 'none' = no light"):

    def parse(self, text: str | None) -> FaultSpec:
        if text in (None, "", "none", "off"):
            return FaultSpec(kind=self.name, light_dbm=None)
        dbm = unit_number(text, "dBm", "light", "a level in dBm (use e.g. -25dBm or none)")
        return FaultSpec(kind=self.name, light_dbm=dbm)

    def value_text(self, spec: FaultSpec) -> str:
        return "none" if spec.light_dbm is None else f"{spec.light_dbm:g}dBm"

    def carrier_up(self, spec: FaultSpec) -> bool:
        return spec.light_dbm is not None and spec.light_dbm >= load_facts().min_rx_dbm

    def sim_effect(self, spec: FaultSpec) -> SimEffect:
        return SimEffect(carrier=self.carrier_up(spec))

    def api_link(self, spec: FaultSpec) -> dict[str, object]:
        return {"light_dbm": spec.light_dbm}

    def apply(self, site: Site, place: Place, spec: FaultSpec) -> Applied:
        if not self.carrier_up(spec):
            return _down(site, place, "light below the optic's floor: no link")
        return Applied(mechanism="none", text=f"light {self.value_text(spec)} at {place.node}:{place.iface}: above "
                                              "the floor, no dataplane effect (API state only)")
