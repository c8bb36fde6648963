"""MTU probe: one-way DF sweeps in each direction, and whether PMTUD works.

``ping -M do`` cannot measure one direction: the echo reply travels the other way and is as big as
the request. So the probe sends DF UDP datagrams from a socket in the source node and receives them
on a socket in the destination node, binary-searching the largest that arrives. It then sends one
datagram just above that size with ``IP_RECVERR`` to see whether an ICMP fragmentation-needed comes
back (PMTUD works) or the packet vanishes (a PMTUD black hole).
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import subprocess
import time
from typing import Literal

from cnilab.sim.handle import LabHandle
from cnilab.sim.probes.sockets import (
    IP_MTU_DISCOVER,
    IP_PMTUDISC_DO,
    IP_PMTUDISC_PROBE,
    IP_RECVERR,
    IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_PROBE,
    IPV6_RECVERR,
    read_icmp_error,
    socket_in,
)
from cnilab.sim.topology.plan import CUSTOMER, EDGE, INTERNET, ORIGIN, LabPlan
from pydantic import BaseModel, Field

Direction = Literal["cf_to_customer", "customer_to_cf"]

IP_PMTUDISC_DONT = 0
"""No DF: a router may fragment the datagram, as it must for a packet larger than its egress MTU."""


class MtuResult(BaseModel):
    direction: Direction
    family: int = 4
    src: str
    dst: str
    dst_addr: str
    expected: int
    measured: int | None
    pmtud: Literal["works", "black-hole", "not-needed"]
    icmp_mtu: int | None
    large_nodf: bool | None = Field(
        default=None, description="IPv4: a full-size datagram without DF crossed (fragmented where the path "
                                  "narrows); False = such packets are black-holed")
    ok: bool
    diagnosis: str


class MtuReport(BaseModel):
    lab: str
    link: str | None
    results: list[MtuResult]
    ok: bool
    provenance: str = Field(default="", description="Who built the customer's tunnel: your declaration or cnilab")


def first_addr(plan: LabPlan, node: str, family: int = 4) -> str | None:
    """The node's first address of ``family`` (its one host interface), or None."""
    for iface in plan.node(node).interfaces:
        for a in iface.addresses:
            if a.version == family:
                return str(a.ip)
    return None


def _first_v4(plan: LabPlan, node: str) -> str:
    addr = first_addr(plan, node, 4)
    if addr is None:
        raise ValueError(f"node {node} has no IPv4 address")
    return addr


def _overhead(addr: str) -> int:
    return 28 if ipaddress.ip_address(addr).version == 4 else 48


def _sender(netns: str, dst: str, mode: int) -> socket.socket:
    fam = socket.AF_INET if ipaddress.ip_address(dst).version == 4 else socket.AF_INET6
    s = socket_in(netns, fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, mode)
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE if mode == IP_PMTUDISC_PROBE else 2)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    return s


def flush_pmtu(netns: str) -> None:
    """Forget learned path MTUs in ``netns``, IPv4 and IPv6 (``ip route flush cache`` is IPv4 only)."""
    for fam in ("-4", "-6"):
        subprocess.run(["nsenter", f"--net={netns}", "ip", fam, "route", "flush", "cache"], capture_output=True)


def _drain_errors(tx: socket.socket) -> None:
    while read_icmp_error(tx, tx.family) is not None:
        pass


def _arrives(tx: socket.socket, rx: socket.socket, dst: tuple[str, int], size: int, tries: int = 3,
             wait: float = 0.25) -> bool:
    """Send ``tries`` DF datagrams of IP size ``size``; True if any arrives.

    An ICMP error left over from a larger size would make this send fail, so the error queue is
    drained first; an ICMP fragmentation-needed for *this* size ends the wait early.
    """
    payload_len = size - _overhead(dst[0])
    token = os.urandom(8)
    _drain_errors(tx)
    for _ in range(tries):
        try:
            tx.sendto(token + b"\0" * max(0, payload_len - 8), dst)
        except OSError:
            _drain_errors(tx)
            try:
                tx.sendto(token + b"\0" * max(0, payload_len - 8), dst)
            except OSError:  # EMSGSIZE: bigger than the sender's own interface
                return False
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        r, _, _ = select.select([rx, tx], [], [], left)
        if not r:
            break
        if tx in r:
            err = read_icmp_error(tx, tx.family)
            if err is not None and err[1] is not None and err[1] < size:
                return False  # a router on the path said: too big, and told us its MTU
        if rx in r:
            data = rx.recv(65535)
            if data[:8] == token:
                return True
    return False


def measure_direction(lab: LabHandle, direction: Direction, src: str, dst: str, dst_addr: str, expected: int,
                      hint: str = "", ceiling: int = 1500) -> MtuResult:
    src_ns, dst_ns = lab.netns_path(src), lab.netns_path(dst)
    fam = socket.AF_INET if ipaddress.ip_address(dst_addr).version == 4 else socket.AF_INET6
    rx = socket_in(dst_ns, fam, socket.SOCK_DGRAM)
    rx.bind((dst_addr, 0))
    port = rx.getsockname()[1]
    flush_pmtu(src_ns)
    tx = _sender(src_ns, dst_addr, IP_PMTUDISC_PROBE)
    try:
        lo, hi = 0, ceiling
        if not _arrives(tx, rx, (dst_addr, port), 576 if fam == socket.AF_INET else 1280):
            return MtuResult(direction=direction, family=6 if fam == socket.AF_INET6 else 4, src=src, dst=dst,
                             dst_addr=dst_addr, expected=expected,
                             measured=None, pmtud="not-needed", icmp_mtu=None, ok=False,
                             diagnosis=f"nothing reaches {dst_addr} from {src}: the path is down")
        lo = 576 if fam == socket.AF_INET else 1280
        if _arrives(tx, rx, (dst_addr, port), hi):
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _arrives(tx, rx, (dst_addr, port), mid):
                lo = mid
            else:
                hi = mid
        measured = lo
    finally:
        tx.close()
    pmtud, icmp_mtu = "not-needed", None
    large_nodf = None
    if measured < ceiling:
        pmtud, icmp_mtu = _pmtud(src_ns, dst_addr, port, measured + 1)
        if fam == socket.AF_INET:
            # Forget the PMTU the sweep's ICMPs taught the sender, or it would fragment the packet
            # itself and hide a router that cannot.
            flush_pmtu(src_ns)
            tx = _sender(src_ns, dst_addr, IP_PMTUDISC_DONT)
            try:
                large_nodf = _arrives(tx, rx, (dst_addr, port), ceiling)
            finally:
                tx.close()
    rx.close()
    if large_nodf is False:
        hint = hint or "an interface on the path has an MTU above the path's"
        return MtuResult(direction=direction, family=4, src=src, dst=dst, dst_addr=dst_addr, expected=expected,
                         measured=measured, pmtud=pmtud, icmp_mtu=icmp_mtu, large_nodf=False, ok=False,
                         diagnosis=(f"{ceiling}-byte packets without DF are black-holed "
                                    f"{'towards Cloudflare' if direction == 'customer_to_cf' else 'from Cloudflare'}:"
                                    f" neither fragmented nor answered with an ICMP: {hint}"))
    ok = measured == expected and pmtud != "black-hole"
    return MtuResult(direction=direction, family=6 if fam == socket.AF_INET6 else 4, src=src, dst=dst,
                     dst_addr=dst_addr, expected=expected, measured=measured, pmtud=pmtud, icmp_mtu=icmp_mtu,
                     large_nodf=large_nodf, ok=ok,
                     diagnosis=diagnose(direction, measured, expected, pmtud, hint))


def _pmtud(src_ns: str, dst_addr: str, port: int, size: int) -> tuple[Literal["works", "black-hole"], int | None]:
    """Send one DF datagram over the path MTU and wait for the ICMP error that PMTUD relies on."""
    # The sweep's own ICMPs filled the PMTU cache; forget them so this packet really leaves.
    flush_pmtu(src_ns)
    tx = _sender(src_ns, dst_addr, IP_PMTUDISC_DO)
    fam = tx.family
    try:
        try:
            tx.connect((dst_addr, port))
            tx.send(b"\0" * (size - _overhead(dst_addr)))
        except OSError:
            # EMSGSIZE: the kernel still knows a smaller PMTU, which only an ICMP could have taught it
            known = (tx.getsockopt(socket.IPPROTO_IP, 14) if fam == socket.AF_INET  # IP_MTU
                     else tx.getsockopt(socket.IPPROTO_IPV6, 24))  # IPV6_MTU
            return "works", known
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            err = read_icmp_error(tx, fam)
            if err is not None:
                return "works", err[1]
            time.sleep(0.02)
        return "black-hole", None
    finally:
        tx.close()


def diagnose(direction: Direction, measured: int, expected: int, pmtud: str, hint: str) -> str:
    """Name the likely misconfiguration, in the words used on a CNI call."""
    towards = "towards Cloudflare" if direction == "customer_to_cf" else "from Cloudflare to you"
    if pmtud == "black-hole":
        return (f"PMTUD is broken {towards}: packets above {measured} bytes vanish without an ICMP "
                "fragmentation-needed. Allow ICMP type 3 code 4 (ICMPv6 type 2) and clamp TCP MSS.")
    if measured == expected:
        return f"path MTU {measured} {towards}, as the profile requires"
    if measured > expected:
        why = hint or "an interface MTU is too large"
        return (f"path MTU {measured} {towards} is above the profile's {expected}: {why}; "
                f"Cloudflare fragments or drops packets above {expected}")
    return (f"path MTU {measured} {towards} is below the profile's {expected}: "
            f"{hint or 'an interface on the path has a smaller MTU than the profile expects'}")


def _hint(lab: LabHandle, ic: str, direction: Direction) -> str:
    """Look at the customer's tunnel interface for the classic mistake (GRE left at 1500)."""
    tun = next((t for t in lab.plan.tunnels if t.interconnect == ic), None)
    if tun is None:
        return ""
    name = tun.declared.name if tun.declared else tun.cust_ifname
    out = subprocess.run(["nsenter", f"--net={lab.netns_path(CUSTOMER)}", "ip", "-j", "link", "show", "dev",
                          name], capture_output=True, text=True)
    if out.returncode == 0:
        mtu = json.loads(out.stdout)[0].get("mtu")
        if mtu and mtu != tun.mtu:
            where = f" ({tun.declared.where})" if tun.declared else ""
            return (f"the customer GRE interface {name} has MTU {mtu}{where}; set it to {tun.mtu} "
                    f"(`ip link set {name} mtu {tun.mtu}`)")
    return ""


def probe_mtu(lab: LabHandle, link: str | None = None) -> MtuReport:
    """End to end (inet <-> origin) or over one interconnect (cf <-> cust), IPv4 and, where both
    ends have it, IPv6 (same IP MTU: the profile's figures are per direction, not per family)."""
    from cnilab.sim.dataplane.customer import tunnel_provenance

    plan = lab.plan
    results: list[MtuResult] = []
    if link is None:
        best_cf = max(plan.sessions, key=lambda s: s.priority).interconnect
        best_cu = max(plan.sessions, key=lambda s: s.local_pref).interconnect
        for fam in (4, 6):
            o, i = first_addr(plan, ORIGIN, fam), first_addr(plan, INTERNET, fam)
            if o is None or i is None:
                continue
            results.append(measure_direction(lab, "cf_to_customer", INTERNET, ORIGIN, o,
                                             plan.e2e_mtu(best_cf, "cf_to_customer"),
                                             _hint(lab, best_cf, "cf_to_customer")))
            results.append(measure_direction(lab, "customer_to_cf", ORIGIN, INTERNET, i,
                                             plan.e2e_mtu(best_cu, "customer_to_cf"),
                                             _hint(lab, best_cu, "customer_to_cf")))
    else:
        if not plan.sessions_for(link):
            raise ValueError(f"no interconnect named {link!r}; interconnects: "
                             f"{', '.join(sorted({s.interconnect for s in plan.sessions}))}")
        tun = next((t for t in plan.tunnels if t.interconnect == link), None)
        for sess in plan.sessions_for(link):
            gre_in = tun is not None and sess.cust_nexthop_via == "gre"
            to_cust = str(tun.cust_nexthop(sess.family)) if gre_in and tun else str(sess.cust_addr)
            # Over one link, Cloudflare->customer is plain IP unless the profile says GRE.
            exp_in = plan.path_mtu[link]["cf_to_customer"] if gre_in else 1500
            results.append(measure_direction(lab, "cf_to_customer", EDGE, CUSTOMER, to_cust, exp_in,
                                             _hint(lab, link, "cf_to_customer")))
            results.append(measure_direction(lab, "customer_to_cf", CUSTOMER, EDGE, str(sess.cf_nexthop),
                                             plan.path_mtu[link]["customer_to_cf"],
                                             _hint(lab, link, "customer_to_cf")))
    prov = tunnel_provenance(plan)
    return MtuReport(lab=lab.state.lab, link=link, results=results, ok=all(r.ok for r in results),
                     provenance=prov.text if prov else "")
