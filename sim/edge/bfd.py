"""Single-hop BFD (RFC 5880 asynchronous mode, RFC 5881 encapsulation) for the Cloudflare edge peer.

Why our own speaker rather than FRR's bfdd on the Cloudflare side: the edge peer is ExaBGP plus a
Python driver, and the driver needs BFD state as events in its own asyncio loop (to tear the BGP
session down on BFD Down, to show timers in ``status`` and to inject timer changes as faults).
FRR and BIRD are the *customer* routers this speaker is tested against.

Shape: :class:`BfdSpeaker` owns sockets (one receive socket on UDP 3784 and one send socket on a
source port in 49152-65535 per local address) and :class:`_Session` objects. A session is the RFC
5880 state machine; it talks to the world through a ``send`` callable and the event loop's timers,
so the unit tests can wire two sessions back to back without sockets or root.

Timers follow RFC 5880: 1 s transmit while not Up (6.8.3), a Poll Sequence whenever an advertised
interval changes (the slow->fast switch after Up and :meth:`BfdSpeaker.set_timers`), with an
increased transmit interval / decreased receive interval only taking effect once the Final arrives
(6.8.3), jitter of 75-100 % of the interval (75-90 % when the detect multiplier is 1, 6.8.7) and a
detection time of remote multiplier x max(local required min RX, remote desired min TX) (6.8.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from sim.edge.bfd_packet import BfdInvalid, BfdPacket, Diag, State
from sim.facts import load_facts
from sim.runtime.nsenter import call_in_netns

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address
T = TypeVar("T")

# Linux socket option numbers the stdlib does not export (include/uapi/linux/in.h, in6.h).
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = 78
SOURCE_PORTS = (49152, 65535)  # RFC 5881 4
MAX_WAKEUP_READS = 64


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


class _Session:
    """One BFD session's RFC 5880 state variables and timers.

    All intervals are kept in microseconds like the wire format; ``loop.time()`` (monotonic) drives
    the timers and ``time.time()`` is only used for the human-facing timestamps.
    """

    def __init__(self, *, key: str, local: IPAddress, peer: IPAddress, ifname: str | None, tx_ms: int,
                 rx_ms: int, multiplier: int, discr: int, send: Callable[[bytes], None],
                 loop: asyncio.AbstractEventLoop, rng: random.Random, on_change: OnChange | None,
                 slow_tx_us: int) -> None:
        self.key, self.local, self.peer, self.ifname = key, local, peer, ifname
        self._send_bytes, self._loop, self._rng, self._on_change = send, loop, rng, on_change
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
        self.last_change = time.time()
        self.up_since: float | None = None
        self.last_rx: float | None = None
        self._last_tx: float | None = None
        self._tx_handle: asyncio.TimerHandle | None = None
        self._next_tx: float | None = None
        self._detect_handle: asyncio.TimerHandle | None = None
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
    def _packet(self, final: bool) -> BfdPacket:
        return BfdPacket(
            state=self.state,
            diag=self.local_diag,
            poll=self.poll_active and not final,
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
        self.last_change = time.time()
        if new == State.Up:
            self.up_since = self.last_change
            self.local_diag = Diag.NoDiagnostic
        else:
            self.up_since = None
        if new in (State.Down, State.AdminDown):
            self._finish_poll()  # an unfinished sequence is moot; restart from slow timers
        self.refresh_params()
        self._kick_tx()
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
        self.last_rx = time.time()
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


# -- sockets -------------------------------------------------------------------------------------

class _Endpoint:
    """The receive socket (UDP 3784, TTL reported) and the send socket (TTL 255) of one local address."""

    def __init__(self, local: IPAddress, ifname: str | None, port: int, ttl: int, rng: random.Random) -> None:
        self.local, self.ifname, self.port, self.ttl = local, ifname, port, ttl
        self.family = socket.AF_INET6 if local.version == 6 else socket.AF_INET
        self.scope_id = socket.if_nametoindex(ifname) if ifname else 0
        self.rx = self._make(rx=True)
        try:
            self.tx = self._bind_source_port(rng)
        except BaseException:
            self.rx.close()
            raise
        self.keys: set[str] = set()

    def _addr(self, ip: IPAddress, port: int) -> tuple[Any, ...]:
        if self.family == socket.AF_INET6:
            scope = self.scope_id if ip.is_link_local else 0
            return (str(ip), port, 0, scope)
        return (str(ip), port)

    def _make(self, rx: bool) -> socket.socket:
        s = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, self.ttl)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                with contextlib.suppress(OSError):  # lets us bind before DAD finishes (kernel >= 4.15)
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, self.ttl)
                s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            if self.ifname:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            if rx:
                s.bind(self._addr(self.local, self.port))
            s.setblocking(False)
            return s
        except BaseException:
            s.close()
            raise

    def _bind_source_port(self, rng: random.Random) -> socket.socket:
        s = self._make(rx=False)
        try:
            for _ in range(64):
                try:
                    s.bind(self._addr(self.local, rng.randint(*SOURCE_PORTS)))
                    return s
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            raise OSError(errno.EADDRINUSE, f"no free BFD source port for {self.local}")
        except BaseException:
            s.close()
            raise

    def sendto(self, data: bytes, peer: IPAddress) -> None:
        self.tx.sendto(data, self._addr(peer, self.port))

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


def _parse_addr(name: str, value: Any) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"BFD session: {name}={value!r} is not an IP address") from None


class BfdSpeaker:
    """Many single-hop BFD sessions in the caller's asyncio loop; see the module docstring.

    ``netns`` (optional, a name under /run/netns or a path) opens the sockets in another network
    namespace while the loop stays where it is - tests and the benchmark use it to run both ends
    in one process. ``port`` exists for the same reason; the default is RFC 5881's 3784.
    """

    def __init__(self, on_change: OnChange | None = None, *, netns: str | None = None, port: int | None = None,
                 seed: int | None = None) -> None:
        facts = load_facts().bfd
        self._on_change = on_change
        self._netns = netns
        self._port = int(port if port is not None else facts["udp_port"]["value"])
        self._ttl = int(facts["ttl"]["value"])
        self._slow_us = int(facts["slow_tx_interval_ms"]["value"]) * 1000
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[str, _Session] = {}
        self._by_discr: dict[int, _Session] = {}
        self._endpoints: dict[tuple[IPAddress, str | None], _Endpoint] = {}
        self.unmatched: Counter[str] = Counter()  # drops no session can be blamed for

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self, send_admin_down: bool = True) -> None:
        """Close every session (AdminDown to the peer by default) and every socket."""
        for key in list(self._sessions):
            self._remove(key, send_admin_down)
        self._loop = None

    async def __aenter__(self) -> BfdSpeaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sessions ----------------------------------------------------------------------------
    @staticmethod
    def session_key(local: IPAddress, peer: IPAddress, ifname: str | None = None) -> str:
        """``local->peer`` or ``local%ifname->peer``; stable so the driver can rebuild it."""
        return f"{local}{'%' + ifname if ifname else ''}->{peer}"

    def add_session(self, local: IPAddress | str, peer: IPAddress | str, tx_ms: int, rx_ms: int,
                    multiplier: int, ifname: str | None = None) -> str:
        """Create a session (state Down, sending at 1 s) and return its key."""
        if self._loop is None:
            raise RuntimeError("BfdSpeaker.add_session() before start()")
        local_ip, peer_ip = _parse_addr("local", local), _parse_addr("peer", peer)
        if local_ip.version != peer_ip.version:
            raise ValueError(f"BFD session: local={local_ip} and peer={peer_ip} are different address families")
        _check_timers(tx_ms, rx_ms, multiplier)
        key = self.session_key(local_ip, peer_ip, ifname)
        if key in self._sessions:
            raise ValueError(f"BFD session {key} already exists")
        ep_key = (local_ip, ifname)
        ep = self._endpoints.get(ep_key)
        if ep is None:
            ep = call_in_netns(self._netns, lambda: _Endpoint(local_ip, ifname, self._port, self._ttl, self._rng))
            self._endpoints[ep_key] = ep
            self._loop.add_reader(ep.rx.fileno(), self._on_readable, ep)
            self._loop.add_reader(ep.tx.fileno(), self._drain, ep.tx)
        discr = 0
        while discr == 0 or discr in self._by_discr:
            discr = self._rng.randint(1, 0xFFFFFFFF)
        endpoint = ep

        def send(data: bytes) -> None:
            endpoint.sendto(data, peer_ip)

        sess = _Session(key=key, local=local_ip, peer=peer_ip, ifname=ifname, tx_ms=tx_ms, rx_ms=rx_ms,
                        multiplier=multiplier, discr=discr, send=send, loop=self._loop, rng=self._rng,
                        on_change=self._on_change, slow_tx_us=self._slow_us)
        self._sessions[key] = sess
        self._by_discr[discr] = sess
        ep.keys.add(key)
        sess.start()
        return key

    def remove_session(self, key: str) -> None:
        """Delete a session; the peer is told AdminDown so it does not report a failure."""
        self._remove(key, send_admin_down=True)

    def _remove(self, key: str, send_admin_down: bool) -> None:
        sess = self._get(key)
        sess.close(send_admin_down)
        del self._sessions[key]
        self._by_discr.pop(sess.local_discr, None)
        ep_key = (sess.local, sess.ifname)
        ep = self._endpoints[ep_key]
        ep.keys.discard(key)
        if not ep.keys:
            if self._loop is not None:
                self._loop.remove_reader(ep.rx.fileno())
                self._loop.remove_reader(ep.tx.fileno())
            ep.close()
            del self._endpoints[ep_key]

    def _get(self, key: str) -> _Session:
        try:
            return self._sessions[key]
        except KeyError:
            raise KeyError(f"no BFD session {key!r} (have: {', '.join(self._sessions) or 'none'})") from None

    def set_timers(self, key: str, tx_ms: int, rx_ms: int, multiplier: int) -> None:
        """Change intervals at runtime; the new values are negotiated with a Poll Sequence."""
        _check_timers(tx_ms, rx_ms, multiplier)
        self._get(key).set_timers(tx_ms, rx_ms, multiplier)

    def admin_down(self, key: str) -> None:
        self._get(key).admin_down()

    def admin_up(self, key: str) -> None:
        self._get(key).admin_up()

    def sessions(self) -> list[BfdSessionInfo]:
        return [s.info() for s in self._sessions.values()]

    def session(self, key: str) -> BfdSessionInfo:
        return self._get(key).info()

    # -- reception ---------------------------------------------------------------------------
    @staticmethod
    def _drain(sock: socket.socket) -> None:
        """Nobody should send to our source port; discard whatever does so the buffer never fills."""
        with contextlib.suppress(OSError):
            for _ in range(MAX_WAKEUP_READS):
                sock.recv(2048)

    def _on_readable(self, ep: _Endpoint) -> None:
        for _ in range(MAX_WAKEUP_READS):
            try:
                data, anc, _flags, addr = ep.rx.recvmsg(2048, socket.CMSG_SPACE(4) * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.unmatched[f"recv_{errno.errorcode.get(exc.errno or 0, exc.errno)}"] += 1
                return
            self._handle(ep, data, _hop_limit(anc), addr)

    def _handle(self, ep: _Endpoint, data: bytes, ttl: int | None, addr: tuple[Any, ...]) -> None:
        src = ipaddress.ip_address(addr[0].split("%", 1)[0])
        by_src = self._sessions.get(self.session_key(ep.local, src, ep.ifname))
        if ttl != self._ttl:  # RFC 5881 5: GTSM, single hop means exactly 255
            self._drop(by_src, f"ttl_{ttl}")
            return
        try:
            pkt = BfdPacket.decode(data)
        except BfdInvalid as exc:
            self._drop(by_src, exc.reason)
            return
        if pkt.your_discr:
            sess = self._by_discr.get(pkt.your_discr)
            if sess is None:
                self._drop(by_src, "unknown_your_discr")
                return
            if sess is not by_src:  # single hop: the discriminator must come from the session's peer
                self._drop(by_src, "discr_addr_mismatch")
                return
        else:
            if by_src is None:
                self.unmatched["no_session"] += 1
                return
            sess = by_src
        sess.receive(pkt)

    def _drop(self, sess: _Session | None, reason: str) -> None:
        if sess is None:
            self.unmatched[reason] += 1
        else:
            sess.drop(reason)


def _hop_limit(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, value in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            return int.from_bytes(value[:4], sys.byteorder) if len(value) >= 4 else value[0]
    return None


def _check_timers(tx_ms: int, rx_ms: int, multiplier: int) -> None:
    for name, value, lo, hi in (("tx_ms", tx_ms, 1, 4_294_967), ("rx_ms", rx_ms, 1, 4_294_967),
                                ("multiplier", multiplier, 1, 255)):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"BFD timers: {name}={value!r} must be an integer in {lo}..{hi}")
