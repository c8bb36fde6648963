"""The sockets of single-hop BFD (RFC 5881): per local address, a receive socket on UDP 3784 that
reports each packet's TTL/hop limit, and a send socket at TTL 255 on a source port in 49152-65535.

Nothing here knows the BFD state machine; :class:`cnilab.sim.edge.bfd.BfdSpeaker` reads packets from
these sockets, applies the RFC 5881 checks and hands them to the sessions.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import sys
from ipaddress import IPv4Address, IPv6Address
from typing import Any

IPAddress = IPv4Address | IPv6Address

# Linux socket option numbers the stdlib does not export (include/uapi/linux/in.h, in6.h).
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = 78
SOURCE_PORTS = (49152, 65535)  # RFC 5881 4
MAX_WAKEUP_READS = 64


class Endpoint:
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


def drain(sock: socket.socket) -> None:
    """Nobody should send to our source port; discard whatever does so the buffer never fills."""
    with contextlib.suppress(OSError):
        for _ in range(MAX_WAKEUP_READS):
            sock.recv(2048)


def hop_limit(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The TTL (IPv4) or hop limit (IPv6) the kernel reported for a received packet, if any."""
    for level, kind, value in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            return int.from_bytes(value[:4], sys.byteorder) if len(value) >= 4 else value[0]
    return None
