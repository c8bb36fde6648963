"""Failover measurement: pull a link under a live stream and time how traffic moves.

The numbers that matter on a call (how long traffic was lost, when the first packet took the new
path, which path carried it before and after) are compared with what the configuration implies:
the BFD detection time when BFD protects the session, otherwise the BGP hold time.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from sim.faults.apply import apply_fault, clear_faults
from sim.handle import LabHandle
from sim.probes.mtu import _first_v4
from sim.probes.traffic import PathSampler, UdpStream
from sim.topology.plan import EDGE, INTERNET, ORIGIN, TRANSIT


class Expected(BaseModel):
    mechanism: str
    detection_ms: int
    bfd_detection_ms: int | None
    hold_time_ms: int


class FailoverReport(BaseModel):
    lab: str
    link: str
    fault: str
    rate_pps: int
    path_before: str | None
    path_after: str | None
    moved: bool
    first_packet_new_path_ms: float | None
    loss_window_ms: float
    sent: int
    received: int
    lost: int
    reordered: int
    duplicates: int
    expected: Expected
    ratio_to_expected: float | None
    timeline: list[dict]
    ok: bool
    summary: str


def expected_for(lab: LabHandle, link: str, fault: str) -> Expected:
    sess = next(s for s in lab.plan.sessions if s.interconnect == link)
    bfd_ms = sess.detection_ms
    hold_ms = sess.hold_time * 1000
    if fault in ("down", "swap", "light"):
        return Expected(mechanism="carrier loss (interface down)", detection_ms=bfd_ms or hold_ms,
                        bfd_detection_ms=bfd_ms, hold_time_ms=hold_ms)
    if bfd_ms is not None:
        return Expected(mechanism="BFD detection", detection_ms=bfd_ms, bfd_detection_ms=bfd_ms, hold_time_ms=hold_ms)
    return Expected(mechanism="BGP hold timer", detection_ms=hold_ms, bfd_detection_ms=None, hold_time_ms=hold_ms)


def path_ifaces(lab: LabHandle) -> dict[str, str]:
    """Edge interfaces that lead to the customer: each interconnect, and the transit backup."""
    plan = lab.plan
    out = {lk.a.iface if lk.a.node == EDGE else lk.b.iface: lk.name
           for lk in plan.links if lk.role == "interconnect"}
    if any(n.name == TRANSIT for n in plan.nodes):
        out["transit0"] = "internet-backup"
    return out


def measure_failover(lab: LabHandle, link: str, fault: str = "blackhole", rate_pps: int = 200,
                     settle_s: float = 1.0, timeout_s: float | None = None, restore: bool = True) -> FailoverReport:
    """Stream inet -> origin, fault ``link`` and watch the edge's counters until traffic moves."""
    if not any(lk.name == link and lk.role == "interconnect" for lk in lab.plan.links):
        names = [lk.name for lk in lab.plan.links if lk.role == "interconnect"]
        raise ValueError(f"{link!r} is not an interconnect; choose one of {', '.join(names)}")
    exp = expected_for(lab, link, fault)
    timeout_s = timeout_s or exp.detection_ms / 1000 * 2 + 6
    min_pkts = max(1, int(rate_pps * 0.01 * 0.5))
    share = 0.5  # a path "carries the stream" when it moves at least half of the packets sent
    stream = UdpStream(lab.netns_path(INTERNET), lab.netns_path(ORIGIN), _first_v4(lab.plan, ORIGIN), rate_pps)
    sampler = PathSampler(lab.netns_path(EDGE), path_ifaces(lab), period=0.01, min_pkts=min_pkts)
    with sampler, stream:
        # Wait until the stream arrives steadily on one path.
        deadline = time.monotonic() + 15
        before = None
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = time.monotonic()
            if stream.received_since(now - settle_s) >= rate_pps * settle_s * 0.9:
                before = sampler.path_at(now - settle_s, now, int(share * rate_pps * settle_s))
                if before:
                    break
        t0 = time.monotonic()
        apply_fault(lab, link, fault)
        after, t_first = None, None
        try:
            while time.monotonic() < t0 + timeout_s:
                time.sleep(0.1)
                now = time.monotonic()
                cur = sampler.path_at(now - 0.3, now, int(share * rate_pps * 0.3))
                if cur and cur != before:
                    t_first = sampler.first_on(cur, t0, 0.1, max(1, int(share * rate_pps * 0.1)))
                    after = cur
                    if now - (t_first or now) >= settle_s:
                        break
        finally:
            if restore:
                clear_faults(lab, link, kind=fault)
        time.sleep(0.2)
    st = stream.stats()
    window = st.max_gap_ms if st.gap_start and st.gap_start >= t0 - 0.05 else 0.0
    first_ms = round((t_first - t0) * 1000, 1) if t_first else None
    timeline = [{"t_ms": round((s.t - t0) * 1000, 1), "path": s.path, **s.deltas}
                for s in sampler.samples[::5] if -settle_s <= s.t - t0 <= timeout_s]
    moved = after is not None and after != before
    ratio = round(first_ms / exp.detection_ms, 2) if first_ms and exp.detection_ms else None
    summary = (f"traffic moved {before} -> {after} {first_ms} ms after the fault; lost {st.lost} packets "
               f"({window:.0f} ms); {exp.mechanism} predicts ~{exp.detection_ms} ms")
    if not moved:
        summary = (f"traffic did not move off {before} within {timeout_s:.0f} s "
                   f"({exp.mechanism} predicts {exp.detection_ms} ms)")
    return FailoverReport(lab=lab.state.lab, link=link, fault=fault, rate_pps=rate_pps, path_before=before,
                          path_after=after, moved=moved, first_packet_new_path_ms=first_ms, loss_window_ms=window,
                          sent=st.sent, received=st.received, lost=st.lost, reordered=st.reordered,
                          duplicates=st.duplicates, expected=exp, ratio_to_expected=ratio, timeline=timeline,
                          ok=moved, summary=summary)
