"""LabObserver: one background poller over a running lab that records every transition it sees.

It reads the edge (sessions, BFD), the customer router's own sessions (a slower poll: the daemon's
CLI is a fork) and both routers' best path to the far end, at a declared interval, and appends a
timestamped :class:`~cnilab.sim.report.model.Transition` whenever a reading differs from the last. A
reader that needs the state *now* (a scenario ``expect ... now``) calls :meth:`refresh` with a
maximum age instead of trusting the last background sample.

Readers with more to watch switch on what they need rather than running a loop of their own: the
dashboard asks for the edge's event log (``edge_events``) and every node's interface counters
(``counters``, read at ``counters_poll_s``) and subscribes to each poll; ``cnilab verify`` asks for
the whole routing picture on demand (:meth:`LabObserver.ribs`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from cnilab.sim.edge.control import Event
from cnilab.sim.handle import LabHandle
from cnilab.sim.observe.counters import IfaceSample, NetnsReader
from cnilab.sim.observe.edge import EdgeReader, EdgeReading
from cnilab.sim.observe.paths import SIDE_NODE, path_label
from cnilab.sim.observe.ribs import RibReader, RibReading
from cnilab.sim.observe.routes import RouteReader
from cnilab.sim.probes.mtu import _first_v4
from cnilab.sim.report.model import Transition
from cnilab.sim.topology.plan import INTERNET, ORIGIN

log = logging.getLogger(__name__)

POLL_S = 0.05
CUSTOMER_POLL_S = 0.25
SLACK_FLOOR_S = 0.25
"""Part of an observation's slack no measurement shows: daemons (BFD, ExaBGP, FRR) and the kernel
run on the same loaded host as the observer, and a route change takes a moment to reach the FIB."""
LATENCY_WINDOW = 40
"""Polls over which the observation latency is measured (about 2 s at 50 ms): the slack follows the load."""
FAR_END = {"cf": ORIGIN, "customer": INTERNET}
"""The destination whose best path each side's router is asked for."""

FSM_STATES = ("Established", "Connect", "Active", "OpenSent", "OpenConfirm")


def fsm(state: str | None) -> str:
    """A daemon's BGP state in RFC 4271 words; anything else (unknown, empty) is Idle."""
    return state if state in FSM_STATES else "Idle"


class LabObserver:
    """``with LabObserver(lab) as obs: obs.session_state(key, "cf"); obs.transitions()``.

    ``poll_s`` is the declared poll interval; :attr:`slack` is what a deadline measured through
    this observer must allow on top of physics. ``customer`` turns off the customer-router poll
    (a lab whose customer router runs outside cnilab has nothing to read), ``routes`` the best-path
    reads. ``edge_events`` keeps the edge driver's event log for :meth:`take_events`; ``counters``
    reads every node's interfaces every ``counters_poll_s`` (:meth:`interfaces`, :meth:`tx_rates`)."""

    def __init__(self, lab: LabHandle, poll_s: float = POLL_S, customer_poll_s: float = CUSTOMER_POLL_S,
                 customer: bool = True, t0: float | None = None, *, routes: bool = True,
                 edge_events: bool = False, counters: bool = False, counters_poll_s: float | None = None,
                 edge_timeout: float = 5.0) -> None:
        self.lab = lab
        self.plan = lab.plan
        self.poll_s, self.customer_poll_s = poll_s, customer_poll_s
        self.counters_poll_s = poll_s if counters_poll_s is None else counters_poll_s
        self.t0 = time.monotonic() if t0 is None else t0
        self.edge_socket: str | None = lab.state.control.get("edge")
        self.edge = EdgeReader(self.edge_socket, timeout=edge_timeout)
        self._customer = customer
        self._edge_events = edge_events
        self._events: list[Event] = []
        self._counter_netns = {n.name: lab.netns_path(n.name) for n in self.plan.nodes} if counters else None
        self._last_counters = float("-inf")
        self._ifaces: tuple[float, dict[str, dict[str, IfaceSample]]] = (0.0, {})
        self._prev_ifaces: tuple[float, dict[str, dict[str, IfaceSample]]] = (0.0, {})
        self._iface_errors: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []
        self._ribs: RibReader | None = None
        self._rib_reading: tuple[float, RibReading] | None = None
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self._last_customer = float("-inf")
        self._latency: list[float] = []
        self._dst = {side: _first_v4(self.plan, node) for side, node in FAR_END.items()} if routes else {}
        self._routes = RouteReader({SIDE_NODE[side]: lab.netns_path(SIDE_NODE[side]) for side in self._dst})
        self.reading = EdgeReading(reachable=False, error="not read yet")
        self._edge_reachable: bool | None = None
        self._edge_read_at = float("-inf")
        self.edge_stale_s = 2 * edge_timeout
        """How long the edge's last good reading stays evidence while reads fail."""
        self._cf_sessions: dict[str, str] = {}
        self._cf_bfd: dict[str, str] = {}
        self._cust_sessions: dict[str, str] = {}
        self._paths: dict[str, str | None] = {}
        self._transitions: list[Transition] = []

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LabObserver:
        self.refresh(0.0)
        self._thread = threading.Thread(target=self._run, name=f"observe-{self.lab.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._poll_lock:
            self._routes.close()

    def subscribe(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after every background poll (in the poller's thread; an exception is logged)."""
        self._listeners.append(fn)

    def __enter__(self) -> LabObserver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- readings ---------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, kind: str, subject: str, state: str, reason: str = "") -> None:
        """Record a transition the observer cannot see itself (a fault applied, a step taken)."""
        with self._lock:
            self._note(kind, subject, state, reason)

    def _note(self, kind: str, subject: str, state: str, reason: str = "") -> None:
        self._transitions.append(Transition(t=round(self.now(), 3), kind=kind, subject=subject, state=state,
                                            reason=reason))

    def transitions(self) -> list[Transition]:
        with self._lock:
            return list(self._transitions)

    def _edge_stale(self) -> bool:
        """No good reading of the edge for longer than a failed call can explain: its last states
        are no longer evidence (a dead driver must not keep a session "Established")."""
        return time.monotonic() - self._edge_read_at > self.edge_stale_s

    def session_state(self, key: str, side: str, max_age: float = 0.02) -> str:
        """The session's last read state ("Unknown" on the edge side once the edge is unreadable)."""
        self.refresh(max_age)
        with self._lock:
            if side == "cf" and self._edge_stale():
                return "Unknown"
            return (self._cf_sessions if side == "cf" else self._cust_sessions).get(key, "Idle")

    def bfd_state(self, key: str, max_age: float = 0.02) -> str:
        """The edge's BFD state toward ``key``'s customer address (Down until the speaker reports one;
        "Unknown" once the edge is unreadable)."""
        self.refresh(max_age)
        with self._lock:
            if self._edge_stale():
                return "Unknown"
            return self._cf_bfd.get(key, "Down")

    def best_path(self, side: str, max_age: float = 0.02) -> str | None:
        self.refresh(max_age)
        with self._lock:
            return self._paths.get(side)

    def take_events(self) -> list[Event]:
        """The edge driver's events recorded since the last call (``edge_events`` only)."""
        with self._lock:
            out, self._events = self._events, []
        return out

    def interfaces(self) -> tuple[dict[str, dict[str, IfaceSample]], dict[str, str]]:
        """The last counters reading (node -> ifname -> sample; read by the background poll only) and
        the nodes that could not be read."""
        with self._lock:
            return self._ifaces[1], dict(self._iface_errors)

    def tx_rates(self, node: str) -> dict[str, tuple[float, float]]:
        """Packets/s and bits/s each of ``node``'s interfaces sent between the last two counter reads."""
        with self._lock:
            (t0, before), (t1, after) = self._prev_ifaces, self._ifaces
        out: dict[str, tuple[float, float]] = {}
        if t1 <= t0:
            return out
        for ifname, s in after.get(node, {}).items():
            prev = before.get(node, {}).get(ifname)
            if prev is not None:
                out[ifname] = (max(0, s.tx_packets - prev.tx_packets) / (t1 - t0),
                               max(0, s.tx_bytes - prev.tx_bytes) * 8 / (t1 - t0))
        return out

    def ribs(self, max_age: float = 0.0) -> RibReading:
        """The routing picture (edge sessions/routes/BFD, third parties' Adj-RIB-In, the customer's
        kernel routes), re-read unless the last one is younger than ``max_age`` seconds."""
        if self._ribs is None:
            self._ribs = RibReader(self.lab)
        last = self._rib_reading
        if last is None or time.monotonic() - last[0] >= max_age:
            last = (time.monotonic(), self._ribs.read())
            self._rib_reading = last
        return last[1]

    @property
    def slack(self) -> float:
        """Declared slack (s): a floor, two poll periods (a change lands just after a poll and is
        confirmed by the next), and the worst observation latency over the last ~2 s (time a poll
        took plus how late the poller woke), so the slack follows the host's load."""
        with self._lock:
            worst = max(self._latency, default=0.0)
        return round(SLACK_FLOOR_S + 2 * self.poll_s + worst, 3)

    def wait(self, until: Callable[[], bool], deadline: float) -> float | None:
        """Observer time at which ``until()`` first held, or None once ``now()`` passes ``deadline``."""
        while True:
            if until():
                return self.now()
            if self.now() >= deadline:
                return None
            time.sleep(min(self.poll_s, max(0.0, deadline - self.now())))

    # -- polling ----------------------------------------------------------------------------------
    def refresh(self, max_age: float) -> None:
        """Re-read the lab unless the last reading is younger than ``max_age`` seconds."""
        with self._poll_lock:
            if time.monotonic() - self._last_poll >= max_age:
                self._poll_once()
                self._last_poll = time.monotonic()

    def _poll_once(self) -> None:
        reading = self.edge.read(events=self._edge_events)
        paths = {side: path_label(self.plan, self._routes.dev(SIDE_NODE[side], dst)) for side, dst in self._dst.items()}
        cust = None
        if self._customer and time.monotonic() - self._last_customer >= self.customer_poll_s:
            cust = self._customer_sessions()
            self._last_customer = time.monotonic()
        sessions = reading.session_states()
        by_peer = reading.bfd_states()
        with self._lock:
            self.reading = reading
            self._events.extend(reading.events)
            if reading.reachable != self._edge_reachable:
                self._note("edge", "driver", "reachable" if reading.reachable else "unreachable", reading.error or "")
                self._edge_reachable = reading.reachable
            if reading.reachable:
                # A reading that failed (a refused or timed-out control call on a loaded host) says
                # nothing about the sessions: it must not turn into "Idle" and, on the next good
                # reading, into a second "Established" that a measurement would take for a flap.
                self._edge_read_at = time.monotonic()
                for k, v in sessions.items():
                    if self._cf_sessions.get(k) != v:
                        self._note("session", f"{k} cf", v)
                self._cf_sessions = sessions
                for s in self.plan.sessions:
                    st = by_peer.get(str(s.cust_addr))
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
        from cnilab.sim.routers import customer_bgp

        try:
            return {n["session"]: fsm(n.get("state")) for n in customer_bgp(self.lab) if n.get("session")}
        except Exception:  # the customer router may be restarting; keep the last view
            return dict(self._cust_sessions)

    def _read_counters(self, reader: NetnsReader) -> None:
        if time.monotonic() - self._last_counters < self.counters_poll_s:
            return
        ifaces = (time.monotonic(), reader.sample())
        self._last_counters = ifaces[0]
        with self._lock:
            self._prev_ifaces, self._ifaces = self._ifaces, ifaces
            self._iface_errors = dict(reader.errors)

    def _run(self) -> None:
        # the counters' netlink sockets are opened and used only in this thread (pyroute2's sockets
        # belong to the thread that made them)
        with NetnsReader(self._counter_netns or {}) as reader:
            self._loop(reader if self._counter_netns is not None else None)

    def _loop(self, counters: NetnsReader | None) -> None:
        due = time.monotonic() + self.poll_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            with contextlib.suppress(Exception):
                self.refresh(self.poll_s / 2)
            if counters is not None:
                with contextlib.suppress(Exception):
                    self._read_counters(counters)
            end = time.monotonic()
            with self._lock:
                self._latency.append(end - due)  # lateness of the wake-up + duration of the poll
                del self._latency[:-LATENCY_WINDOW]
            for fn in self._listeners:
                try:
                    fn()
                except Exception:  # a reader's failure must not stop the observation
                    log.exception("observer listener failed")
            due = max(due + self.poll_s, time.monotonic() if self._listeners else end)
