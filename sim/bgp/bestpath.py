"""Which of several interconnects Cloudflare uses to reach a customer prefix.

A pared-down BGP decision process (RFC 4271 9.1.2.2 order, minus what a single-AS edge does not
need): routes tagged GRACEFUL_SHUTDOWN last (local-pref 0, RFC 8326), then shortest AS path, then
lowest MED, then the interconnect's ``priority`` (a lab-side fact,
higher wins), then the session key so the outcome never depends on arrival order. Pure, so the
discrete-event simulator ranks paths exactly as the live edge does (it passes the customer's
local-pref as ``priority`` for the customer's own choice, where AS paths are equal).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

METRIC_BASE = 10
"""Kernel metric of the best path; the n-th alternative gets METRIC_BASE + n (all below the
internet-backup static route's metric in cnilab.sim.topology.plan.BACKUP_METRIC)."""


class Candidate(BaseModel):
    """One accepted route for a prefix, learned over one session."""

    model_config = ConfigDict(frozen=True)

    session: str
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    nexthop: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    as_path: tuple[int, ...] = ()
    med: int = 0
    priority: int = 100
    gshut: bool = False
    """The route carries GRACEFUL_SHUTDOWN 65535:0: local-pref 0 (RFC 8326), so it loses to any other."""


def sort_key(c: Candidate) -> tuple[bool, int, int, int, str]:
    return (c.gshut, len(c.as_path), c.med, -c.priority, c.session)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best first."""
    return sorted(candidates, key=sort_key)


def best(candidates: Iterable[Candidate]) -> Candidate | None:
    ranked = rank(candidates)
    return ranked[0] if ranked else None


def metric_for(position: int) -> int:
    """Kernel metric for the candidate ranked ``position`` (0 = best): the kernel then prefers the
    best path, and falls over to the next one the moment the best is removed."""
    return METRIC_BASE + position


def ranked_metrics(candidates: Iterable[Candidate]) -> list[tuple[Candidate, int]]:
    return [(c, metric_for(i)) for i, c in enumerate(rank(candidates))]
