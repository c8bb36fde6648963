"""The emulator as a scenario executor: the same timeline, run against a real lab.

It builds the lab from the scenario's plan, watches it through a :class:`~cnilab.sim.observe.observer.LabObserver`
(the edge driver, the customer router and the kernel's routing decisions), and turns what it saw into the same
:class:`~cnilab.sim.report.model.Series` the simulator produces, so ``cnilab compare`` can put a prediction
next to a measurement. Faults, traffic and probes are the lab's own (cnilab.sim.faults, cnilab.sim.probes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from cnilab.sim.faults.apply import FaultError, apply_fault, clear_faults
from cnilab.sim.handle import LabHandle
from cnilab.sim.observe.observer import LabObserver
from cnilab.sim.observe.paths import path_sampler
from cnilab.sim.probes.mss import probe_mss
from cnilab.sim.probes.mtu import _first_v4
from cnilab.sim.probes.traffic import PathSampler, UdpStream
from cnilab.sim.report.model import LossBin, ProbeResult, Series, TrafficStats
from cnilab.sim.scenario.executor import ExecutorUnavailable, MaintenanceOp, Side
from cnilab.sim.topology.plan import EDGE, INTERNET, ORIGIN

FRESH_S = 0.02
"""How old a reading may be when a step asks for a state (the edge answers in about a millisecond)."""


class EmuExecutor:
    """Executor over a running lab (see sim/scenario/executor.py); it reads the lab through one
    :class:`~cnilab.sim.observe.observer.LabObserver`, whose transitions are the measured series."""

    name = "emu"

    def __init__(self, lab: LabHandle) -> None:
        self.lab = lab
        self.plan = lab.plan
        self.observer = LabObserver(lab).start()
        self.t0 = self.observer.t0
        self._stream: UdpStream | None = None
        self._sampler: PathSampler | None = None
        self._traffic_meta: dict[str, Any] = {}
        self._final = TrafficStats()

    # -- observation ------------------------------------------------------------------------------
    def now(self) -> float:
        return self.observer.now()

    @property
    def slack(self) -> float:
        return self.observer.slack

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> float | None:
        return self.observer.wait(until or (lambda: False), deadline)

    def session_state(self, key: str, side: Side) -> str:
        return self.observer.session_state(key, side, FRESH_S)

    def bfd_state(self, key: str, side: Side) -> str | None:
        sess = next((s for s in self.plan.sessions if s.key == key), None)
        if sess is None or not sess.bfd:
            return None
        return self.observer.bfd_state(key, FRESH_S)

    def best_path(self, side: Side) -> str | None:
        return self.observer.best_path(side, FRESH_S)

    # -- traffic ----------------------------------------------------------------------------------
    def start_traffic(self, src: str, dst: str, rate_pps: float) -> None:
        self.stop_traffic()
        self._stream = UdpStream(self.lab.netns_path(src), self.lab.netns_path(dst), _first_v4(self.plan, dst),
                                 int(rate_pps)).__enter__()
        side = "cf" if src == INTERNET else "customer"
        # 50 ms samples: a path must carry half the packets due in a sample, so a BGP keepalive or a
        # neighbour solicitation on another interface is never mistaken for the stream.
        self._sampler = path_sampler(self.lab, side, 0.05, max(2, int(rate_pps * 0.05 * 0.5))).__enter__()
        self._traffic_meta = {"src": src, "dst": dst, "rate": rate_pps, "t_start": time.monotonic()}

    def stop_traffic(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        if self._sampler is not None:
            self._sampler.__exit__(None, None, None)
            self._final = self._stats()
        self._stream = None

    def _stats(self) -> TrafficStats:
        stream, sampler, meta = self._stream, self._sampler, self._traffic_meta
        if stream is None or sampler is None:
            return self._final
        st = stream.stats()
        samples = list(sampler.samples)
        last = next((s.path for s in reversed(samples) if s.path), None)
        first_on: dict[str, float] = {}
        for s in samples:
            if s.path and s.path not in first_on:
                first_on[s.path] = round(s.t - self.t0, 3)
        label = {"internet-backup": "transit"}
        return TrafficStats(running=True, src=meta["src"], dst=meta["dst"], rate_pps=meta["rate"], sent=st.sent,
                            delivered=st.received, lost=st.lost, last_path=label.get(last, last),
                            first_on={label.get(k, k): v for k, v in first_on.items()},
                            loss_window_s=round(st.max_gap_ms / 1000 if st.lost else 0.0, 3))

    def traffic(self) -> TrafficStats:
        return self._stats()

    # -- actions ----------------------------------------------------------------------------------
    def fault(self, link: str, kind: str, value: float | str | None) -> None:
        try:
            rec = apply_fault(self.lab, link, kind, value)
        except FaultError as exc:
            raise ValueError(str(exc)) from exc
        self.observer.note("link", link, kind, rec.mechanism)

    def clear(self, link: str | None) -> None:
        clear_faults(self.lab, link)
        self.observer.note("link", link or "all", "clear")

    def maintenance(self, link: str, op: MaintenanceOp) -> None:
        from cnilab.sim.routers import router_for

        router = router_for(self.lab)
        if router is None:
            raise ValueError("maintenance steps need the customer router in the lab (kind external has none)")
        try:
            router.maintenance(op, [s for s in self.plan.sessions if s.interconnect == link])
        except NotImplementedError as exc:
            raise ValueError(str(exc)) from None
        self.observer.note("link", link, f"maintenance {op}")

    def mss_probe(self) -> ProbeResult:
        r = probe_mss(self.lab)
        return ProbeResult(passed=r.ok, detail="; ".join([*(f"{x.direction}: {x.advice}" for x in r.results),
                                                          f"config under test: {r.provenance}"]))

    def series(self) -> Series:
        transitions = self.observer.transitions()
        bins: list[LossBin] = []
        stream, sampler = self._stream, self._sampler
        if stream is not None and sampler is not None:
            arr = list(stream.arrivals)
            rate = self._traffic_meta["rate"]
            start = self._traffic_meta["t_start"]
            end = arr[-1][1] if arr else start
            t = start
            while t < end:
                got = sum(1 for _, at in arr if t <= at < t + 1.0)
                by: dict[str, int] = {}
                for s in sampler.samples:
                    if t <= s.t < t + 1.0:
                        for k, v in s.deltas.items():
                            by[k] = by.get(k, 0) + v
                bins.append(LossBin(t=round(t - self.t0, 3), sent=int(rate), lost=max(0, int(rate) - got),
                                    by_path={k: v for k, v in by.items() if v}))
                t += 1.0
        return Series(duration=round(self.now(), 3), transitions=transitions, bin_s=1.0, bins=bins)

    @property
    def notes(self) -> list[str]:
        """Nothing to add: a real lab runs every step it is given, or the step fails saying why."""
        return []

    def close(self) -> None:
        self.observer.close()
        self.stop_traffic()


@contextlib.contextmanager
def open_executor(loaded: Any, seed: int) -> Iterator[EmuExecutor]:
    """Build the scenario's lab, yield the executor, always tear the lab down (``seed`` is unused:
    a real lab's randomness is the kernel's)."""
    if os.geteuid() != 0:
        raise ExecutorUnavailable("the emulator needs root (network namespaces); run `cnilab sim` for a prediction")
    missing = [b for b in ("nsenter", "ip", "nft") if shutil.which(b) is None]
    if missing:
        raise ExecutorUnavailable(f"the emulator needs {', '.join(missing)}; run `make setup`")
    from cnilab.sim.lab.lab import Lab

    plan = loaded.plan.model_copy(update={"lab": f"emu-{uuid.uuid4().hex[:6]}"})
    with Lab.create(plan, topology_path=str(loaded.path)) as lab:
        _converge(lab)
        ex = EmuExecutor(lab)
        try:
            yield ex
        finally:
            ex.close()


def _converge(lab: LabHandle, timeout: float = 45.0) -> None:
    """Start the scenario clock on a converged lab: sessions Established *and* the customer's
    prefixes accepted and installed at the edge (the simulator exchanges routes the instant a
    session establishes; a real edge takes a moment more, which is not what a scenario measures).
    Sessions a scenario override keeps down (e.g. a wrong MD5 key) are given up on after the
    timeout, and the scenario's own expectations then report them."""
    from cnilab.sim.checks import wait_bgp_up
    from cnilab.sim.edge.control import ControlError, EdgeClient
    from cnilab.sim.testing import WaitTimeout, wait_for

    edge = EdgeClient(lab.state.control["edge"])
    edge.wait(30)
    with contextlib.suppress(ControlError, WaitTimeout):
        wait_bgp_up(edge, lab.plan, timeout)
        origin = _first_v4(lab.plan, ORIGIN)
        wait_for(lambda: "proto bgp" in lab.run(EDGE, ["ip", "route", "show", "match", origin],
                                                check=False).stdout, 10, 0.1, what="edge route to the origin")
