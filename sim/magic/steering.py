"""Magic static routes -> where traffic for each prefix goes, given tunnel health.

Lower priority values win; unhealthy tunnels keep their routes with a penalty added (degraded
+500,000, down +1,000,000), so with every tunnel down traffic still takes the best one; equal
effective priorities share the traffic (ECMP, split by weight).
"""

from __future__ import annotations

import ipaddress

from cnilab.sim.magic.facts import timing
from pydantic import BaseModel, ConfigDict


class MagicRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    nexthop: str  # tunnel name
    priority: int
    weight: int | None = None
    id: str | None = None


class NextHop(BaseModel):
    tunnel: str
    effective_priority: int
    weight: int = 1


def effective_priority(priority: int, state: str) -> int:
    return priority + timing().penalty[state]


def steer(routes: list[MagicRoute], states: dict[str, str]) -> dict[str, list[NextHop]]:
    """prefix -> the next hops in use (all with the best effective priority)."""
    by_prefix: dict[str, list[NextHop]] = {}
    for r in routes:
        if r.nexthop not in states:
            continue
        by_prefix.setdefault(str(r.prefix), []).append(
            NextHop(tunnel=r.nexthop, effective_priority=effective_priority(r.priority, states[r.nexthop]),
                    weight=r.weight or 1))
    out = {}
    for prefix, hops in by_prefix.items():
        best = min(h.effective_priority for h in hops)
        out[prefix] = sorted((h for h in hops if h.effective_priority == best), key=lambda h: h.tunnel)
    return out
