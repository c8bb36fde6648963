"""The emulator as a scenario executor: the same timeline, run against a real lab.

It builds the lab from the scenario's plan, polls the edge driver, the customer router and the
kernel's routing decisions in a background thread, and turns what it saw into the same
:class:`~sim.report.model.Series` the simulator produces, so ``cnilab compare`` can put a prediction
next to a measurement. Faults, traffic and probes are the lab's own (sim.faults, sim.probes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sim.faults.apply import FaultError, apply_fault, clear_faults
from sim.handle import LabHandle
from sim.probes.failover import path_ifaces
from sim.probes.mss import probe_mss
from sim.probes.mtu import _first_v4
from sim.probes.traffic import PathSampler, UdpStream
from sim.report.model import LossBin, ProbeResult, Series, TrafficStats, Transition
from sim.scenario.executor import ExecutorUnavailable, MaintenanceOp, Side
from sim.topology.plan import CUSTOMER, EDGE, INTERNET, ORIGIN

POLL_S = 0.05
CUSTOMER_POLL_S = 0.25
FRESH_S = 0.02
"""How old a reading may be when a step asks for a state (the edge answers in about a millisecond)."""
SLACK_FLOOR_S = 0.25
"""Part of the emulator's slack no measurement shows: daemons (BFD, ExaBGP, FRR) and the kernel run
on the same loaded host as the observer, and a route change takes a moment to reach the FIB."""
LATENCY_WINDOW = 40
"""Polls over which the observation latency is measured (about 2 s): the slack follows the load."""


class RouteReader:
    """``ip route get`` in-process: one netlink socket per node, opened once and reused.

    The poller asks both routers where they send traffic every 50 ms; forking ``ip`` twice per
    poll was itself a large part of the observation latency on a loaded 2-core host."""

    def __init__(self, netns_paths: dict[str, str]) -> None:
        from pyroute2 import IPRoute

        self._ipr: dict[str, Any] = {}
        self._names: dict[str, dict[int, str]] = {}
        try:
            for node, path in netns_paths.items():
                self._ipr[node] = IPRoute(netns=path, flags=0)  # flags=0: never create a namespace
                self._names[node] = {}
        except Exception:
            self.close()
            raise

    def dev(self, node: str, dst: str) -> str | None:
        ipr = self._ipr[node]
        try:
            oif = ipr.route("get", dst=dst)[0].get("RTA_OIF")
        except Exception:  # no route (unreachable) or the namespace is going away
            return None
        if oif is None:
            return None
        names = self._names[node]
        if oif not in names:
            with contextlib.suppress(Exception):
                names.clear()
                names.update({lk["index"]: lk.get("IFLA_IFNAME") for lk in ipr.get_links()})
        return names.get(oif)

    def close(self) -> None:
        for ipr in self._ipr.values():
            with contextlib.suppress(Exception):
                ipr.close()
        self._ipr.clear()


class EmuExecutor:
    """Executor over a running :class:`sim.lab.lab.Lab` (see sim/scenario/executor.py)."""

    name = "emu"

    def __init__(self, lab: LabHandle) -> None:
        from sim.edge.control import EdgeClient

        self.lab = lab
        self.plan = lab.plan
        self.edge = EdgeClient(lab.state.control["edge"], timeout=5)
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._cf_sessions: dict[str, str] = {}
        self._cf_bfd: dict[str, str] = {}
        self._cust_sessions: dict[str, str] = {}
        self._paths: dict[str, str | None] = {}
        self._transitions: list[Transition] = []
        self._stream: UdpStream | None = None
        self._sampler: PathSampler | None = None
        self._traffic_meta: dict[str, Any] = {}
        self._stop = threading.Event()
        self._iface_label = {**path_ifaces(lab), **{t.cf_ifname: t.interconnect for t in self.plan.tunnels}}
        self._poll_lock = threading.Lock()
        self._last_poll = 0.0
        self._routes = RouteReader({node: lab.netns_path(node) for node in (EDGE, CUSTOMER)})
        self._latency: list[float] = []  # seconds per poll, incl. how late the poller woke
        self._poll_once(force_customer=True)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    # -- observation ------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def _note(self, kind: str, subject: str, state: str, reason: str = "") -> None:
        self._transitions.append(Transition(t=round(self.now(), 3), kind=kind, subject=subject, state=state,
                                            reason=reason))

    def _route_dev(self, node: str, dst: str) -> str | None:
        return self._routes.dev(node, dst)

    @property
    def slack(self) -> float:
        """Declared slack (s): a floor, two poll periods (a change lands just after a poll and is
        confirmed by the next), and the worst observation latency measured over the last ~2 s
        (time a poll took plus how late the poller woke), so the slack follows the host's load."""
        with self._lock:
            worst = max(self._latency, default=0.0)
        return round(SLACK_FLOOR_S + 2 * POLL_S + worst, 3)

    def _measure(self, seconds: float) -> None:
        with self._lock:
            self._latency.append(seconds)
            del self._latency[:-LATENCY_WINDOW]

    def _label(self, dev: str | None) -> str | None:
        if dev is None:
            return None
        if dev.startswith("transit"):
            return "transit"
        base = dev.split(".")[0].removeprefix("gre-")
        return base if any(s.interconnect == base for s in self.plan.sessions) else self._iface_label.get(dev, dev)

    def _poll_once(self, force_customer: bool = False) -> None:
        from sim.edge.control import ControlError

        try:
            sessions = {s.key: s.state for s in self.edge.sessions()}
            bfd = {b["peer"]: b["state"] for b in self.edge.bfd()}
        except ControlError:
            sessions, bfd = {}, {}
        paths = {"cf": self._label(self._route_dev(EDGE, _first_v4(self.plan, ORIGIN))),
                 "customer": self._label(self._route_dev(CUSTOMER, _first_v4(self.plan, INTERNET)))}
        cust = None
        if force_customer or int(self.now() / CUSTOMER_POLL_S) != int((self.now() - POLL_S) / CUSTOMER_POLL_S):
            cust = self._customer_sessions()
        with self._lock:
            for k, v in sessions.items():
                if self._cf_sessions.get(k) != v:
                    self._note("session", f"{k} cf", v)
            self._cf_sessions = sessions
            for s in self.plan.sessions:
                st = bfd.get(str(s.cust_addr))
                if st is not None and self._cf_bfd.get(s.key) != st:
                    self._note("bfd", f"{s.key} cf", st)
                    self._cf_bfd[s.key] = st
            for side, p in paths.items():
                if self._paths.get(side, "unset") != p:
                    self._note("route", side, p or "none")
                    self._paths[side] = p
            if cust is not None:
                for k, v in cust.items():
                    if self._cust_sessions.get(k) != v:
                        self._note("session", f"{k} customer", v)
                self._cust_sessions = cust

    def _customer_sessions(self) -> dict[str, str]:
        from sim.routers import customer_bgp

        try:
            return {n["session"]: _fsm(n.get("state")) for n in customer_bgp(self.lab) if n.get("session")}
        except Exception:  # the customer router may be restarting; keep the last view
            return dict(self._cust_sessions)

    def _refresh(self, max_age: float) -> None:
        """Re-read the lab unless the last reading is younger than ``max_age``: an ``expect ... now``
        must see the state at that moment, not the background poller's last sample (traffic seen
        on the new path while the session still reads Established would be a false failure)."""
        with self._poll_lock:
            if time.monotonic() - self._last_poll >= max_age:
                self._poll_once()
                self._last_poll = time.monotonic()

    def _poll(self) -> None:
        due = time.monotonic() + POLL_S
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            with contextlib.suppress(Exception):
                self._refresh(POLL_S / 2)
            end = time.monotonic()
            self._measure(end - due)  # lateness of the wake-up + duration of the poll
            due = max(due + POLL_S, end)

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> float | None:
        while True:
            if until is not None and until():
                return self.now()
            if self.now() >= deadline:
                return None
            time.sleep(min(POLL_S, max(0.0, deadline - self.now())))

    def session_state(self, key: str, side: Side) -> str:
        self._refresh(FRESH_S)
        with self._lock:
            table = self._cf_sessions if side == "cf" else self._cust_sessions
            return table.get(key, "Idle")

    def bfd_state(self, key: str, side: Side) -> str | None:
        sess = next((s for s in self.plan.sessions if s.key == key), None)
        if sess is None or not sess.bfd:
            return None
        self._refresh(FRESH_S)
        with self._lock:
            return self._cf_bfd.get(key, "Down")

    def best_path(self, side: Side) -> str | None:
        self._refresh(FRESH_S)
        with self._lock:
            return self._paths.get(side)

    # -- traffic ----------------------------------------------------------------------------------
    def start_traffic(self, src: str, dst: str, rate_pps: float) -> None:
        self.stop_traffic()
        self._stream = UdpStream(self.lab.netns_path(src), self.lab.netns_path(dst), _first_v4(self.plan, dst),
                                 int(rate_pps)).__enter__()
        watch = EDGE if src == INTERNET else CUSTOMER
        ifaces = path_ifaces(self.lab) if watch == EDGE else self._customer_ifaces()
        # 50 ms samples: a path must carry half the packets due in a sample, so a BGP keepalive or a
        # neighbour solicitation on another interface is never mistaken for the stream.
        self._sampler = PathSampler(self.lab.netns_path(watch), ifaces, period=0.05,
                                    min_pkts=max(2, int(rate_pps * 0.05 * 0.5))).__enter__()
        self._traffic_meta = {"src": src, "dst": dst, "rate": rate_pps, "t_start": time.monotonic()}

    def _customer_ifaces(self) -> dict[str, str]:
        out = {}
        for lk in self.plan.links:
            if lk.role == "interconnect":
                out[lk.b.iface if lk.b.node == CUSTOMER else lk.a.iface] = lk.name
            if lk.name == "transit-cust":
                out["transit0"] = "transit"
        return out

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
            return getattr(self, "_final", TrafficStats())
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
        with self._lock:
            self._note("link", link, kind, rec.mechanism)

    def clear(self, link: str | None) -> None:
        clear_faults(self.lab, link)
        with self._lock:
            self._note("link", link or "all", "clear")

    def maintenance(self, link: str, op: MaintenanceOp) -> None:
        from sim.routers import router_for

        router = router_for(self.lab)
        if router is None:
            raise ValueError("maintenance steps need the customer router in the lab (kind external has none)")
        try:
            router.maintenance(op, [s for s in self.plan.sessions if s.interconnect == link])
        except NotImplementedError as exc:
            raise ValueError(str(exc)) from None
        with self._lock:
            self._note("link", link, f"maintenance {op}")

    def mss_probe(self) -> ProbeResult:
        r = probe_mss(self.lab)
        return ProbeResult(passed=r.ok, detail="; ".join([*(f"{x.direction}: {x.advice}" for x in r.results),
                                                          f"config under test: {r.provenance}"]))

    def series(self) -> Series:
        with self._lock:
            transitions = list(self._transitions)
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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.stop_traffic()
        with self._poll_lock:
            self._routes.close()


def _fsm(state: str | None) -> str:
    return {"Established": "Established", "Connect": "Connect", "Active": "Active", "OpenSent": "OpenSent",
            "OpenConfirm": "OpenConfirm"}.get(state or "", "Idle")


@contextlib.contextmanager
def open_executor(loaded: Any, seed: int) -> Iterator[EmuExecutor]:
    """Build the scenario's lab, yield the executor, always tear the lab down (``seed`` is unused:
    a real lab's randomness is the kernel's)."""
    if os.geteuid() != 0:
        raise ExecutorUnavailable("the emulator needs root (network namespaces); run `cnilab sim` for a prediction")
    missing = [b for b in ("nsenter", "ip", "nft") if shutil.which(b) is None]
    if missing:
        raise ExecutorUnavailable(f"the emulator needs {', '.join(missing)}; run `make setup`")
    from sim.lab.lab import Lab

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
    from sim.edge.control import ControlError, EdgeClient
    from sim.testing import WaitTimeout, wait_for

    edge = EdgeClient(lab.state.control["edge"])
    edge.wait(30)
    want = {f: sum(1 for p in lab.plan.customer_prefixes if p.version == f) for f in (4, 6)}
    with contextlib.suppress(ControlError, WaitTimeout):
        wait_for(lambda: all(s.up and s.prefixes_accepted >= want[s.family] for s in edge.sessions()),
                 timeout, 0.2, what="sessions Established with the customer's prefixes accepted")
        origin = _first_v4(lab.plan, ORIGIN)
        wait_for(lambda: "proto bgp" in lab.run(EDGE, ["ip", "route", "show", "match", origin],
                                                check=False).stdout, 10, 0.1, what="edge route to the origin")
