"""Changes to a running lab's Magic config (the CLI and the mock API both go through here)."""

from __future__ import annotations

from cnilab.sim.handle import LabHandle
from cnilab.sim.magic.config import HcConfig
from cnilab.sim.magic.lab import update_config


def set_tunnel(lab: LabHandle, tunnel: str, *, priority: int | None = None, rate: str | None = None,
               hc_type: str | None = None, enabled: bool | None = None) -> HcConfig:
    def edit(cfg: HcConfig) -> HcConfig:
        t = next((x for x in cfg.tunnels if x.name == tunnel), None)
        if t is None:
            raise ValueError(f"no Magic tunnel {tunnel!r}; tunnels: {', '.join(x.name for x in cfg.tunnels)}")
        if rate is not None and rate not in ("low", "mid", "high"):
            raise ValueError(f"rate {rate!r}: choose low, mid or high")
        if hc_type is not None and hc_type not in ("reply", "request"):
            raise ValueError(f"type {hc_type!r}: choose reply or request")
        hc = t.health_check.model_copy(update={k: v for k, v in (("rate", rate), ("type", hc_type),
                                                                   ("enabled", enabled)) if v is not None})
        t.health_check = hc
        if priority is not None:
            for r in cfg.routes:
                if r.nexthop == tunnel:
                    r.priority = priority
        return cfg

    return update_config(lab, edit)


def set_route(lab: LabHandle, route_id: str, *, priority: int | None = None, weight: int | None = None,
              nexthop: str | None = None) -> HcConfig:
    def edit(cfg: HcConfig) -> HcConfig:
        r = next((x for x in cfg.routes if x.id == route_id), None)
        if r is None:
            raise ValueError(f"no Magic route {route_id!r}")
        if priority is not None:
            r.priority = priority
        if weight is not None:
            r.weight = weight
        if nexthop is not None:
            r.nexthop = nexthop
        return cfg

    return update_config(lab, edit)
