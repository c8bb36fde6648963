"""Sockets opened inside lab nodes, and the packet parsing the probes need.

Probes run in one process and hold sockets in several namespaces at once (a sender in ``inet``, a
receiver in ``origin``): each socket is created inside :func:`cnilab.sim.runtime.nsenter.in_netns` and stays
in that namespace afterwards.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from cnilab.sim.runtime.nsenter import in_netns

ETH_P_ALL = 0x0003
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IP_PMTUDISC_PROBE = 3
IP_RECVERR = 11
IPV6_MTU_DISCOVER = 23
IPV6_RECVERR = 25
IPV6_PMTUDISC_PROBE = 3
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3


def socket_in(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    with in_netns(netns):
        return socket.socket(family, kind, proto)


def packet_socket(netns: str, iface: str) -> socket.socket:
    """An AF_PACKET socket capturing every frame on ``iface`` in ``netns``."""
    with in_netns(netns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((iface, 0))
    return s


@dataclass
class TcpSeen:
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    mss: int | None

    @property
    def syn(self) -> bool:
        return bool(self.flags & 0x02) and not self.flags & 0x10

    @property
    def synack(self) -> bool:
        return bool(self.flags & 0x02) and bool(self.flags & 0x10)


def parse_tcp_frame(frame: bytes, l2: bool = True) -> TcpSeen | None:
    """Parse Ethernet(+802.1Q)/IPv4|IPv6/TCP and return ports, flags and the MSS option."""
    off = 0
    if l2:
        if len(frame) < 14:
            return None
        (etype,) = struct.unpack_from("!H", frame, 12)
        off = 14
        if etype == 0x8100:
            (etype,) = struct.unpack_from("!H", frame, 16)
            off = 18
    else:
        etype = 0x0800 if frame and frame[0] >> 4 == 4 else 0x86DD
    if etype == 0x0800:
        if len(frame) < off + 20 or frame[off + 9] != 6:
            return None
        ihl = (frame[off] & 0x0F) * 4
        src, dst = socket.inet_ntoa(frame[off + 12:off + 16]), socket.inet_ntoa(frame[off + 16:off + 20])
        t = off + ihl
    elif etype == 0x86DD:
        if len(frame) < off + 40 or frame[off + 6] != 6:
            return None
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
        t = off + 40
    else:
        return None
    if len(frame) < t + 20:
        return None
    sport, dport = struct.unpack_from("!HH", frame, t)
    doff = (frame[t + 12] >> 4) * 4
    flags = frame[t + 13]
    mss = None
    o = t + 20
    while o < t + doff and o < len(frame):
        kind = frame[o]
        if kind == 0:
            break
        if kind == 1:
            o += 1
            continue
        if o + 1 >= len(frame):
            break
        ln = frame[o + 1]
        if kind == 2 and ln == 4:
            (mss,) = struct.unpack_from("!H", frame, o + 2)
        o += max(ln, 2)
    return TcpSeen(src, dst, sport, dport, flags, mss)


def read_icmp_error(sock: socket.socket, family: int) -> tuple[str, int | None] | None:
    """Read one queued error (IP_RECVERR): ('icmp'|'local', next-hop MTU) or None."""
    try:
        _data, anc, _flags, _addr = sock.recvmsg(2048, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return None
    for _level, _type, cdata in anc:
        if len(cdata) >= 16:
            _errno, origin, etype, code, _pad, info, _data2 = struct.unpack_from("=IBBBBII", cdata)
            if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
                frag = (family == socket.AF_INET and etype == 3 and code == 4) or (
                    family == socket.AF_INET6 and etype == 2)
                return ("icmp", info if frag else None)
            if origin == SO_EE_ORIGIN_LOCAL:
                return ("local", info or None)
    return None
