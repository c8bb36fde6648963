"""Cloudflare-side maintenance with GRACEFUL_SHUTDOWN, measured with a live stream.

What Cloudflare does before maintenance on one interconnect (the seeds' "CNI Connection Maintenance
Alert"): tag every route it sends there with GRACEFUL_SHUTDOWN 65535:0 (RFC 8326), wait, then take
the link down. A customer that honours the community (local-pref 0 on those routes) has moved its
traffic to another interconnect by then and loses nothing; one that ignores it loses traffic until
BFD (or the hold timer) notices the dead link. The drill measures exactly that, with a sequenced UDP
stream origin -> internet host, and names the config line that is missing when loss is not zero.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.faults.apply import apply_fault, clear_faults
from cnilab.sim.handle import LabHandle
from cnilab.sim.probes.mtu import _first_v4
from cnilab.sim.probes.traffic import UdpStream
from cnilab.sim.topology.plan import CUSTOMER, INTERNET, ORIGIN
from pydantic import BaseModel

DEFAULT_WAIT_S = 5.0
"""How long the lab's maintenance waits between tagging and pulling the link. Real maintenances wait
minutes; the lab's edge re-announces within one ExaBGP reload (< 1 s) and the customer re-runs its
best path at once, so 5 s is several times the physics on a loaded 2-core machine."""
POLL_S = 0.05

FIX = {
    "bird": "in the import filter of every Cloudflare session, before accept:\n"
            "  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;",
    "frr": "FRR sets local-pref 0 on eBGP routes carrying 65535:0 by itself; what defeats it is an inbound "
           "`set weight` (weight is compared before local-pref) or a static route toward Cloudflare. Match the "
           "community first:\n"
           "bgp community-list standard GSHUT seq 5 permit 65535:0\n"
           "route-map FROM-CLOUDFLARE permit 5\n match community GSHUT\n set weight 0\n set local-preference 0",
}
"""The missing line, per customer router kind (FRR's ``bgp graceful-shutdown`` is something else: it
tags what *you* send during *your* maintenance)."""


class GshutReport(BaseModel):
    lab: str
    interconnect: str
    rate_pps: int
    wait_s: float
    path_before: str | None
    path_after_tag: str | None
    moved_after_s: float | None
    detection_ms: int
    sent: int
    lost: int
    loss_ms: float
    honoured: bool
    summary: str
    fix: dict[str, str]


def _path_map(lab: LabHandle) -> dict[str, str]:
    """Customer kernel device -> interconnect (GRE tunnel or the link itself)."""
    out = {}
    for s in lab.plan.sessions:
        out[lab.ifname(CUSTOMER, s.cust_iface)] = s.interconnect
    for t in lab.plan.tunnels:
        out[t.cust_ifname] = t.interconnect
    return out


def customer_path(lab: LabHandle, dst: str, devmap: dict[str, str]) -> str | None:
    """The interconnect (or other device) the customer's kernel forwards ``dst`` over right now."""
    r = lab.run(CUSTOMER, ["ip", "-j", "route", "get", dst], check=False)
    try:
        dev = json.loads(r.stdout or "[]")[0].get("dev")
    except (ValueError, IndexError):
        return None
    return devmap.get(dev, dev)


def gshut_drill(lab: LabHandle, interconnect: str | None = None, wait_s: float = DEFAULT_WAIT_S,
                rate_pps: int = 200, pull: Literal["blackhole", "withdraw"] = "blackhole",
                tag: bool = True) -> GshutReport:
    """Tag, wait, pull the link under a stream; always untag and restore the link.

    ``pull``: ``blackhole`` (the device goes dark: found by BFD/hold timer) or ``withdraw`` (the
    PoP's sessions are shut: every route on the link withdrawn at once, a mass withdrawal).
    ``tag=False`` skips the GRACEFUL_SHUTDOWN announcement (an unannounced maintenance)."""
    edge = EdgeClient(lab.state.control["edge"])
    dst = _first_v4(lab.plan, INTERNET)
    devmap = _path_map(lab)
    before = customer_path(lab, dst, devmap)
    ic = interconnect or before
    if ic not in {s.interconnect for s in lab.plan.sessions}:
        raise ValueError(f"interconnect {ic!r}: the customer's traffic to {dst} uses {before!r}, not an interconnect")
    if len({s.interconnect for s in lab.plan.sessions}) < 2:
        raise ValueError("a GRACEFUL_SHUTDOWN drill needs a second interconnect to move traffic to "
                         "(e.g. topologies/ha-three-site.yml)")
    sess = next(s for s in lab.plan.sessions if s.interconnect == ic)
    detect_ms = sess.bfd_multiplier * max(sess.bfd_tx_ms, sess.bfd_rx_ms) if sess.bfd else sess.hold_time * 1000
    moved = after = None
    t_tag = 0.0
    try:
        with UdpStream(lab.netns_path(ORIGIN), lab.netns_path(INTERNET), dst, rate_pps) as stream:
            deadline = time.monotonic() + 5
            while stream.received_since(0) == 0 and time.monotonic() < deadline:
                time.sleep(POLL_S)
            t_tag = time.monotonic()
            if tag:
                edge.gshut(ic, True)
            while time.monotonic() - t_tag < wait_s:
                after = customer_path(lab, dst, devmap)
                if moved is None and after != ic:
                    moved = time.monotonic() - t_tag
                time.sleep(POLL_S)
            if pull == "blackhole":
                apply_fault(lab, ic, "blackhole")
            else:
                edge.teardown(ic, subcode=2)
            t_down = time.monotonic()
            while time.monotonic() - t_down < detect_ms / 1000 * 2 + 1:
                if customer_path(lab, dst, devmap) != ic and time.monotonic() - t_down > 0.5:
                    break
                time.sleep(POLL_S)
            time.sleep(0.5)
        st = stream.stats()
    finally:
        if pull == "blackhole":
            clear_faults(lab, ic, kind="blackhole")
        if tag:
            edge.gshut(ic, False)
    honoured = moved is not None and after != ic and st.lost == 0
    loss_ms = round(st.lost * 1000 / rate_pps, 1)
    if honoured:
        gone = "the link went down" if pull == "blackhole" else "its routes were withdrawn"
        summary = (f"GRACEFUL_SHUTDOWN on {ic} honoured: traffic moved to {after} {moved * 1000:.0f} ms after the "
                   f"tag, before {gone}; {st.lost} of {st.sent} packets lost")
    elif moved is None:
        summary = ignored_summary(ic, wait_s, st.lost, loss_ms, rate_pps, pull, detect_ms)
    else:
        summary = (f"traffic left {ic} {moved * 1000:.0f} ms after the tag but {st.lost} packets were lost "
                   f"(~{loss_ms:.0f} ms)")
    return GshutReport(lab=lab.name, interconnect=ic, rate_pps=rate_pps, wait_s=wait_s, path_before=before,
                       path_after_tag=after, moved_after_s=round(moved, 3) if moved is not None else None,
                       detection_ms=detect_ms, sent=st.sent, lost=st.lost, loss_ms=loss_ms, honoured=honoured,
                       summary=summary, fix={} if honoured else fix_for(lab.plan.customer_router.kind))


def ignored_summary(ic: str, wait_s: float, lost: int, loss_ms: float, rate_pps: int, pull: str,
                    detect_ms: int) -> str:
    """The verdict's sentence when the customer kept its traffic on a tagged link (emulator and simulator)."""
    went = "went down (detection" if pull == "blackhole" else "was withdrawn (mass withdrawal,"
    return (f"GRACEFUL_SHUTDOWN on {ic} ignored: traffic stayed on {ic} for the {wait_s:.0f} s the maintenance "
            f"waited, then {lost} packets (~{loss_ms:.0f} ms at {rate_pps} pps) were lost when the link "
            f"{went} {detect_ms} ms)")


def fix_for(kind: str) -> dict[str, str]:
    return {kind: FIX[kind]} if kind in FIX else dict(FIX)
