"""Failover measurement: pull a link under a live stream and time how traffic moves.

The numbers that matter on a call (how long traffic was lost, when the first packet took the new
path, which path carried it before and after) are compared with what the configuration implies:
the BFD detection time when BFD protects the session, otherwise the BGP hold time.
"""

from __future__ import annotations

import contextlib
import time
from typing import Literal

from cnilab.sim.faults.apply import apply_fault, clear_faults
from cnilab.sim.handle import LabHandle
from cnilab.sim.observe.paths import path_sampler
from cnilab.sim.probes.mtu import _first_v4
from cnilab.sim.probes.traffic import PathSampler, UdpStream
from cnilab.sim.topology.plan import INTERNET, ORIGIN
from pydantic import BaseModel, Field


class Expected(BaseModel):
    mechanism: str
    detection_ms: int
    bfd_detection_ms: int | None
    hold_time_ms: int


class Switchover(BaseModel):
    """What one stream saw across the fault: the path before and after, when the first packet took
    the new one, and what was lost on the way."""

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
    ratio_to_expected: float | None
    ok: bool
    summary: str


class DirectionResult(Switchover):
    """One direction of the switchover: Cloudflare->customer is the edge's decision (its BFD and
    route preference), customer->Cloudflare is the customer router's own (its BFD, local-pref)."""

    direction: Literal["cf_to_customer", "customer_to_cf"]
    stream: str = Field(description="src -> dst of the UDP stream")
    observed_at: str = Field(description="Where the path was read: the edge's or the customer's interfaces")
    exercised: bool = Field(True, description="The stream crossed the failed link before the fault; False when "
                                              "this direction used another path, so the fault did not test it")


class FailoverReport(Switchover):
    """The Cloudflare->customer direction's figures at the top level (what the CLI shows first),
    both directions in ``directions``."""

    lab: str
    link: str
    fault: str
    rate_pps: int
    expected: Expected
    timeline: list[dict]
    directions: list[DirectionResult] = Field(default_factory=list,
                                              description="Both directions; the fields above are cf_to_customer's")


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


class _Watch:
    """One direction under watch: its stream, its path sampler and what it saw."""

    def __init__(self, direction: str, src: str, dst: str, at: str, stream: UdpStream, sampler: PathSampler) -> None:
        self.direction, self.src, self.dst, self.at = direction, src, dst, at
        self.stream, self.sampler = stream, sampler
        self.before: str | None = None
        self.after: str | None = None
        self.t_first: float | None = None
        self.settled = False
        self.exercised = True


def measure_failover(lab: LabHandle, link: str, fault: str = "blackhole", rate_pps: int = 200,
                     settle_s: float = 1.0, timeout_s: float | None = None, restore: bool = True) -> FailoverReport:
    """Stream inet -> origin and origin -> inet, fault ``link`` and watch, on the edge and on the
    customer router, until traffic moves in both directions."""
    if not any(lk.name == link and lk.role == "interconnect" for lk in lab.plan.links):
        names = [lk.name for lk in lab.plan.links if lk.role == "interconnect"]
        raise ValueError(f"{link!r} is not an interconnect; choose one of {', '.join(names)}")
    exp = expected_for(lab, link, fault)
    timeout_s = timeout_s or exp.detection_ms / 1000 * 2 + 6
    min_pkts = max(1, int(rate_pps * 0.01 * 0.5))
    share = 0.5  # a path "carries the stream" when it moves at least half of the packets sent
    plan = lab.plan
    watches = [
        _Watch("cf_to_customer", INTERNET, ORIGIN, "edge",
               UdpStream(lab.netns_path(INTERNET), lab.netns_path(ORIGIN), _first_v4(plan, ORIGIN), rate_pps),
               path_sampler(lab, "cf", 0.01, min_pkts)),
        _Watch("customer_to_cf", ORIGIN, INTERNET, "customer router",
               UdpStream(lab.netns_path(ORIGIN), lab.netns_path(INTERNET), _first_v4(plan, INTERNET), rate_pps),
               path_sampler(lab, "customer", 0.01, min_pkts)),
    ]
    with contextlib.ExitStack() as stack:
        for w in watches:
            stack.enter_context(w.sampler)
            stack.enter_context(w.stream)
        # Wait until both streams arrive steadily, each on one path.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(w.before for w in watches):
            time.sleep(0.25)
            now = time.monotonic()
            for w in watches:
                if w.before is None and w.stream.received_since(now - settle_s) >= rate_pps * settle_s * 0.9:
                    w.before = w.sampler.path_at(now - settle_s, now, int(share * rate_pps * settle_s))
        for w in watches:  # a direction that was not on the failed link has nothing to move
            w.exercised = w.before is None or w.before == link
        t0 = time.monotonic()
        apply_fault(lab, link, fault)
        try:
            while time.monotonic() < t0 + timeout_s and not all(w.settled or not w.exercised for w in watches):
                time.sleep(0.1)
                now = time.monotonic()
                for w in watches:
                    if w.settled or not w.exercised:
                        continue
                    cur = w.sampler.path_at(now - 0.3, now, int(share * rate_pps * 0.3))
                    if cur and cur != w.before:
                        w.t_first = w.sampler.first_on(cur, t0, 0.1, max(1, int(share * rate_pps * 0.1)))
                        w.after = cur
                        w.settled = now - (w.t_first or now) >= settle_s
        finally:
            if restore:
                clear_faults(lab, link, kind=fault)
        time.sleep(0.2)
    results = [_result(w, t0, exp) for w in watches]
    main, back = results
    w0 = watches[0]
    timeline = [{"t_ms": round((s.t - t0) * 1000, 1), "path": s.path, **s.deltas}
                for s in w0.sampler.samples[::5] if -settle_s <= s.t - t0 <= timeout_s]
    summary = f"Cloudflare->customer: {main.summary}; customer->Cloudflare (your router): {back.summary}"
    top = main.model_dump(include=set(Switchover.model_fields)) | {"ok": all(r.ok for r in results),
                                                                    "summary": summary}
    return FailoverReport(**top, lab=lab.state.lab, link=link, fault=fault, rate_pps=rate_pps, expected=exp,
                          timeline=timeline, directions=results)


def _result(w: _Watch, t0: float, exp: Expected) -> DirectionResult:
    st = w.stream.stats()
    lost, window = w.stream.loss_since(t0)
    first_ms = round((w.t_first - t0) * 1000, 1) if w.t_first else None
    moved = w.after is not None and w.after != w.before
    ratio = round(first_ms / exp.detection_ms, 2) if first_ms and exp.detection_ms else None
    ok = moved
    if not w.exercised:
        ok = lost <= max(2, st.sent // 100)  # another path: it must simply keep flowing
        summary = (f"not on the failed link: stayed on {w.before}, lost {lost} packets (this fault does not "
                   "exercise this direction)")
    elif moved:
        summary = (f"moved {w.before} -> {w.after} {first_ms} ms after the fault; lost {lost} packets "
                   f"({window:.0f} ms); {exp.mechanism} predicts ~{exp.detection_ms} ms")
    elif w.before is None:
        summary = "no steady stream before the fault: nothing to measure"
    else:
        summary = f"did not move off {w.before} ({exp.mechanism} predicts {exp.detection_ms} ms)"
    return DirectionResult(direction=w.direction, stream=f"{w.src} -> {w.dst}", observed_at=w.at,  # type: ignore[arg-type]
                           path_before=w.before, path_after=w.after, moved=moved, first_packet_new_path_ms=first_ms,
                           loss_window_ms=window, sent=st.sent, received=st.received, lost=lost,
                           reordered=st.reordered, duplicates=st.duplicates, ratio_to_expected=ratio,
                           exercised=w.exercised, ok=ok, summary=summary)
