"""What the edge driver knows about one BGP session: its FSM, its Adj-RIB-In, its history.

Fields reset when the session drops (``up``, ``adj_in``, keepalive timing); the diagnosis fields
(last NOTIFICATION, last error, flaps, transitions) are kept so ``cnilab bgp`` can say why.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cnilab.sim.bgp.policy import PolicyDecision
from cnilab.sim.topology.plan import Session

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRANSITIONS_KEPT = 20
"""Last state changes kept per session (bgp and bfd) for `cnilab bgp`/`bfd` and timelines."""


@dataclass
class RouteEntry:
    prefix: Network
    nexthop: str
    as_path: tuple[int, ...]
    med: int
    decision: PolicyDecision
    time: float
    communities: tuple[str, ...] = ()


@dataclass
class Peer:
    """One session as the driver sees it (reset fields on down, keep diagnosis)."""

    session: Session
    fsm: str = "Idle"
    up: bool = False
    since: float = field(default_factory=time.time)
    up_since: float | None = None
    established_count: int = 0
    connected_ever: bool = False
    last_notification: dict[str, Any] | None = None
    last_down_reason: str | None = None
    last_error: str | None = None
    open_asn: int | None = None
    open_hold: int | None = None
    adj_in: dict[Network, RouteEntry] = field(default_factory=dict)
    bfd_key: str | None = None
    held_by_bfd: bool = False
    created: float = field(default_factory=time.time)
    flaps: int = 0
    transitions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT))
    last_keepalive: float | None = None
    keepalive_rx_s: float | None = None
    bfd_flaps: int = 0
    bfd_transitions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT))

    def transition(self, state: str, reason: str = "", *, bfd: bool = False) -> None:
        (self.bfd_transitions if bfd else self.transitions).append(
            {"time": time.time(), "state": state, "reason": reason})

    def negotiated_hold(self) -> int | None:
        """RFC 4271 4.2: the smaller of both OPENs' hold times (0 if either is 0); None before an OPEN."""
        if self.open_hold is None:
            return None
        ours, theirs = self.session.hold_time, int(self.open_hold)
        return 0 if 0 in (ours, theirs) else min(ours, theirs)

    def notification_time(self) -> float | None:
        return self.last_notification["time"] if self.last_notification is not None else None


def peer_key(addr: Any) -> str:
    """The customer's address in canonical form: how ExaBGP's messages are matched to sessions."""
    return str(ipaddress.ip_address(str(addr)))
