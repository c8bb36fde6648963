"""The BFD session state machine (RFC 5880 asynchronous mode), independent of sockets and clocks.

One implementation for both executors: the edge's :class:`cnilab.sim.edge.bfd.BfdSpeaker` drives it from
an asyncio loop and UDP sockets, the simulator (:mod:`cnilab.sim.des.bfd`) from its virtual clock and
simulated links. A session only needs a ``clock`` with ``time()`` and ``call_at(when, fn)``
(asyncio's loop has both; so does cnilab.sim.des.engine.SimClock), a ``send(bytes)`` callable and an RNG.

Timers follow RFC 5880: 1 s transmit while not Up (6.8.3), a Poll Sequence whenever an advertised
interval changes (the slow->fast switch after Up and :meth:`BfdSession.set_timers`), with an
increased transmit interval / decreased receive interval only taking effect once the Final arrives
(6.8.3), jitter of 75-100 % of the interval (75-90 % when the detect multiplier is 1, 6.8.7) and a
detection time of remote multiplier x max(local required min RX, remote desired min TX) (6.8.4).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from cnilab.sim.edge.bfd_packet import BfdPacket, Diag, State
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address


class TimerHandle(Protocol):
    def cancel(self) -> None: ...

    def when(self) -> float: ...


class Clock(Protocol):
    """The part of an event loop a session uses (asyncio.AbstractEventLoop satisfies it)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], Any], /) -> TimerHandle: ...


class BfdSessionInfo(BaseModel):
    """What the edge driver, ``status`` and the tests read about one session (times in ms)."""

    model_config = ConfigDict(frozen=True)

    key: str
    local: IPAddress
    peer: IPAddress
    ifname: str | None = None
    state: str
    remote_state: str
    local_discr: int
    remote_discr: int
    tx_ms: int = Field(description="configured desired min TX")
    rx_ms: int = Field(description="configured required min RX")
    multiplier: int = Field(description="configured detect multiplier")
    advertised_tx_ms: float = Field(description="desired min TX on the wire now (>= 1000 while not Up)")
    advertised_rx_ms: float
    remote_multiplier: int = 0
    remote_tx_ms: float = 0.0
    remote_rx_ms: float = 0.0
    negotiated_tx_ms: float = Field(description="periodic transmit interval before jitter")
    negotiated_rx_ms: float = Field(description="interval at which the peer's packets are expected")
    detection_ms: float = Field(description="local detection time; 0 until the peer has been heard")
    local_diag: int
    local_diag_name: str
    remote_diag: int
    remote_diag_name: str
    poll_active: bool
    polls_started: int
    polls_completed: int
    finals_sent: int
    last_change: float = Field(description="epoch seconds of the last state change")
    up_since: float | None = None
    last_rx: float | None = Field(default=None, description="epoch seconds of the last valid packet")
    rx: int = 0
    tx: int = 0
    drop: int = 0
    drop_reasons: dict[str, int] = Field(default_factory=dict)


OnChange = Callable[[BfdSessionInfo, str, str], None]


def _diag_name(value: int) -> str:
    try:
        return Diag(value).name
    except ValueError:
        return f"Reserved{value}"


@dataclass(slots=True)
class _Counters:
    rx: int = 0
    tx: int = 0
    drop: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    polls_started: int = 0
    polls_completed: int = 0
    finals_sent: int = 0


class BfdSession:
    """One BFD session's RFC 5880 state variables and timers.

    All intervals are kept in microseconds like the wire format; ``clock.time()`` drives the timers
    and ``wall()`` (``time.time`` on a real loop, the virtual clock in the simulator) stamps the
    human-facing times.
    """

    def __init__(self, *, key: str, local: IPAddress, peer: IPAddress, ifname: str | None, tx_ms: int,
                 rx_ms: int, multiplier: int, discr: int, send: Callable[[bytes], None],
                 clock: Clock, rng: random.Random, on_change: OnChange | None,
                 slow_tx_us: int, wall: Callable[[], float] = time.time, eager_first_handshake: bool = False) -> None:
        self.key, self.local, self.peer, self.ifname = key, local, peer, ifname
        # Until the session first comes Up (the edge is eager): answer the peer's handshake packets
        # at once instead of at the 1 s slow-start pace, and poll it (see _handshaking). After a
        # failure the RFC 5880 6.8.7 pacing applies again.
        self._eager = eager_first_handshake
        self._ever_up = False
        self._send_bytes, self._loop, self._rng, self._on_change = send, clock, rng, on_change
        self._wall = wall
        self._slow_us = slow_tx_us
        self.cfg_tx_us, self.cfg_rx_us, self.mult = tx_ms * 1000, rx_ms * 1000, multiplier
        # RFC 5880 6.8.1 state variables
        self.state = State.Down
        self.remote_state = State.Down
        self.local_discr = discr
        self.remote_discr = 0
        self.local_diag: int = Diag.NoDiagnostic
        self.remote_diag: int = Diag.NoDiagnostic
        self.remote_min_rx_us = 1  # "MUST be initialized to 1"
        self.remote_tx_us = 0
        self.remote_mult = 0
        # advertised values and the values actually in use while a Poll Sequence runs (6.8.3)
        self.adv_tx_us = self._wanted_tx_us()
        self.adv_rx_us = self.cfg_rx_us
        self.tx_use_us = self.adv_tx_us
        self.rx_use_us = self.adv_rx_us
        self.poll_active = False
        self._poll_again = False
        self.counters = _Counters()
        self.last_change = self._wall()
        self.up_since: float | None = None
        self.last_rx: float | None = None
        self._last_tx: float | None = None
        self._tx_handle: TimerHandle | None = None
        self._next_tx: float | None = None
        self._detect_handle: TimerHandle | None = None
        self._detect_deadline: float | None = None
        self._closed = False

    # -- derived timers -----------------------------------------------------------------------
    def _wanted_tx_us(self) -> int:
        """6.8.3: at least one second while not Up, the configured value once Up."""
        return self.cfg_tx_us if self.state == State.Up else max(self.cfg_tx_us, self._slow_us)

    def tx_interval_us(self) -> int:
        """6.8.7: the larger of our desired min TX (in use) and the peer's required min RX."""
        return max(self.tx_use_us, self.remote_min_rx_us)

    def detection_us(self) -> int:
        """6.8.4 asynchronous mode: remote mult x max(our required min RX, remote desired min TX)."""
        if not self.remote_mult:
            return 0
        return self.remote_mult * max(self.rx_use_us, self.remote_tx_us)

    def _jittered(self, interval_us: int) -> float:
        """6.8.7: 0-25 % less than the interval; 10-25 % less when the detect multiplier is 1."""
        hi = 0.90 if self.mult == 1 else 1.0
        return interval_us * self._rng.uniform(0.75, hi) / 1e6

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """First packet after a random fraction of an interval, so many sessions do not burst."""
        self._schedule_tx(self._loop.time() + self._rng.uniform(0.0, 0.05))

    def close(self, send_admin_down: bool) -> None:
        """Stop timers; optionally tell the peer we are going away (AdminDown, diag 7, 6.8.16)."""
        if self._closed:
            return
        if send_admin_down and self.state != State.AdminDown:
            self.state, self.local_diag = State.AdminDown, Diag.AdministrativelyDown
            self.poll_active = False
            with contextlib.suppress(OSError):
                self._transmit(final=False)
        self._closed = True
        for h in (self._tx_handle, self._detect_handle):
            if h is not None:
                h.cancel()
        self._tx_handle = self._detect_handle = None

    # -- transmission ------------------------------------------------------------------------
    def _handshaking(self) -> bool:
        """An eager session that has never been Up: its packets carry Poll, so the peer answers each
        one at once with a Final (6.8.7 "as soon as practicable") instead of at its own slow-start
        pace, and the peer's state change reaches us within a round trip."""
        return self._eager and not self._ever_up and self.state in (State.Down, State.Init)

    def nudge(self) -> None:
        """Send a handshake packet now (eager sessions that were never Up; otherwise nothing): the
        edge calls it when BGP comes Established, which is when the peer's bgpd registers BFD."""
        if self._handshaking():
            self._schedule_tx(self._loop.time())

    def _packet(self, final: bool) -> BfdPacket:
        return BfdPacket(
            state=self.state,
            diag=self.local_diag,
            poll=(self.poll_active or self._handshaking()) and not final,
            final=final,
            detect_mult=self.mult,
            my_discr=self.local_discr,
            your_discr=self.remote_discr,
            desired_min_tx_us=self.adv_tx_us,
            required_min_rx_us=self.adv_rx_us,
            required_min_echo_rx_us=0,
        )

    def _transmit(self, final: bool) -> None:
        self._send_bytes(self._packet(final).encode())
        self.counters.tx += 1
        if final:
            self.counters.finals_sent += 1
        else:
            self._last_tx = self._loop.time()

    def _schedule_tx(self, at: float) -> None:
        if self._closed:
            return
        if self._tx_handle is not None:
            self._tx_handle.cancel()
        self._next_tx = at
        self._tx_handle = self._loop.call_at(at, self._on_tx_timer)

    def _on_tx_timer(self) -> None:
        self._tx_handle = None
        if self._closed:
            return
        if self.remote_min_rx_us > 0:  # 6.8.7: a peer asking for 0 gets nothing periodic
            try:
                self._transmit(final=False)
            except OSError as exc:  # link down, no route: keep the timer, the peer will time out
                self.counters.reasons[f"send_{errno.errorcode.get(exc.errno or 0, exc.errno)}"] += 1
        self._schedule_tx(self._loop.time() + self._jittered(self.tx_interval_us()))

    def _kick_tx(self) -> None:
        """Send the next periodic packet as soon as 6.8.7 allows (state change, poll start)."""
        now = self._loop.time()
        earliest = now if self._last_tx is None else self._last_tx + 0.75 * self.tx_interval_us() / 1e6
        at = max(now, earliest)
        if self._next_tx is None or at < self._next_tx:
            self._schedule_tx(at)

    # -- parameter changes and Poll Sequences ------------------------------------------------
    def refresh_params(self) -> None:
        """Recompute advertised intervals; a change starts a Poll Sequence (6.8.3)."""
        new_tx, new_rx = self._wanted_tx_us(), self.cfg_rx_us
        if (new_tx, new_rx) == (self.adv_tx_us, self.adv_rx_us):
            return
        self.adv_tx_us, self.adv_rx_us = new_tx, new_rx
        if self.state == State.Up:
            # an increase in TX / decrease in RX waits for the Final; the safe direction is immediate
            self.tx_use_us = min(self.tx_use_us, new_tx)
            self.rx_use_us = max(self.rx_use_us, new_rx)
        else:
            self.tx_use_us, self.rx_use_us = new_tx, new_rx
        if self.remote_discr and self.state != State.AdminDown:
            self._start_poll()
        else:
            self._finish_poll()

    def _start_poll(self) -> None:
        if self.poll_active:
            self._poll_again = True  # one sequence at a time; run another for the later change
            return
        self.poll_active = True
        self.counters.polls_started += 1
        self._kick_tx()

    def _finish_poll(self) -> None:
        self.poll_active = self._poll_again = False
        self.tx_use_us, self.rx_use_us = self.adv_tx_us, self.adv_rx_us

    def set_timers(self, tx_ms: int, rx_ms: int, multiplier: int) -> None:
        self.cfg_tx_us, self.cfg_rx_us = tx_ms * 1000, rx_ms * 1000
        mult_changed = multiplier != self.mult
        self.mult = multiplier
        before = (self.adv_tx_us, self.adv_rx_us)
        self.refresh_params()
        if mult_changed and before == (self.adv_tx_us, self.adv_rx_us) and self.remote_discr:
            self._start_poll()  # the peer's detection time changes with our multiplier too

    # -- state -------------------------------------------------------------------------------
    def _set_state(self, new: State, diag: int | None = None) -> None:
        old = self.state
        if diag is not None:
            self.local_diag = diag
        if new == old:
            return
        self.state = new
        self.last_change = self._wall()
        if new == State.Up:
            self.up_since = self.last_change
            self.local_diag = Diag.NoDiagnostic
        else:
            self.up_since = None
        if new in (State.Down, State.AdminDown):
            self._finish_poll()  # an unfinished sequence is moot; restart from slow timers
        self.refresh_params()
        if self._eager and not self._ever_up and new in (State.Init, State.Up):
            self._schedule_tx(self._loop.time())
        else:
            self._kick_tx()
        if new == State.Up:
            self._ever_up = True
        if self._on_change is not None:
            try:
                self._on_change(self.info(), old.name, new.name)
            except Exception:  # a buggy callback must not stop the protocol
                log.exception("BFD on_change callback failed for %s", self.key)

    def admin_down(self) -> None:
        self._set_state(State.AdminDown, Diag.AdministrativelyDown)
        self._cancel_detect()

    def admin_up(self) -> None:
        if self.state == State.AdminDown:
            self._set_state(State.Down)

    # -- reception (6.8.6, after the stateless checks in BfdPacket.decode) --------------------
    def receive(self, pkt: BfdPacket) -> None:
        if self._closed:
            return
        self.counters.rx += 1
        self.last_rx = self._wall()
        self.remote_discr = pkt.my_discr
        self.remote_state = pkt.state
        self.remote_diag = int(pkt.diag)
        self.remote_mult = pkt.detect_mult
        self.remote_tx_us = pkt.desired_min_tx_us
        old_interval = self.tx_interval_us()
        self.remote_min_rx_us = pkt.required_min_rx_us
        if pkt.final and self.poll_active:
            self.counters.polls_completed += 1
            again = self._poll_again
            self._finish_poll()
            if again:
                self._start_poll()
        if self.state == State.AdminDown:
            return
        self._arm_detect()
        if self.tx_interval_us() < old_interval and self._last_tx is not None:
            # the peer lets us send faster now: do not sit out the rest of a 1 s slow-start gap
            at = self._last_tx + self._jittered(self.tx_interval_us())
            if self._next_tx is not None and at < self._next_tx:
                self._schedule_tx(max(at, self._loop.time()))
        if pkt.state == State.AdminDown:
            if self.state != State.Down:
                self._set_state(State.Down, Diag.NeighborSignaledSessionDown)
        elif self.state == State.Down:
            if pkt.state == State.Down:
                self._set_state(State.Init)
            elif pkt.state == State.Init:
                self._set_state(State.Up)
        elif self.state == State.Init:
            if pkt.state in (State.Init, State.Up):
                self._set_state(State.Up)
        elif pkt.state == State.Down:  # we are Up
            self._set_state(State.Down, Diag.NeighborSignaledSessionDown)
        if pkt.poll:  # answer a Poll at once, regardless of the transmit timer (6.8.6, 6.8.7)
            try:
                self._transmit(final=True)
            except OSError:
                self.counters.reasons["send_final"] += 1

    def _arm_detect(self) -> None:
        det = self.detection_us()
        if not det:
            return
        self._detect_deadline = self._loop.time() + det / 1e6
        # keep one timer and only move it earlier; when it fires it re-checks the deadline, so a
        # packet every 50 ms does not cost a cancel+reschedule each
        if self._detect_handle is None or self._detect_handle.when() > self._detect_deadline:
            if self._detect_handle is not None:
                self._detect_handle.cancel()
            self._detect_handle = self._loop.call_at(self._detect_deadline, self._on_detect_timer)

    def _cancel_detect(self) -> None:
        if self._detect_handle is not None:
            self._detect_handle.cancel()
        self._detect_handle = self._detect_deadline = None

    def _on_detect_timer(self) -> None:
        self._detect_handle = None
        if self._closed or self._detect_deadline is None:
            return
        now = self._loop.time()
        if now < self._detect_deadline:
            self._detect_handle = self._loop.call_at(self._detect_deadline, self._on_detect_timer)
            return
        self._detect_deadline = None
        # 6.8.1: RemoteDiscr is zeroed when a detection time passes without a valid packet
        self.remote_discr = 0
        self.remote_state = State.Down
        if self.state in (State.Init, State.Up):
            self._set_state(State.Down, Diag.ControlDetectionTimeExpired)

    def drop(self, reason: str) -> None:
        self.counters.drop += 1
        self.counters.reasons[reason] += 1

    def info(self) -> BfdSessionInfo:
        c = self.counters
        return BfdSessionInfo(
            key=self.key, local=self.local, peer=self.peer, ifname=self.ifname,
            state=self.state.name, remote_state=self.remote_state.name,
            local_discr=self.local_discr, remote_discr=self.remote_discr,
            tx_ms=self.cfg_tx_us // 1000, rx_ms=self.cfg_rx_us // 1000, multiplier=self.mult,
            advertised_tx_ms=self.adv_tx_us / 1000, advertised_rx_ms=self.adv_rx_us / 1000,
            remote_multiplier=self.remote_mult, remote_tx_ms=self.remote_tx_us / 1000,
            remote_rx_ms=self.remote_min_rx_us / 1000 if self.remote_discr else 0.0,
            negotiated_tx_ms=self.tx_interval_us() / 1000,
            negotiated_rx_ms=max(self.rx_use_us, self.remote_tx_us) / 1000 if self.remote_mult else 0.0,
            detection_ms=self.detection_us() / 1000,
            local_diag=int(self.local_diag), local_diag_name=_diag_name(int(self.local_diag)),
            remote_diag=self.remote_diag, remote_diag_name=_diag_name(self.remote_diag),
            poll_active=self.poll_active, polls_started=c.polls_started, polls_completed=c.polls_completed,
            finals_sent=c.finals_sent, last_change=self.last_change, up_since=self.up_since, last_rx=self.last_rx,
            rx=c.rx, tx=c.tx, drop=c.drop, drop_reasons=dict(c.reasons),
        )


