"""GRE between cf and cust: the userspace endpoint (C, and the Python fallback) and kernel GRE.

Each test builds its own namespaces (cf, cust, and origin behind cust for forwarded traffic) joined
by veths with the interconnect /31, starts real endpoints and checks what really crossed: pings
answered through the tunnel, TUN counters, ICMP frag-needed returned to a sender, spoofed GRE
dropped, the TUN device gone once the endpoint dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from cnilab.sim.dataplane import gre, ugre_build
from cnilab.sim.facts import load_facts
from cnilab.sim.runtime.cleanup import owner_tag
from cnilab.sim.runtime.process import ProcessRecord, spawn
from cnilab.sim.testing import wait_for

CF_OUTER, CUST_OUTER = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11")
CF_INNER, CUST_INNER = IPv4Interface("10.212.0.0/31"), IPv4Interface("10.212.0.1/31")
ORIGIN_NET = "10.99.0.0/31"  # cust .0 <-> origin .1
TUN = "gre0"


def tunnel_mtu() -> int:
    facts = load_facts()
    return int(facts.physical_mtu.value) - facts.overhead(["gre", "ipv4"])


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Nodes:
    cf: str
    cust: str
    origin: str
    tmp: Path
    tag: str
    records: list[ProcessRecord] = field(default_factory=list)

    def path(self, ns: str) -> str:
        return f"/run/netns/{ns}"

    def run(self, ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def ping(self, ns: str, dst: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(ns, "ping", "-n", "-c", "1", "-W", "2", *extra, dst)

    def start(self, ns: str, local: IPv4Address, remote: IPv4Address, inner: IPv4Interface,
              key: int | None = None) -> ProcessRecord:
        log = self.tmp / f"{ns}-gre.log"
        rec = gre.start_userspace_gre(lambda name, argv: spawn(name, ns, argv, log), self.path(ns), TUN,
                                      local, remote, inner, tunnel_mtu(), log, key=key)
        self.records.append(rec)
        return rec

    def start_both(self) -> tuple[ProcessRecord, ProcessRecord]:
        return (self.start(self.cf, CF_OUTER, CUST_OUTER, CF_INNER),
                self.start(self.cust, CUST_OUTER, CF_OUTER, CUST_INNER))

    def has_link(self, ns: str, ifname: str = TUN) -> bool:
        return self.run(ns, "ip", "link", "show", ifname).returncode == 0


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    """cf ── /31 ── cust ── origin, each a namespace; endpoints and namespaces always removed."""
    tag = uuid.uuid4().hex[:6]
    n = Nodes(*(f"cnilab-t-gre-{tag}-{x}" for x in ("a", "b", "c")), tmp=tmp_path, tag=tag)
    try:
        for ns in (n.cf, n.cust, n.origin):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "alias", owner_tag(tmp_path), "up")
        sh("ip", "link", "add", f"tg{tag}a", "netns", n.cf, "type", "veth", "peer", "name", f"tg{tag}b",
           "netns", n.cust)
        sh("ip", "link", "add", f"tg{tag}c", "netns", n.cust, "type", "veth", "peer", "name", f"tg{tag}d",
           "netns", n.origin)
        for ns, dev, addr in ((n.cf, "a", f"{CF_OUTER}/31"), (n.cust, "b", f"{CUST_OUTER}/31"),
                              (n.cust, "c", "10.99.0.0/31"), (n.origin, "d", "10.99.0.1/31")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", f"tg{tag}{dev}")
            sh("ip", "-n", ns, "link", "set", f"tg{tag}{dev}", "up")
        sh("ip", "netns", "exec", n.cust, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", n.origin, "route", "add", "default", "via", "10.99.0.0")
        yield n
    finally:
        for rec in n.records:
            rec.stop()
        for ns in (n.cf, n.cust, n.origin):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def route_origin_via_tunnel(n: Nodes) -> None:
    sh("ip", "-n", n.cf, "route", "add", ORIGIN_NET, "via", str(CUST_INNER.ip))


def endpoint_log(n: Nodes) -> str:
    return "\n".join(p.read_text() for p in sorted(n.tmp.glob("*-gre.log")))


# --- no root needed ----------------------------------------------------------------------------

def test_gre_mode_reports_mechanism_and_reason() -> None:
    mode, reason = gre.gre_mode("auto")
    kernel_ok, why = gre.kernel_gre_available()
    assert mode == ("kernel" if kernel_ok else "userspace")
    assert why in reason
    if not kernel_ok:
        assert "endpoint" in reason  # says which userspace endpoint (C or Python) is in use
        with pytest.raises(gre.GreError, match="kernel requested"):
            gre.gre_mode("kernel")
    assert gre.gre_mode("userspace")[0] == "userspace"
    with pytest.raises(gre.GreError, match="bogus"):
        gre.gre_mode("bogus")  # type: ignore[arg-type]


def test_decapsulate_filters_source_and_flags() -> None:
    from cnilab.sim.dataplane.ugre_py import decapsulate

    remote = CF_OUTER.packed
    inner = b"\x45" + bytes(19)

    def outer(src: IPv4Address, gre_hdr: bytes) -> bytes:
        return b"\x45" + bytes(8) + b"\x2f" + bytes(2) + src.packed + CUST_OUTER.packed + gre_hdr + inner

    assert decapsulate(outer(CF_OUTER, b"\x00\x00\x08\x00"), remote) == inner
    assert decapsulate(outer(IPv4Address("192.0.2.99"), b"\x00\x00\x08\x00"), remote) is None
    assert decapsulate(outer(CF_OUTER, b"\x20\x00\x08\x00" + bytes(4)), remote) is None  # keyed
    assert decapsulate(outer(CF_OUTER, b"\x80\x00\x08\x00" + bytes(4)), remote) == inner  # checksum skipped


def test_c_endpoint_builds_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if ugre_build.compiler() is None:
        pytest.skip("gcc not installed: the C endpoint cannot be built here")
    monkeypatch.setenv("CNILAB_CACHE_DIR", str(tmp_path))
    first = ugre_build.ensure_binary()
    assert first.parent == tmp_path and os.access(first, os.X_OK)
    mtime = first.stat().st_mtime_ns
    assert ugre_build.ensure_binary() == first and first.stat().st_mtime_ns == mtime  # not rebuilt
    usage = subprocess.run([str(first)], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage: ugre" in usage.stderr


# --- userspace endpoint, real packets (root) ---------------------------------------------------

@pytest.mark.root
def test_ping_crosses_tunnel_and_counters_increase(nodes: Nodes) -> None:
    nodes.start_both()
    before_cust = gre.gre_counters(nodes.path(nodes.cust), TUN)
    before_cf = gre.gre_counters(nodes.path(nodes.cf), TUN)
    out = nodes.run(nodes.cust, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", str(CF_INNER.ip))
    assert out.returncode == 0 and " 0% packet loss" in out.stdout, out.stdout + out.stderr
    after_cust = gre.gre_counters(nodes.path(nodes.cust), TUN)
    after_cf = gre.gre_counters(nodes.path(nodes.cf), TUN)
    # 3 echo requests left cust through the tunnel and arrived decapsulated at cf; replies came back
    assert after_cust["tx_packets"] - before_cust["tx_packets"] >= 3
    assert after_cf["rx_packets"] - before_cf["rx_packets"] >= 3
    assert after_cust["rx_packets"] - before_cust["rx_packets"] >= 3
    assert after_cf["rx_bytes"] - before_cf["rx_bytes"] >= 3 * 84
    link = nodes.run(nodes.cf, "ip", "-o", "addr", "show", "dev", TUN).stdout
    assert str(CF_INNER) in link


@pytest.mark.root
def test_df_1476_crosses_1477_does_not(nodes: Nodes) -> None:
    nodes.start_both()
    mtu = tunnel_mtu()
    fits = nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 28))
    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert f"{mtu - 28 + 8} bytes from {CF_INNER.ip}" in fits.stdout
    too_big = nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 27))
    assert too_big.returncode != 0
    assert f"message too long, mtu={mtu}" in too_big.stdout + too_big.stderr


@pytest.mark.root
def test_forwarded_df_packet_gets_icmp_frag_needed(nodes: Nodes) -> None:
    """origin -> cust -> tunnel: cust's kernel answers a 1477-byte DF packet with ICMP frag-needed."""
    nodes.start_both()
    route_origin_via_tunnel(nodes)
    mtu = tunnel_mtu()
    fits = nodes.ping(nodes.origin, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 28))
    assert fits.returncode == 0, fits.stdout + fits.stderr
    too_big = nodes.ping(nodes.origin, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 27))
    text = too_big.stdout + too_big.stderr
    assert too_big.returncode != 0
    assert f"Frag needed and DF set (mtu = {mtu})" in text, text
    # the ICMP updated origin's PMTU cache: the next attempt fails locally with the learned MTU
    again = nodes.ping(nodes.origin, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 27))
    assert f"message too long, mtu={mtu}" in again.stdout + again.stderr


@pytest.mark.root
def test_outer_mtu_drop_makes_endpoint_send_frag_needed(nodes: Nodes) -> None:
    """When the interconnect's MTU shrinks under the tunnel (a fault), senders learn the new MTU."""
    nodes.start_both()
    route_origin_via_tunnel(nodes)
    sh("ip", "-n", nodes.cust, "link", "set", f"tg{nodes.tag}b", "mtu", "1400")
    out = nodes.ping(nodes.origin, str(CF_INNER.ip), "-M", "do", "-s", str(tunnel_mtu() - 28))
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "Frag needed and DF set (mtu = 1376)" in text, text + endpoint_log(nodes)
    small = nodes.ping(nodes.origin, str(CF_INNER.ip), "-M", "do", "-s", str(1376 - 28))
    assert small.returncode == 0, small.stdout + small.stderr


def _gre_packet(src: IPv4Address, dst: IPv4Address) -> bytes:
    """GRE payload (no outer header: the raw socket adds it) carrying an ICMP echo src -> dst."""

    def csum(data: bytes) -> int:
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        s = (s & 0xFFFF) + (s >> 16)
        return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF

    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"spoof-test"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, src.packed, dst.packed)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x00\x00\x08\x00" + ip + icmp


@pytest.mark.root
def test_gre_from_wrong_source_is_dropped(nodes: Nodes) -> None:
    nodes.start_both()
    spoofer = IPv4Address("192.0.2.99")
    sh("ip", "-n", nodes.cf, "addr", "add", f"{spoofer}/32", "dev", f"tg{nodes.tag}a")
    sh("ip", "-n", nodes.cust, "route", "add", f"{spoofer}/32", "dev", f"tg{nodes.tag}b")
    payload = _gre_packet(CF_INNER.ip, CUST_INNER.ip).hex()
    sender = (
        "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_GRE); "
        f"s.bind((sys.argv[1],0)); [s.sendto(bytes.fromhex('{payload}'),('{CUST_OUTER}',0)) for _ in range(5)]"
    )

    def rx() -> int:
        return gre.gre_counters(nodes.path(nodes.cust), TUN)["rx_packets"]

    base = rx()
    nodes.run(nodes.cf, "python3", "-c", sender, str(spoofer), check=True)
    nodes.run(nodes.cf, "python3", "-c", sender, str(CF_OUTER), check=True)  # positive control
    wait_for(lambda: rx() - base >= 5, timeout=5, what="5 GRE packets from the real remote decapsulated")
    assert rx() - base == 5  # the 5 from 192.0.2.99 never reached cust's TUN


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_endpoint_exit_removes_tun(nodes: Nodes, sig: signal.Signals) -> None:
    cf_rec, _ = nodes.start_both()
    assert nodes.has_link(nodes.cf)
    os.kill(cf_rec.pid, sig)
    wait_for(lambda: not nodes.has_link(nodes.cf), timeout=5, interval=0.05, what="TUN removed")
    assert nodes.ping(nodes.cust, str(CF_INNER.ip)).returncode != 0
    with contextlib.suppress(ChildProcessError):
        os.waitpid(cf_rec.pid, 0)
    if sig == signal.SIGTERM:
        assert "ugre: exit" in endpoint_log(nodes)  # clean shutdown path, counters logged


@pytest.mark.root
def test_bad_input_fails_clearly_and_leaves_nothing(nodes: Nodes) -> None:
    log = nodes.tmp / "bad.log"

    def start(path: str, ifname: str, local: IPv4Address) -> ProcessRecord:
        return gre.start_userspace_gre(lambda name, argv: spawn(name, "cf", argv, log), path, ifname, local,
                                       CUST_OUTER, CF_INNER, tunnel_mtu(), log)

    with pytest.raises(gre.GreError, match="does not exist"):
        start("/run/netns/cnilab-t-gre-nonexistent", TUN, CF_OUTER)
    with pytest.raises(gre.GreError, match="longer than 15"):
        start(nodes.path(nodes.cf), "a-very-long-ifname", CF_OUTER)
    # A source the node does not own is accepted, as `ip link add ... type gre local X` accepts it
    # (the customer declares its own tunnel; a wrong source must reach the wire, not refuse to start).
    rec = start(nodes.path(nodes.cf), TUN, IPv4Address("203.0.113.1"))
    assert nodes.has_link(nodes.cf)
    rec.stop()
    deadline = time.monotonic() + 10
    while nodes.has_link(nodes.cf) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not nodes.has_link(nodes.cf)
    nodes.start(nodes.cf, CF_OUTER, CUST_OUTER, CF_INNER)
    with pytest.raises(gre.GreError, match="already exists"):
        start(nodes.path(nodes.cf), TUN, CF_OUTER)


@pytest.mark.root
def test_python_fallback_endpoint(nodes: Nodes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gcc the lab still gets a working tunnel from the pure-Python endpoint."""
    monkeypatch.setenv("CC", "cnilab-no-such-compiler")
    monkeypatch.setenv("CNILAB_CACHE_DIR", str(nodes.tmp / "empty-cache"))
    assert "pure-Python" in gre.gre_mode("userspace")[1]
    cf_rec, _ = nodes.start_both()
    assert "cnilab.sim.dataplane.ugre_py" in cf_rec.argv
    mtu = tunnel_mtu()
    assert nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 28)).returncode == 0
    assert gre.gre_counters(nodes.path(nodes.cf), TUN)["rx_packets"] >= 1
    cf_rec.stop()
    wait_for(lambda: not nodes.has_link(nodes.cf), timeout=5, interval=0.05, what="TUN removed")


# --- kernel GRE (where the kernel has it) ------------------------------------------------------

@pytest.mark.root
def test_kernel_gre(nodes: Nodes) -> None:
    ok, why = gre.kernel_gre_available()
    if not ok:
        pytest.skip(f"kernel GRE path not testable here: {why}")
    mtu = tunnel_mtu()
    gre.create_kernel_gre(nodes.path(nodes.cf), TUN, CF_OUTER, CUST_OUTER, CF_INNER, mtu)
    gre.create_kernel_gre(nodes.path(nodes.cust), TUN, CUST_OUTER, CF_OUTER, CUST_INNER, mtu)
    before = gre.gre_counters(nodes.path(nodes.cf), TUN)["rx_packets"]
    assert nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 28)).returncode == 0
    assert nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(mtu - 27)).returncode != 0
    assert gre.gre_counters(nodes.path(nodes.cf), TUN)["rx_packets"] > before
    with pytest.raises(gre.GreError, match="already exists"):
        gre.create_kernel_gre(nodes.path(nodes.cf), TUN, CF_OUTER, CUST_OUTER, CF_INNER, mtu)



@pytest.mark.root
def test_keys_must_match_like_kernel_gre(nodes: Nodes) -> None:
    """RFC 2890 keys: an unkeyed end drops keyed packets and vice versa; equal keys carry traffic."""
    if gre.userspace_endpoint()[1].startswith("pure-Python"):
        pytest.skip("the pure-Python endpoint has no --key")
    cf = nodes.start(nodes.cf, CF_OUTER, CUST_OUTER, CF_INNER)
    cust = nodes.start(nodes.cust, CUST_OUTER, CF_OUTER, CUST_INNER, key=42)
    assert nodes.ping(nodes.cust, str(CF_INNER.ip)).returncode != 0
    for rec in (cf, cust):
        rec.stop()
    deadline = time.monotonic() + 10
    while (nodes.has_link(nodes.cf) or nodes.has_link(nodes.cust)) and time.monotonic() < deadline:
        time.sleep(0.05)
    nodes.start(nodes.cf, CF_OUTER, CUST_OUTER, CF_INNER, key=42)
    nodes.start(nodes.cust, CUST_OUTER, CF_OUTER, CUST_INNER, key=42)
    assert nodes.ping(nodes.cust, str(CF_INNER.ip), "-M", "do", "-s", str(tunnel_mtu() - 28 - 4)).returncode == 0


# --- offload path: TSO super-packets cut into wire packets, receive-side merge ---------------------

_BULK = """
import hashlib, socket, sys
role, addr, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size // 32))

def recv_all(s, n):
    got = bytearray()
    while len(got) < n:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    return bytes(got)

if role == "server":
    srv = socket.create_server((addr, 5300))
    print("listening", flush=True)
    conn, _ = srv.accept()
    ok = recv_all(conn, len(data)) == data
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    print("server-received-ok" if ok else "server-received-BAD", flush=True)
else:
    s = socket.create_connection((addr, 5300), timeout=30)
    s.sendall(data)
    ok = recv_all(s, len(data)) == data
    print("client-received-ok" if ok else "client-received-BAD", flush=True)
"""


def _gre_inner_packets(pcap: Path) -> list[bytes]:
    """Inner IP packets of the GRE packets in a pcap (Ethernet link type), outer length checked."""
    raw = pcap.read_bytes()
    out, off = [], 24
    while off + 16 <= len(raw):
        incl, orig = struct.unpack_from("<II", raw, off + 8)
        frame = raw[off + 16:off + 16 + incl]
        off += 16 + incl
        if frame[12:14] != b"\x08\x00" or frame[14 + 9] != 47:
            continue
        outer_len = struct.unpack_from("!H", frame, 14 + 2)[0]
        assert outer_len <= 1500, f"a GRE packet of {outer_len} bytes left the node"
        assert incl == orig, "capture truncated"
        ihl = (frame[14] & 0x0F) * 4
        out.append(frame[14 + ihl + 4:14 + outer_len])
    return out


def _tcp_checksum_ok(ip: bytes) -> bool:
    def fold(data: bytes) -> int:
        if len(data) % 2:
            data += b"\x00"
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return s

    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    seg = ip[ihl:total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    return fold(pseudo + seg) == 0xFFFF


@pytest.mark.root
def test_bulk_tcp_through_offload_path_is_intact_and_wire_packets_fit_mtu(nodes: Nodes) -> None:
    """Both directions carry 4 MB byte-exact; on the wire every GRE packet is <= 1500 bytes with a
    correct inner TCP checksum, i.e. the endpoint cut the TUN's super-packets like the kernel would."""
    nodes.start_both()
    size, pcap = 4 << 20, nodes.tmp / "outer.pcap"
    capture = subprocess.Popen(["ip", "netns", "exec", nodes.cf, "tcpdump", "-i", f"tg{nodes.tag}a", "-s", "2000",
                                "-B", "16384", "-U", "-w", str(pcap), "ip proto 47"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = subprocess.Popen(["ip", "netns", "exec", nodes.cf, "python3", "-c", _BULK, "server", str(CF_INNER.ip),
                               str(size)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        wait_for(lambda: pcap.exists() and pcap.stat().st_size >= 24, timeout=10, what="tcpdump started")
        client = nodes.run(nodes.cust, "python3", "-c", _BULK, "client", str(CF_INNER.ip), str(size))
        assert "client-received-ok" in client.stdout, client.stdout + client.stderr
        assert "server-received-ok" in server.communicate(timeout=30)[0]
    finally:
        server.kill()
        capture.terminate()
        capture.wait(timeout=10)
    inner = _gre_inner_packets(pcap)
    data = [p for p in inner if p[0] >> 4 == 4 and p[9] == 6 and struct.unpack_from("!H", p, 2)[0] > 1000]
    assert len(data) >= 100, f"only {len(data)} full-size TCP segments captured"
    assert max(struct.unpack_from("!H", p, 2)[0] for p in data) <= tunnel_mtu()
    bad = [p for p in inner if p[0] >> 4 == 4 and p[9] == 6 and not _tcp_checksum_ok(p)]
    assert not bad, f"{len(bad)} of {len(inner)} inner TCP segments with a wrong checksum on the wire"
    if "offload=tso" in endpoint_log(nodes):
        # the kernel counted super-packets handed to the endpoint; the endpoint sent more wire packets
        for rec in nodes.records:
            os.kill(rec.pid, signal.SIGUSR1)
        wait_for(lambda: endpoint_log(nodes).count("ugre: counters") >= 2, timeout=5, what="counters logged")
        sent = max(int(m) for m in re.findall(r"counters .*?tx_packets=(\d+)", endpoint_log(nodes)))
        kernel = max(gre.gre_counters(nodes.path(ns), TUN)["tx_packets"] for ns in (nodes.cf, nodes.cust))
        assert sent > kernel, (sent, kernel)


def _tcp_over_gre(seq: int, ip_id: int, payload: bytes, corrupt: bool) -> bytes:
    """GRE payload carrying one IPv4 TCP ACK segment CF_INNER -> CUST_INNER:9."""

    def fold(data: bytes) -> int:
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return s

    src, dst = CF_INNER.ip.packed, CUST_INNER.ip.packed
    tcp = struct.pack("!HHIIBBHHH", 40000, 9, seq, 1, 5 << 4, 0x10, 65535, 0, 0) + payload
    check = ~fold(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", check ^ (0x5555 if corrupt else 0)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ~fold(ip) & 0xFFFF) + ip[12:]
    return b"\x00\x00\x08\x00" + ip + tcp


@pytest.mark.root
def test_corrupted_segment_is_not_merged_with_its_neighbours(nodes: Nodes) -> None:
    """Three in-order segments of one flow, the middle one with a bad TCP checksum: the receiving
    node's TCP stack still sees (and counts) the bad one, as it would without the endpoint's merging."""
    _, cust = nodes.start_both()
    packets = [_tcp_over_gre(1000 + i * 1000, 7 + i, bytes([i]) * 1000, corrupt=i == 1).hex() for i in range(3)]
    sender = ("import socket; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_GRE); "
              f"s.bind(('{CF_OUTER}',0)); [s.sendto(bytes.fromhex(p),('{CUST_OUTER}',0)) for p in {packets!r}]")

    def csum_errors() -> int:
        snmp = nodes.run(nodes.cust, "cat", "/proc/net/snmp", check=True).stdout.splitlines()
        names, values = (line.split() for line in snmp if line.startswith("Tcp:"))
        return int(values[names.index("InCsumErrors")])

    def rx() -> int:
        return gre.gre_counters(nodes.path(nodes.cust), TUN)["rx_packets"]

    errors, base = csum_errors(), rx()
    os.kill(cust.pid, signal.SIGSTOP)  # all three wait in the socket: one receive batch, merge candidates
    try:
        nodes.run(nodes.cf, "python3", "-c", sender, check=True)
    finally:
        os.kill(cust.pid, signal.SIGCONT)
    wait_for(lambda: rx() - base >= 3, timeout=5, what="3 segments decapsulated")
    wait_for(lambda: csum_errors() - errors >= 1, timeout=5, what="the bad segment counted by TCP")
    assert csum_errors() - errors == 1
