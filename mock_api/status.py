"""Interconnect status from what the lab observes, in one pure function.

The API's four states and their reasons come from cnilab.sim.facts (seed 003's 'Possible States' mapped to
the current names), so the lab's faults and the API's answers cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from cnilab.sim.facts import load_facts
from pydantic import BaseModel

State = Literal["Pending", "Down", "Unhealthy", "Healthy"]


class Diagnosis(BaseModel):
    state: State
    reason: str | None = None
    reason_id: str | None = None

    def api_body(self) -> dict[str, str]:
        """The ``/status`` body: Pending and Healthy carry no reason in Cloudflare's schema."""
        if self.state in ("Down", "Unhealthy") and self.reason:
            return {"state": self.state, "reason": self.reason}
        return {"state": self.state}


def _reason(rid: str) -> Diagnosis:
    r = load_facts().states["reasons"][rid]
    return Diagnosis(state=r["state"], reason=r["text"], reason_id=rid)


def derive_status(cross_connect: bool, light_dbm: float | None, swapped: bool, link_up: bool) -> Diagnosis:
    """Status of an interconnect from its physical facts.

    ``light_dbm`` None means no light at all. Order matters: nothing else is observable before the
    cross-connect exists, and swapped fibres show as no link rather than as a level.
    """
    if not cross_connect:
        return _reason("no_cross_connect")
    if swapped:
        return _reason("rx_tx_swapped")
    if light_dbm is None:
        return _reason("no_light")
    if light_dbm < load_facts().min_rx_dbm:
        return _reason("low_light")
    if not link_up:
        return _reason("link_down")
    return Diagnosis(state="Healthy")
