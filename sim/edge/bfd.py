"""Single-hop BFD (RFC 5881 encapsulation) for the Cloudflare edge peer: sockets around the FSM.

Why our own speaker rather than FRR's bfdd on the Cloudflare side: the edge peer is ExaBGP plus a
Python driver, and the driver needs BFD state as events in its own asyncio loop (to tear the BGP
session down on BFD Down, to show timers in ``status`` and to inject timer changes as faults).
FRR and BIRD are the *customer* routers this speaker is tested against.

Shape: :class:`BfdSpeaker` opens an :class:`~cnilab.sim.edge.bfd_socket.Endpoint` per local address (the
sockets), applies the RFC 5881 checks (TTL 255, discriminator from the right peer) and
demultiplexes packets by discriminator to :class:`~cnilab.sim.edge.bfd_fsm.BfdSession` objects, the RFC
5880 state machine the simulator drives too.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from collections import Counter
from typing import Any

from cnilab.sim.edge.bfd_fsm import BfdSession, BfdSessionInfo, OnChange
from cnilab.sim.edge.bfd_packet import BfdInvalid, BfdPacket
from cnilab.sim.edge.bfd_socket import MAX_WAKEUP_READS, Endpoint, IPAddress, drain, hop_limit
from cnilab.sim.facts import load_facts
from cnilab.sim.runtime.nsenter import call_in_netns

log = logging.getLogger(__name__)

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
    ``eager_first_handshake`` (the edge sets it) answers a new peer's handshake packets at once
    instead of at the slow-start pace, until the session has been Up once.
    """

    def __init__(self, on_change: OnChange | None = None, *, netns: str | None = None, port: int | None = None,
                 seed: int | None = None, eager_first_handshake: bool = False) -> None:
        facts = load_facts().bfd
        self._eager = eager_first_handshake
        self._on_change = on_change
        self._netns = netns
        self._port = int(port if port is not None else facts["udp_port"]["value"])
        self._ttl = int(facts["ttl"]["value"])
        self._slow_us = int(facts["slow_tx_interval_ms"]["value"]) * 1000
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[str, BfdSession] = {}
        self._by_discr: dict[int, BfdSession] = {}
        self._endpoints: dict[tuple[IPAddress, str | None], Endpoint] = {}
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
            ep = call_in_netns(self._netns, lambda: Endpoint(local_ip, ifname, self._port, self._ttl, self._rng))
            self._endpoints[ep_key] = ep
            self._loop.add_reader(ep.rx.fileno(), self._on_readable, ep)
            self._loop.add_reader(ep.tx.fileno(), drain, ep.tx)
        discr = 0
        while discr == 0 or discr in self._by_discr:
            discr = self._rng.randint(1, 0xFFFFFFFF)
        endpoint = ep

        def send(data: bytes) -> None:
            endpoint.sendto(data, peer_ip)

        sess = BfdSession(key=key, local=local_ip, peer=peer_ip, ifname=ifname, tx_ms=tx_ms, rx_ms=rx_ms,
                        multiplier=multiplier, discr=discr, send=send, clock=self._loop, rng=self._rng,
                        on_change=self._on_change, slow_tx_us=self._slow_us, eager_first_handshake=self._eager)
        self._sessions[key] = sess
        self._by_discr[discr] = sess
        ep.keys.add(key)
        sess.start()
        return key

    def nudge(self, key: str, after_s: tuple[float, ...] = (0.02, 0.1, 0.3)) -> None:
        """Handshake packets at these delays for a session never Up yet (see BfdSession.nudge):
        the peer's BFD session appears a moment after its trigger, so one packet may arrive early."""
        sess = self._get(key)
        assert self._loop is not None
        for delay in after_s:
            self._loop.call_later(delay, sess.nudge)

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

    def _get(self, key: str) -> BfdSession:
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
    def _on_readable(self, ep: Endpoint) -> None:
        for _ in range(MAX_WAKEUP_READS):
            try:
                data, anc, _flags, addr = ep.rx.recvmsg(2048, socket.CMSG_SPACE(4) * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.unmatched[f"recv_{errno.errorcode.get(exc.errno or 0, exc.errno)}"] += 1
                return
            self._handle(ep, data, hop_limit(anc), addr)

    def _handle(self, ep: Endpoint, data: bytes, ttl: int | None, addr: tuple[Any, ...]) -> None:
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

    def _drop(self, sess: BfdSession | None, reason: str) -> None:
        if sess is None:
            self.unmatched[reason] += 1
        else:
            sess.drop(reason)


def _check_timers(tx_ms: int, rx_ms: int, multiplier: int) -> None:
    for name, value, lo, hi in (("tx_ms", tx_ms, 1, 4_294_967), ("rx_ms", rx_ms, 1, 4_294_967),
                                ("multiplier", multiplier, 1, 255)):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"BFD timers: {name}={value!r} must be an integer in {lo}..{hi}")
