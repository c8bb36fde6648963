"""What the page shows, built from the lab's observer: kernel links, faults, edge BGP/BFD and per-path rates.

The readings come from one :class:`~cnilab.sim.observe.observer.LabObserver` (edge sessions, BFD and
the driver's event log; every node's interface counters), polled at ``period`` (250 ms). After each
poll the collector publishes an immutable :class:`~cnilab.sim.dashboard.models.Snapshot` with a
version number; the web layer only reads the latest snapshot, so a slow browser never slows
observation and a stalled edge driver never blocks a request. Timeline entries are produced by
comparing consecutive readings (a carrier that changed, a fault that appeared or went) plus the edge
driver's own event log.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable

from cnilab.sim.dashboard.models import (
    EdgeView,
    EndState,
    FaultView,
    LinkState,
    PathRate,
    ScenarioRun,
    Snapshot,
    TimelineEntry,
    TopologyView,
    TrafficView,
)
from cnilab.sim.handle import LabHandle
from cnilab.sim.observe.counters import IfaceSample
from cnilab.sim.observe.observer import LabObserver
from cnilab.sim.runtime.paths import lab_dir
from cnilab.sim.state import FaultRecord, LabNotFound, LabState

log = logging.getLogger(__name__)

TIMELINE_MAX = 300
HISTORY = 120  # samples kept per path for the sparkline (30 s at 250 ms)
EDGE_TIMEOUT_S = 1.0

_GOOD_WORDS = ("Established", "-> Up", "BFD Up")
_BAD_WORDS = ("down", "Down", "NOTIFICATION", "tearing", "error", "refused", "rejected")


def _severity(kind: str, detail: str) -> str:
    """Colour of an edge event in the timeline: state changes stand out, FSM chatter is dimmed."""
    if kind in ("bgp-fsm", "route"):  # bgp-state repeats what matters (Established, down: why)
        return "minor"
    if kind in ("notification", "teardown", "error"):
        return "bad"
    if any(w in detail for w in _GOOD_WORDS):
        return "good"
    if any(w in detail for w in _BAD_WORDS):
        return "bad"
    return "info"


def _fault_key(f: FaultRecord) -> tuple[str, str, float]:
    return (f.target, f.kind, f.since)


def _fault_text(f: FaultRecord) -> str:
    return f"{f.kind}{'=' + str(f.value) if f.value not in (None, '') else ''}"


def dashboard_observer(lab: LabHandle, period: float) -> LabObserver:
    """The observer the page reads: edge sessions, BFD and events, and every node's counters, each
    ``period``; no customer-router or best-path reads (the page does not show them)."""
    return LabObserver(lab, poll_s=period, customer=False, routes=False, edge_events=True, counters=True,
                       edge_timeout=EDGE_TIMEOUT_S)


class Collector:
    """Publishes a snapshot after each poll of ``observer``, which it starts and closes
    (``start()``/``stop()`` are called by the app lifespan).

    ``side_info`` is called every sample to fill the parts owned by the action runners (traffic
    stream, scenario), so the snapshot stays one consistent object.
    """

    def __init__(self, observer: LabObserver, view: TopologyView,
                 side_info: Callable[[], tuple[TrafficView, ScenarioRun]] | None = None) -> None:
        self.observer = observer
        self.lab_name = observer.lab.name
        self.view = view
        self.edge_socket = observer.edge_socket
        self.period = observer.poll_s
        self.side_info = side_info or (lambda: (TrafficView(), ScenarioRun()))
        self._lock = threading.Lock()
        self._running = False
        self._sample_lock = threading.Lock()
        self._timeline: collections.deque[TimelineEntry] = collections.deque(maxlen=TIMELINE_MAX)
        self._seq = 0
        self._version = 0
        self._snapshot: Snapshot | None = None
        self._snapshot_json: str | None = None
        # sampling state (only touched by the sampling thread)
        self._history: dict[str, collections.deque[float]] = {
            p.label: collections.deque(maxlen=HISTORY) for p in view.paths}
        self._prev_links: dict[str, bool] = {}
        self._prev_faults: dict[tuple[str, str, float], FaultRecord] | None = None
        self._faults: list[FaultRecord] = []
        self._lab_status = "unknown"
        self._lab_error: str | None = None
        self._state_mtime: float | None = None
        self._edge_reachable: bool | None = None
        self._edge_view = EdgeView(reachable=False, error="not sampled yet")
        self._tunnel_seen: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start observing; call it off the event loop (pyroute2 opens its netlink sockets with one)."""
        if self._running:
            return
        self._running = True
        self.observer.subscribe(self._sample)
        self.observer.start()

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.observer.close()

    @property
    def running(self) -> bool:
        return self._running

    # -- what the web layer reads --------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def snapshot_json(self) -> str | None:
        """The latest snapshot, serialised once per sample however many pages are watching."""
        return self._snapshot_json

    def note(self, source: str, kind: str, text: str, severity: str = "info", session: str | None = None,
             at: float | None = None) -> None:
        """Add a timeline entry (actions from the page, and the collector's own observations)."""
        with self._lock:
            self._seq += 1
            self._timeline.append(TimelineEntry(seq=self._seq, time=at or time.time(), source=source,  # type: ignore[arg-type]
                                                kind=kind, text=text, session=session, severity=severity))  # type: ignore[arg-type]

    # -- one snapshot per observer poll -------------------------------------------------------------
    def _sample(self) -> None:
        """Called after each observer poll."""
        with self._sample_lock:
            try:
                self._publish()
            except Exception:  # never let one bad sample kill the live view
                log.exception("dashboard sample failed")

    def _publish(self) -> None:
        now = time.time()
        self._sample_state()
        ifaces, errors = self.observer.interfaces()
        links = self._links(ifaces, errors)
        rates = self._rates(ifaces)
        self._sample_edge()
        tunnels = self._sample_tunnels()
        traffic, scenario = self.side_info()
        with self._lock:
            snap = Snapshot(
                lab=self.lab_name, time=now, lab_status=self._lab_status,
                lab_error=self._lab_error, links=links,
                faults=[FaultView(target=f.target, kind=f.kind, value=f.value, mechanism=f.mechanism, since=f.since)
                        for f in self._faults],
                edge=self._edge_view, rates=rates, timeline=list(self._timeline), traffic=traffic,
                scenario=scenario, sample_period_s=self.period, version=self._version + 1,
                tunnels=tunnels)
            self._snapshot, self._snapshot_json = snap, snap.model_dump_json()
            self._version = snap.version

    def _sample_state(self) -> None:
        """Faults and lab status from the state file (re-read only when it changed)."""
        try:
            mtime = os.stat(lab_dir(self.lab_name) / "state.json").st_mtime
            if mtime == self._state_mtime:
                return
            st = LabState.load(self.lab_name)
            self._state_mtime = mtime
        except (LabNotFound, FileNotFoundError):
            if self._lab_status != "gone":
                self.note("dashboard", "lab", f"lab {self.lab_name} is no longer running (state file gone)", "bad")
            self._lab_status, self._lab_error = "gone", f"lab {self.lab_name} is not running"
            self._faults = []
            return
        except (OSError, ValueError) as exc:  # half-written by someone else: keep the last view
            self._lab_error = f"state file unreadable: {exc}"
            return
        self._lab_status, self._lab_error = st.status, None
        self._faults = list(st.faults)
        current = {_fault_key(f): f for f in st.faults}
        if self._prev_faults is not None:
            for key, f in current.items():
                if key not in self._prev_faults:
                    self.note("fault", "fault-injected", f"fault {_fault_text(f)} on {f.target}: {f.mechanism}",
                              "bad", at=max(f.since, time.time() - 5))
            for key, f in self._prev_faults.items():
                if key not in current:
                    self.note("fault", "fault-cleared", f"fault {_fault_text(f)} on {f.target} cleared", "good")
        self._prev_faults = current

    def _links(self, ifaces: dict[str, dict[str, IfaceSample]], errors: dict[str, str]) -> list[LinkState]:
        out = []
        for lk in self.view.links:
            ends = []
            for ep in (lk.a, lk.b):
                s = ifaces.get(ep.node, {}).get(ep.iface)
                if s is None:
                    ends.append(EndState(node=ep.node, iface=ep.iface, present=False,
                                         operstate=errors.get(ep.node, "missing")))
                else:
                    ends.append(EndState(node=ep.node, iface=ep.iface, admin_up=s.admin_up, carrier=s.carrier,
                                         operstate=s.operstate))
            up = all(e.present and e.admin_up and e.carrier for e in ends)
            faults = [_fault_text(f) for f in self._faults if f.target in (lk.name, lk.a.node, lk.b.node)]
            prev = self._prev_links.get(lk.name)
            if prev is not None and prev != up:
                why = ", ".join(f"{e.node}:{e.iface} {'admin down' if not e.admin_up else 'no carrier'}"
                                for e in ends if not (e.present and e.admin_up and e.carrier))
                self.note("link", "link-up" if up else "link-down",
                          f"link {lk.name}: carrier {'up' if up else 'down'}" + (f" ({why})" if why else ""),
                          "good" if up else "bad")
            self._prev_links[lk.name] = up
            out.append(LinkState(name=lk.name, up=up, ends=ends, faults=faults))
        return out

    def _rates(self, ifaces: dict[str, dict[str, IfaceSample]]) -> list[PathRate]:
        """Packets/s and bits/s leaving the edge on each path (interconnects and transit0)."""
        tx = self.observer.tx_rates("cf")
        out = []
        for p in self.view.paths:
            pps, bps = tx.get(p.iface, (0.0, 0.0)) if p.iface in ifaces.get("cf", {}) else (0.0, 0.0)
            hist = self._history[p.label]
            hist.append(round(pps, 1))
            out.append(PathRate(label=p.label, iface=p.iface, pps=round(pps, 1), bps=round(bps), history=list(hist)))
        return out

    def _sample_edge(self) -> None:
        reading = self.observer.reading
        if not reading.reachable:
            if self._edge_reachable is not False and self.edge_socket:
                self.note("dashboard", "edge", f"edge driver not reachable: {reading.error}", "bad")
            self._edge_reachable = False if self.edge_socket else None
            self._edge_view = EdgeView(reachable=False, error=reading.error)
            return
        if self._edge_reachable is False:
            self.note("dashboard", "edge", "edge driver reachable again", "good")
        self._edge_reachable = True
        for ev in self.observer.take_events():
            self.note("edge", ev.kind, ev.detail, _severity(ev.kind, ev.detail), session=ev.session, at=ev.time)
        self._edge_view = EdgeView(reachable=True, sessions=reading.sessions, bfd=reading.bfd)

    def _sample_tunnels(self) -> list[dict]:
        """Magic tunnels from the edge's health-check daemon (none for a lab without magic:); each
        state change goes to the timeline."""
        import json

        try:
            st = json.loads((lab_dir(self.lab_name) / "nodes" / "cf" / "magic-status.json").read_text())
        except (OSError, ValueError):
            return []
        seen = self._tunnel_seen
        out = []
        for t in st.get("tunnels", []):
            for tr in t.get("transitions", []):
                if tr["t"] > seen.get(t["name"], 0.0):
                    sev = {"down": "bad", "degraded": "bad", "healthy": "good"}.get(tr["to"], "info")
                    text = f"tunnel {t['name']}: {tr['frm']} -> {tr['to']} ({tr['reason']})"
                    self.note("magic", "tunnel-state", text, sev, at=tr["t"])
                    seen[t["name"]] = tr["t"]
            out.append({k: t.get(k) for k in ("name", "kind", "type", "direction", "rate", "priority",
                                              "effective_priority", "state")}
                       | {"last": "".join("+" if p["ok"] else "x" for p in t.get("last", [])[-10:])})
        routes = st.get("routes", {})
        if time.time() - st.get("updated", 0) > 5.0:  # the daemon stopped: its last states are not current
            for t in out:
                t["state"] = "unknown (health-check daemon stopped)"
        for t in out:
            t["carries"] = sorted(p for p, hops in routes.items() if any(h["tunnel"] == t["name"] for h in hops))
        return out


def fault_targets(view: TopologyView) -> list[str]:
    """What the fault buttons may target: links first (interconnects on top), then nodes."""
    links = sorted(view.links, key=lambda lk: (lk.interconnect is None, lk.name))
    return [lk.name for lk in links] + [n.name for n in view.nodes]

