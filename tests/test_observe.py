"""cnilab.sim.observe: the one observer of a running lab (edge reader, observer transitions, path labels)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from cnilab.sim.observe.edge import EdgeReader


class _FakeEdge:
    """A control socket speaking the edge driver's protocol, in a thread, with a settable event ring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, req: dict[str, Any]) -> Any:
        if req["cmd"] == "sessions":
            return [{"key": "lax1/v4", "state": "Established"}]
        if req["cmd"] == "bfd":
            return [{"peer": "192.0.2.11", "state": "Up"}]
        return [e for e in self.events if e["seq"] > int(req.get("since", 0))]

    def _run(self) -> None:
        from cnilab.sim.edge.control import serve

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(self.path, self._handle):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    def __enter__(self) -> _FakeEdge:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def _ev(seq: int, t: float, detail: str) -> dict[str, Any]:
    return {"seq": seq, "time": t, "kind": "bgp-state", "session": "lax1/v4", "detail": detail}


def test_edge_reader_returns_each_event_once_across_a_driver_restart(tmp_path):
    reader = EdgeReader(str(tmp_path / "control.sock"))
    gone = reader.read(events=True)
    assert not gone.reachable and "not running" in (gone.error or "")
    with _FakeEdge(tmp_path / "control.sock") as edge:
        edge.events = [_ev(1, 100.0, "Established"), _ev(2, 101.0, "down: x")]
        first = reader.read(events=True)
        assert first.reachable and first.session_states() == {"lax1/v4": "Established"}
        assert first.bfd_states() == {"192.0.2.11": "Up"}
        assert [e.seq for e in first.events] == [1, 2]
        assert reader.read(events=True).events == []
        edge.events.append(_ev(3, 102.0, "Established"))
        assert [e.seq for e in reader.read(events=True).events] == [3]
    assert not reader.read(events=True).reachable
    with _FakeEdge(tmp_path / "control.sock") as edge:  # restarted: renumbered from 1, old ones kept
        edge.events = [_ev(1, 101.5, "old, shown before"), _ev(2, 103.0, "new")]
        assert [e.detail for e in reader.read(events=True).events] == ["new"]


def test_edge_reader_without_a_socket_says_so():
    r = EdgeReader(None).read()
    assert not r.reachable and "no edge driver" in (r.error or "")


def test_path_labels_follow_the_plan():
    from cnilab.sim.observe.paths import BACKUP, customer_path_ifaces, path_ifaces, path_label
    from cnilab.sim.topology import build_plan, load_topology
    from cnilab.sim.topology.plan import TRANSIT

    plan = build_plan(load_topology(Path(__file__).resolve().parents[1] / "topologies" / "ha-three-site.yml"),
                      "obs-paths")
    ics = {s.interconnect for s in plan.sessions}
    backup = {BACKUP} if any(n.name == TRANSIT for n in plan.nodes) else set()
    assert set(path_ifaces(plan).values()) == ics | backup
    assert ics <= set(customer_path_ifaces(plan).values())
    for ic in ics:
        assert path_label(plan, ic) == ic and path_label(plan, f"{ic}.100") == ic
    assert path_label(plan, "transit0") == "transit" and path_label(plan, None) is None


@pytest.mark.root
@pytest.mark.daemons
def test_observer_records_a_teardown_and_the_return_with_timestamps(tmp_path):
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.observe.observer import LabObserver

    from tests.labs import needs_root_daemons, running_lab

    needs_root_daemons()
    polls = threading.Semaphore(0)
    with running_lab(tmp_path, "v2-direct.yml") as lab, \
            LabObserver(lab, edge_events=True, counters=True) as obs:  # type: ignore[arg-type]
        obs.subscribe(polls.release)
        key = lab.plan.sessions[0].key  # type: ignore[attr-defined]
        assert obs.session_state(key, "cf") == "Established"
        assert obs.best_path("cf") is not None
        assert obs.slack >= 2 * obs.poll_s
        edge = EdgeClient(lab.state.control["edge"])  # type: ignore[attr-defined]

        def recorded(state: str) -> bool:
            return any(t.kind == "session" and t.subject == f"{key} cf" and t.state == state
                       for t in obs.transitions())

        # the state read above may come before the background poll logs it as a transition (a loaded
        # host): the teardown starts from a logged Established, or the log's first entry is that one
        assert obs.wait(lambda: recorded("Established"), obs.now() + 10) is not None
        # the log's own order, not a clock: a transition's time is rounded to the millisecond, so one
        # logged half a millisecond before a reading of now() could compare as after it
        n_before = len(obs.transitions())
        edge.teardown(key)
        assert obs.wait(lambda: obs.session_state(key, "cf") != "Established", obs.now() + 10) is not None
        edge.wait_established([key], timeout=90)
        assert obs.wait(lambda: obs.session_state(key, "cf") == "Established", obs.now() + 5) is not None
        mine = [t for t in obs.transitions()[n_before:] if t.kind == "session" and t.subject == f"{key} cf"]
        assert mine[0].state != "Established" and mine[-1].state == "Established", mine
        assert [t.t for t in mine] == sorted(t.t for t in mine)
        # what the dashboard reads through the same observer: the edge's own log of that teardown,
        # every node's interfaces from the background poll, a call after each poll
        assert any(ev.session == key for ev in obs.take_events())
        assert polls.acquire(timeout=10)
        ifaces, errors = obs.interfaces()
        assert not errors and {n.name for n in lab.plan.nodes} <= set(ifaces)  # type: ignore[attr-defined]
        from cnilab.sim.observe.paths import path_ifaces

        assert polls.acquire(timeout=10)  # counters read on every poll since: a rate for every edge path
        assert set(path_ifaces(lab.plan)) <= set(obs.tx_rates("cf"))  # type: ignore[attr-defined]


class _ScriptedEdge:
    """An EdgeReader stand-in whose next readings are scripted: True = the session Established, False =
    the control call failed (as a refused or timed-out call on a loaded host does)."""

    def __init__(self, key: str, peer: str) -> None:
        self.key, self.peer = key, peer
        self.script: list[bool] = []
        self.last = True

    def read(self, events: bool = False) -> Any:
        from cnilab.sim.observe.edge import EdgeReading

        self.last = self.script.pop(0) if self.script else self.last
        if not self.last:
            return EdgeReading(reachable=False, error="[Errno 11] Resource temporarily unavailable")
        return EdgeReading(reachable=True, sessions=[{"key": self.key, "state": "Established"}],
                           bfd=[{"peer": self.peer, "state": "Up"}])


def test_a_failed_edge_reading_is_not_a_session_going_down_but_a_dead_edge_is_unknown():
    """Found under load in CI: one failed control call made the observer log the session as gone and
    then Established again - a flap that never happened. A failed reading changes no state; an edge
    unreadable for longer than a failed call can explain is "Unknown", never a stale "Established"."""
    from types import SimpleNamespace

    from cnilab.sim.observe.observer import LabObserver
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    plan = build_plan(load_topology(Path(__file__).parents[1] / "topologies" / "v2-direct.yml"), "t-obs")
    lab = SimpleNamespace(name="t-obs", plan=plan, state=SimpleNamespace(control={}))
    obs = LabObserver(lab, customer=False, routes=False, edge_timeout=0.2)  # type: ignore[arg-type]
    s = plan.sessions[0]
    edge = obs.edge = _ScriptedEdge(s.key, str(s.cust_addr))  # type: ignore[assignment]
    edge.script = [True, False, True]
    for _ in range(3):
        obs.refresh(0.0)
        assert obs.session_state(s.key, "cf", max_age=60) == "Established"
        assert obs.bfd_state(s.key, max_age=60) == "Up"
    mine = [(t.kind, t.state) for t in obs.transitions() if t.kind in ("session", "edge")]
    assert mine == [("edge", "reachable"), ("session", "Established"),
                    ("edge", "unreachable"), ("edge", "reachable")], mine
    edge.script = [False]
    obs.refresh(0.0)
    assert obs.session_state(s.key, "cf", max_age=60) == "Established"  # one failed call: still evidence
    obs._edge_read_at -= obs.edge_stale_s + 0.1  # ... but not for ever
    assert obs.session_state(s.key, "cf", max_age=60) == "Unknown"
    assert obs.bfd_state(s.key, max_age=60) == "Unknown"
