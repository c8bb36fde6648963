"""Cloudflare's side of Magic tunnel health checks, run inside the lab's edge node.

For every tunnel it sends real ICMP probes into the tunnel device (an ``AF_PACKET`` socket on the
GRE/TUN interface, so the probe is encapsulated by whatever implements GRE here, kernel or
userspace), listens for them coming back (a raw ICMP socket with ``IP_PKTINFO`` to see *where*
they came back), feeds each result to :class:`cnilab.sim.magic.health.Prober`, and keeps the steered
routes for the customer's prefixes in table 300 of the edge (multipath for equal priorities).

Probe addressing (docs:tunnel-health-checks, summary table):
- reply, bidirectional:    ICMP echo *reply*  src customer interface address -> dst Cloudflare's
- request, bidirectional:  ICMP echo request  src Cloudflare interface address -> dst customer's
- reply, unidirectional:   echo reply  src customer tunnel endpoint -> dst Cloudflare endpoint
- request, unidirectional: echo request src Cloudflare endpoint -> dst target (customer endpoint)
- legacy bidirectional:    echo reply  src target 172.64.240.253 -> dst Cloudflare interface address
Bidirectional answers must arrive through the tunnel, unidirectional ones outside it.

Run: ``python -m cnilab.sim.magic.hcd --config magic.json --status magic-status.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import select
import signal
import socket
import struct
import time
import traceback
from pathlib import Path

from cnilab.sim.magic.config import (
    TABLE,
    HcConfig,
    HcTunnel,
    MagicStatus,
    ProbeView,
    RouteChange,
    TransitionView,
    TunnelStatus,
    load_config,
    write_json_atomic,
)
from cnilab.sim.magic.facts import legacy_target, timing, tunnel_state_value
from cnilab.sim.magic.health import Prober, TunnelHealth
from cnilab.sim.magic.steering import steer
from pyroute2 import IPRoute

MAGIC = b"CNILABHC"
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
IP_PKTINFO = 8
STATUS_EVERY_S = 0.5
"""The status file is rewritten at least this often (and at once on a change): readers treat a
status older than ``cnilab.sim.magic.lab.STALE_S`` as a dead daemon, never as the tunnels' state."""


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def build_probe(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, icmp_type: int, ident: int, seq: int,
                payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq & 0xFFFF, 0, 64, 1, 0, src.packed, dst.packed)
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + icmp


def addressing(t: HcTunnel, legacy_dst: ipaddress.IPv4Address | None = None
               ) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address, int, bool]:
    """(src, dst, ICMP type, answer expected through the tunnel) for a tunnel's health check."""
    hc = t.health_check
    if hc.legacy:
        return ipaddress.IPv4Address(str(hc.target or legacy_target())), t.cf_inner, 0, True
    if hc.direction == "bidirectional":
        return (t.cust_inner, t.cf_inner, 0, True) if hc.type == "reply" else (t.cf_inner, t.cust_inner, 8, True)
    if hc.type == "reply":
        return t.cust_outer, t.cf_outer, 0, False
    return t.cf_outer, hc.target or t.cust_outer, 8, False


class Runtime:
    def __init__(self, idx: int, cfg: HcTunnel, interval: float, now: float) -> None:
        self.idx, self.cfg = idx, cfg
        self.health = TunnelHealth(timing(), t0=now)
        self.prober = Prober(self.health, interval, t0=now, phase=0.05 * idx)
        self.seq = 0
        self.sent = self.returned = self.failed = 0
        self.views: list[ProbeView] = []
        self.note = ""

    @property
    def state(self) -> str:
        """Health checks disabled: nothing to judge by, so no penalty (the tunnel counts as healthy)."""
        return self.health.state if self.cfg.health_check.enabled else "healthy"

    def log(self, now: float, ok: bool, attempt: int, rtt: float | None, note: str) -> None:
        self.views.append(ProbeView(t=now, ok=ok, attempt=attempt, rtt_ms=rtt, note=note))
        del self.views[:-20]


class Daemon:
    def __init__(self, config: Path, status: Path) -> None:
        self.config_path, self.status_path = config, status
        self.cfg: HcConfig | None = None
        self.mtime = 0.0
        self.rt: dict[str, Runtime] = {}
        self.ipr = IPRoute()
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.rx.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.installed: dict[str, tuple] = {}
        self.changes: list[RouteChange] = []
        self.rules: set[str] = set()
        self.stop = False
        self.dirty = True
        self.last_status = 0.0

    # -- config ------------------------------------------------------------------------------
    def interval(self, rate: str) -> float:
        assert self.cfg is not None
        return self.cfg.intervals.get(rate) or timing().interval(rate)

    def reload(self, now: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            m = self.config_path.stat().st_mtime
            if m == self.mtime:
                return
            self.mtime = m
            try:
                cfg = load_config(self.config_path)
            except (OSError, ValueError) as exc:  # keep probing with the last good config
                print(f"config {self.config_path} refused, keeping the previous one: {exc}", flush=True)
                return
            old = self.rt
            self.rt = {}
            for i, t in enumerate(cfg.tunnels):
                self.cfg = cfg
                iv = self.interval(t.health_check.rate)
                r = old.get(t.name)
                if r is None or r.cfg.ifname != t.ifname:
                    r = Runtime(i, t, iv, now)
                else:
                    r.idx, r.cfg = i, t
                    if r.prober.interval_s != iv:
                        r.prober.set_interval(iv, now)
                self.rt[t.name] = r
            self.cfg = cfg
            self.dirty = True

    # -- probes ------------------------------------------------------------------------------
    def send(self, r: Runtime, now: float) -> None:
        assert self.cfg is not None
        src, dst, typ, _ = addressing(r.cfg, self.cfg.legacy_dst)
        r.seq = (r.seq + 1) & 0xFFFF
        payload = MAGIC + struct.pack("!HHd", r.idx, r.seq, now)
        pkt = build_probe(src, dst, typ, 0xC000 | r.idx, r.seq, payload)
        r.prober.sent(now)
        r.sent += 1
        r.note = ""
        try:
            mac = self.peer_mac(r.cfg)
            if mac is None:
                self.tx.sendto(pkt, (r.cfg.ifname, ETH_P_IP))
            else:
                self.tx.sendto(pkt, (r.cfg.ifname, ETH_P_IP, 0, 0, mac))
        except OSError as exc:
            r.note = f"send failed: {exc.strerror}"

    def gateway(self, t: HcTunnel) -> str | None:
        """A route into a tunnel device needs no gateway; over an Ethernet interconnect it goes via
        the customer's address."""
        idx = self.ifindex(t.ifname)
        link = self.ipr.link("get", index=idx)[0] if idx > 0 else None
        return str(t.cust_inner) if link is not None and link["ifi_type"] == ARPHRD_ETHER else None

    def peer_mac(self, t: HcTunnel) -> bytes | None:
        """None on a tunnel device (no link layer); on an Ethernet interconnect (a CNI without GRE)
        the customer's MAC, from the neighbour table (an ARP exchange is triggered when missing)."""
        idx = self.ifindex(t.ifname)
        link = self.ipr.link("get", index=idx)[0] if idx > 0 else None
        if link is None or link["ifi_type"] != ARPHRD_ETHER:  # GRE, TUN: no link-layer header
            return None
        for attempt in range(20):
            for n in self.ipr.get_neighbours(ifindex=idx, dst=str(t.cust_inner)):
                lladdr = n.get_attr("NDA_LLADDR")
                if lladdr and n["state"] != 0x20:  # not NUD_FAILED
                    return bytes.fromhex(lladdr.replace(":", ""))
            if attempt == 0:
                with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(b"", (str(t.cust_inner), 9))  # makes the kernel resolve the neighbour
            time.sleep(0.01)
        return b"\xff" * 6  # unresolved: broadcast, which a router will not forward (a failed probe)

    def receive(self, now: float) -> None:
        data, anc, _flags, _addr = self.rx.recvmsg(4096, socket.CMSG_SPACE(12))
        ifindex = 0
        for level, typ, cdata in anc:
            if level == socket.IPPROTO_IP and typ == IP_PKTINFO:
                ifindex = struct.unpack("=i", cdata[:4])[0]
        ihl = (data[0] & 0xF) * 4
        icmp = data[ihl:]
        if len(icmp) < 8 + len(MAGIC) + 12 or icmp[0] != 0 or icmp[8:8 + len(MAGIC)] != MAGIC:
            return
        idx, seq, t_sent = struct.unpack("!HHd", icmp[8 + len(MAGIC):8 + len(MAGIC) + 12])
        r = next((x for x in self.rt.values() if x.idx == idx), None)
        if r is None or r.seq != seq or r.prober.outstanding_since is None:
            return
        _, _, _, through = addressing(r.cfg)
        tun_index = self.ifindex(r.cfg.ifname)
        if through != (ifindex == tun_index):
            where = self.ifname_of(ifindex)
            r.note = (f"answer came back outside the tunnel (on {where})" if through
                      else f"answer came back inside the tunnel ({where})")
            return  # counted as lost at the timeout: the path is wrong
        rtt = (now - t_sent) * 1000
        attempt = r.prober.attempt
        tr = r.prober.result(now, True, rtt)
        r.returned += 1
        r.log(now, True, attempt, round(rtt, 2), "")
        self.dirty = self.dirty or tr is not None

    def ifindex(self, name: str) -> int:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else -1

    def ifname_of(self, index: int) -> str:
        with contextlib.suppress(Exception):
            return self.ipr.link("get", index=index)[0].get_attr("IFLA_IFNAME")
        return f"ifindex {index}"

    # -- steering ----------------------------------------------------------------------------
    def apply_routes(self) -> dict:
        assert self.cfg is not None
        states = {n: r.state for n, r in self.rt.items()}
        routes = steer(self.cfg.routes, states)
        for prefix in [p for p in self.installed if p not in routes]:  # a route deleted from the config
            net = ipaddress.ip_network(prefix)
            with contextlib.suppress(Exception):
                self.ipr.route("del", dst=prefix, table=TABLE)
            with contextlib.suppress(Exception):
                self.ipr.rule("del", table=TABLE, priority=TABLE, dst=str(net.network_address), dst_len=net.prefixlen)
            del self.installed[prefix]
            self.rules.discard(prefix)
            self.changes.append(RouteChange(t=time.time(), prefix=prefix, tunnels=[]))
        for prefix, hops in routes.items():
            net = ipaddress.ip_network(prefix)
            if prefix not in self.rules:
                with contextlib.suppress(Exception):
                    self.ipr.rule("add", table=TABLE, priority=TABLE, dst=str(net.network_address),
                                  dst_len=net.prefixlen)
                self.rules.add(prefix)
            want = tuple((self.ifindex(self.rt[h.tunnel].cfg.ifname), h.weight, self.gateway(self.rt[h.tunnel].cfg))
                         for h in hops)
            if self.installed.get(prefix) == want:
                continue
            try:
                hops_nl = [{"oif": i, "hops": max(0, w - 1), **({"gateway": g} if g else {})} for i, w, g in want]
                if len(want) == 1:
                    self.ipr.route("replace", dst=prefix, table=TABLE,
                                   **{k: v for k, v in hops_nl[0].items() if k != "hops"})
                else:
                    self.ipr.route("replace", dst=prefix, table=TABLE, multipath=hops_nl)
                self.installed[prefix] = want
                self.changes.append(RouteChange(t=time.time(), prefix=prefix, tunnels=[h.tunnel for h in hops]))
                del self.changes[:-50]
            except Exception as exc:  # an interface that went away: try again next round
                print(f"route {prefix}: {exc}", flush=True)
        return routes

    def write_status(self, routes: dict, now: float) -> None:
        assert self.cfg is not None
        out = []
        for r in self.rt.values():
            prios = [x.priority for x in self.cfg.routes if x.nexthop == r.cfg.name]
            hc = r.cfg.health_check
            pen = timing().penalty[r.state]
            out.append(TunnelStatus(
                name=r.cfg.name, kind=r.cfg.kind, ifname=r.cfg.ifname, type=hc.type,
                direction="legacy-bidirectional" if hc.legacy else hc.direction, rate=hc.rate, enabled=hc.enabled,
                interval_s=r.prober.interval_s, priority=min(prios) if prios else None,
                effective_priority=min(prios) + pen if prios else None, state=r.state,
                tunnel_state=tunnel_state_value(r.state), since=r.health.since, sent=r.sent,
                returned=r.returned, failed=r.failed, last=r.views[-10:],
                transitions=[TransitionView(**t.model_dump()) for t in r.health.transitions[-10:]]))
        st = MagicStatus(updated=now, pid=os.getpid(), tunnels=out, routes=routes, route_changes=self.changes)
        write_json_atomic(self.status_path, st.model_dump_json(indent=1))

    # -- loop --------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop:
            try:
                self.step()
            except Exception:  # one bad round (a tunnel device gone mid-change) must not end the checks
                traceback.print_exc()
                time.sleep(0.1)

    def step(self) -> None:
        """One round: timeouts, due probes, steering and status, then wait for an answer."""
        now = time.time()
        self.reload(now)
        for r in list(self.rt.values()):
            if not r.cfg.health_check.enabled:
                continue
            dl = r.prober.deadline
            if dl is not None and now >= dl:
                attempt = r.prober.attempt
                tr = r.prober.result(now, False)
                r.failed += 1
                r.log(now, False, attempt, None, r.note or "no answer within "
                      f"{timing().probe_timeout_s * 1000:.0f} ms")
                self.dirty = self.dirty or tr is not None
            if r.prober.due(now):
                self.send(r, now)
        if self.cfg is not None and (self.dirty or now - self.last_status > STATUS_EVERY_S):
            routes = self.apply_routes()
            self.write_status(routes, now)
            self.dirty, self.last_status = False, now
        waits = [0.1] + [max(0.0, x - now) for r in self.rt.values()
                         for x in (r.prober.deadline, r.prober.next_at) if x is not None]
        ready, _, _ = select.select([self.rx], [], [], min(waits))
        if ready:
            self.receive(time.time())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--status", type=Path, required=True)
    a = ap.parse_args()
    d = Daemon(a.config, a.status)

    def _stop(*_: object) -> None:
        d.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    d.run()


if __name__ == "__main__":
    main()
