"""Pure-Python userspace GRE endpoint: the fallback when gcc is absent (``python -m cnilab.sim.dataplane.ugre_py``).

Same command line and wire behaviour as ``ugre.c`` (enter the netns, non-persistent TUN, raw
IPPROTO_GRE socket bound to --local and connected to --remote, RFC 2784 without key, checksum or
sequence on transmit, drop anything not from --remote, outer DF). It exists so a lab still comes up
on a machine without a compiler; it carries tens of Mbit/s, not Gbit/s, and :func:`gre_mode` says
so. Both directions run in one selector loop, which is enough at that speed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import os
import selectors
import signal
import socket
import struct
import sys

from cnilab.sim.runtime.nsenter import setns

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
PROTO_BY_VERSION = {4: 0x0800, 6: 0x86DD}
GRE_KEY, GRE_ROUTING, GRE_CSUM, GRE_SEQ, GRE_VERSION = 0x2000, 0x4000, 0x8000, 0x1000, 0x0007


def decapsulate(packet: bytes, remote: bytes) -> bytes | None:
    """Inner packet of a GRE packet from ``remote`` (raw sockets include the IPv4 header), else None."""
    if len(packet) < 24 or packet[0] >> 4 != 4 or packet[12:16] != remote:
        return None
    ihl = (packet[0] & 0x0F) * 4
    flags, proto = struct.unpack_from("!HH", packet, ihl)
    if flags & (GRE_VERSION | GRE_KEY | GRE_ROUTING) or proto not in (0x0800, 0x86DD):
        return None
    off = ihl + 4 + (4 if flags & GRE_CSUM else 0) + (4 if flags & GRE_SEQ else 0)
    return packet[off:] if off < len(packet) else None


def run(netns: str, ifname: str, local: str, remote: str) -> None:
    setns(netns)
    tun = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
    sock.bind((local, 0))
    sock.connect((remote, 0))
    remote_b = ipaddress.IPv4Address(remote).packed
    sel = selectors.DefaultSelector()
    sel.register(tun, selectors.EVENT_READ, "tun")
    sel.register(sock, selectors.EVENT_READ, "gre")
    print(f"ugre_py: ready if={ifname} netns={netns} local={local} remote={remote}", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "tun":
                inner = os.read(tun, 65536)
                proto = PROTO_BY_VERSION.get(inner[0] >> 4) if inner else None
                if proto is not None:
                    # EMSGSIZE or an ICMP error from the path: drop (the C endpoint also answers EMSGSIZE)
                    with contextlib.suppress(OSError):
                        sock.send(struct.pack("!HH", 0, proto) + inner)
            else:
                try:
                    packet = sock.recv(65536)
                except OSError:
                    continue  # asynchronous ICMP error reported on the connected socket
                inner = decapsulate(packet, remote_b)
                if inner:
                    with contextlib.suppress(OSError):
                        os.write(tun, inner)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ugre_py", description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--ifname", required=True)
    parser.add_argument("--local", required=True, type=lambda s: str(ipaddress.IPv4Address(s)))
    parser.add_argument("--remote", required=True, type=lambda s: str(ipaddress.IPv4Address(s)))
    opts = parser.parse_args(argv)
    # SIGTERM -> SystemExit: the process exits, the TUN fd closes and the device is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(opts.netns, opts.ifname, opts.local, opts.remote)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"ugre_py: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
