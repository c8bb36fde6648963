"""One read of the edge driver: its sessions, its BFD sessions and the events since the last read.

The edge answers over its control socket in about a millisecond; a reader that cannot reach it
says so (``reachable=False`` with the reason) rather than raising, because an observer must keep
running through a driver restart or a lab going away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnilab.sim.edge.control import ControlError, EdgeClient, Event


@dataclass(frozen=True)
class EdgeReading:
    reachable: bool
    error: str | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    """The driver's session views (cnilab.sim.edge.control.SessionInfo fields)."""
    bfd: list[dict[str, Any]] = field(default_factory=list)
    """The speaker's BFD sessions (cnilab.sim.edge.bfd.BfdSessionInfo fields)."""
    events: list[Event] = field(default_factory=list)
    """Driver events not returned by an earlier read (only when asked for)."""

    def session_states(self) -> dict[str, str]:
        return {str(s["key"]): str(s["state"]) for s in self.sessions}

    def bfd_states(self) -> dict[str, str]:
        """BFD state by the customer's address (the edge's BFD sessions are keyed by peer)."""
        return {str(b["peer"]): str(b["state"]) for b in self.bfd}


class EdgeReader:
    """Reads an edge driver, remembering which events it has already returned.

    When the driver was unreachable, the next read fetches its whole event ring again (a restarted
    driver renumbers from 1) and drops events no newer than the last one returned."""

    def __init__(self, socket_path: str | None, timeout: float = 1.0) -> None:
        self.client = EdgeClient(socket_path, timeout=timeout) if socket_path else None
        self._since = 0
        self._last_time = 0.0
        self._reachable: bool | None = None

    def read(self, events: bool = False) -> EdgeReading:
        if self.client is None:
            return EdgeReading(reachable=False, error="the lab has no edge driver (no control socket recorded)")
        try:
            sessions = self.client.call("sessions")
            bfd = self.client.call("bfd")
            since = self._since if self._reachable else 0
            got = self.client.events(since=since) if events else []
        except (ControlError, OSError, ValueError) as exc:
            self._reachable = False
            return EdgeReading(reachable=False, error=str(exc))
        self._reachable = True
        new = [ev for ev in got if not (since == 0 and ev.time <= self._last_time)]
        if got:
            self._since = max(ev.seq for ev in got)
        if new:
            self._last_time = max(self._last_time, *(ev.time for ev in new))
        return EdgeReading(reachable=True, sessions=list(sessions or []), bfd=list(bfd or []), events=new)
