"""Magic facts (``sim/data/magic.yaml``): each figure with its source; unpublished ones say ``model``."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

Rate = Literal["low", "mid", "high"]
HcType = Literal["reply", "request"]
Direction = Literal["unidirectional", "bidirectional"]
State = Literal["healthy", "degraded", "down"]


class Timing(BaseModel):
    """The timing parameters of the health checks (published where Cloudflare publishes them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    probe_interval_s: dict[str, float]
    probe_timeout_s: float
    reprobes: int
    degraded_window_s: float
    degraded_min_failures: int
    degraded_ratio: float
    down_window_s: float
    down_min_samples: int
    recover_successes: int
    healthy_window_probes: int
    healthy_ratio: float
    penalty: dict[str, int]
    initial: State

    def interval(self, rate: str) -> float:
        return self.probe_interval_s[rate]

    def with_intervals(self, intervals: dict[str, float] | None = None, **kw: Any) -> Timing:
        data = self.model_dump()
        if intervals:
            data["probe_interval_s"] = {**data["probe_interval_s"], **intervals}
        data.update({k: v for k, v in kw.items() if v is not None})
        return Timing(**data)


@functools.cache
def raw() -> dict[str, Any]:
    return yaml.safe_load(resources.files("cnilab.sim.data").joinpath("magic.yaml").read_text())


@functools.cache
def timing() -> Timing:
    d = raw()
    hc, st, pr = d["health_check"], d["states"], d["priority"]
    return Timing(
        probe_interval_s=hc["probe_interval_s"]["value"], probe_timeout_s=hc["probe_timeout_s"]["value"],
        reprobes=hc["reprobes"]["value"], degraded_window_s=st["degraded"]["window_s"],
        degraded_min_failures=st["degraded"]["min_failures"], degraded_ratio=st["degraded"]["failure_ratio"],
        down_window_s=st["down"]["window_s"], down_min_samples=st["down"]["min_samples"],
        recover_successes=st["down_to_degraded"]["consecutive_successes"],
        healthy_window_probes=st["degraded_to_healthy"]["window_probes"],
        healthy_ratio=st["degraded_to_healthy"]["failure_ratio"],
        penalty={"healthy": 0, "degraded": pr["penalty"]["degraded"], "down": pr["penalty"]["down"]},
        initial=st["initial"]["value"],
    )


def tunnel_state_value(state: str) -> float:
    """GraphQL ``tunnelState``: 1 healthy, 0.5 degraded, 0 down."""
    return float(raw()["states"]["tunnel_state"][state])


def legacy_target() -> str:
    return str(raw()["health_check"]["legacy_target_range"]["example"])


def legacy_range() -> str:
    """The range the legacy target lives in: the customer routes it back into the tunnel."""
    return str(raw()["health_check"]["legacy_target_range"]["value"])
