"""BFD's hold on BGP at the edge: a session's BFD going Down tears its BGP session down with Cease
subcode 10 "BFD Down" (RFC 9384) and keeps it down while BFD stays Down (strict mode: BGP over a
path BFD calls dead is not trusted); BFD Up lets it re-establish.

The speaker itself (:class:`cnilab.sim.edge.bfd.BfdSpeaker`, sockets and the RFC 5880 FSM) knows nothing
of BGP; this module is the only place the two meet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from cnilab.sim.edge.bfd import BfdSpeaker
from cnilab.sim.edge.notifications import CEASE_BFD_DOWN
from cnilab.sim.edge.peer import Peer

Event = Callable[..., None]
"""``event(kind, detail, session, **data)``: the driver's event log."""


class BfdGlue:
    """Starts a BFD session per BGP session that asks for one, and applies BFD's verdicts to BGP."""

    def __init__(self, ifnames: dict[str, str], event: Event, command: Callable[[str], None]) -> None:
        self.speaker: BfdSpeaker | None = None
        self._ifnames = ifnames
        self._event = event
        self._command = command
        self._peers: Callable[[], list[Peer]] = list

    async def start(self, stack: contextlib.AsyncExitStack, peers: Callable[[], list[Peer]]) -> None:
        """Open the speaker for the life of ``stack`` and add every BFD session of ``peers()``."""
        self._peers = peers
        # eager: the customer's BFD starts when its bgpd registers at Established; answering its
        # first packets at once saves up to a slow-start second of the lab's ready time (issue 16)
        self.speaker = await stack.enter_async_context(BfdSpeaker(self.on_change, eager_first_handshake=True))
        for rt in peers():
            self.add(rt)

    def add(self, rt: Peer) -> None:
        s = rt.session
        if not s.bfd or self.speaker is None:
            return
        ifname = self._ifnames.get(s.cf_iface, s.cf_iface) if s.cf_iface else None
        try:
            rt.bfd_key = self.speaker.add_session(s.cf_addr, s.cust_addr, s.bfd_tx_ms, s.bfd_rx_ms,
                                                  s.bfd_multiplier, ifname)
        except (OSError, ValueError) as exc:
            self._event("error", f"BFD session not started: {exc}", s.key)

    def nudge(self, rt: Peer) -> None:
        """Send at once to a peer whose BGP just came Established (its bgpd registers BFD now)."""
        if rt.bfd_key and self.speaker is not None:
            self.speaker.nudge(rt.bfd_key)

    def remove(self, rt: Peer) -> None:
        if rt.bfd_key and self.speaker is not None:
            with contextlib.suppress(KeyError):
                self.speaker.remove_session(rt.bfd_key)
        rt.bfd_key = None

    def on_change(self, info: Any, old: str, new: str) -> None:
        for rt in self._peers():
            if rt.bfd_key != info.key:
                continue
            key = rt.session.key
            self._event("bfd", f"{old} -> {new} ({info.local_diag_name})", key, old=old, new=new)
            if old == "Up" and new != "Up":
                rt.bfd_flaps += 1
            rt.transition(new, str(info.local_diag_name), bfd=True)
            if new in ("Down", "AdminDown") and old == "Up":
                rt.held_by_bfd = True
                if rt.up:
                    self._event("teardown", f"BFD {new}: tearing BGP down (Cease/{CEASE_BFD_DOWN} BFD Down)", key)
                    self._command(f"neighbor {rt.session.cust_addr} teardown {CEASE_BFD_DOWN}")
            elif new == "Up" and rt.held_by_bfd:
                rt.held_by_bfd = False
                self._event("bfd", "BFD Up: BGP may re-establish", key)

    def state(self, rt: Peer) -> str | None:
        if not rt.bfd_key or self.speaker is None:
            return None
        try:
            return self.speaker.session(rt.bfd_key).state
        except KeyError:
            return None

    def sessions(self) -> list[dict[str, Any]]:
        """The speaker's sessions, each with its BGP session's key, BFD flaps and transitions."""
        if self.speaker is None:
            return []
        by_key = {rt.bfd_key: rt for rt in self._peers() if rt.bfd_key}
        out = []
        for i in self.speaker.sessions():
            row = i.model_dump(mode="json")
            rt = by_key.get(i.key)
            if rt is not None:
                row.update(session=rt.session.key, flaps=rt.bfd_flaps, transitions=list(rt.bfd_transitions))
            out.append(row)
        return out
