"""The executor protocol: the few primitive operations a scenario needs from a lab.

Two implementations: the discrete-event simulator (:mod:`cnilab.sim.des.executor`, virtual time) and the
emulator (``sim/scenario/emulator.py``, the real lab). The runner never knows which it drives.

Contract for an emulator (kept small on purpose):

* ``sim/scenario/emulator.py`` exposes ``open_executor(loaded: LoadedScenario, seed: int)``, a
  context manager yielding an :class:`Executor` with ``name == "emu"``; it builds the lab from
  ``loaded.plan`` on entry and always tears it down on exit. If it cannot run here (not root,
  missing daemons) it raises :class:`ExecutorUnavailable` with the reason, before building anything.
* Time is seconds since the lab came up (``now()``); ``run_until(deadline, until)`` sleeps/polls
  (e.g. every 20-50 ms) until ``until()`` is true, returning that time, or returns ``None`` at the
  deadline. The simulator evaluates ``until`` after every event, so its answer is exact.
* Names: sessions are ``LabPlan.Session.key`` (``ewr1/v4``); links are ``LabPlan.Link.name``;
  a path is an interconnect name, ``"transit"`` or ``None``.
* States are the RFC names: BGP Idle/Connect/Active/OpenSent/OpenConfirm/Established, BFD
  AdminDown/Down/Init/Up.
* ``slack`` (seconds) is what the executor adds to every deadline a scenario states as physics:
  0 for the simulator (virtual time is exact), measured observation latency plus a floor for the
  emulator. The runner adds it; reports keep the physical limit and show the slack beside it.
* ``series()`` returns what was observed (transitions with times, loss bins) for the report; an
  emulator builds it from its polling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from cnilab.sim.report.model import ProbeResult, Series, TrafficStats

if TYPE_CHECKING:
    from cnilab.sim.scenario.loader import LoadedScenario

Side = Literal["cf", "customer"]
MaintenanceOp = Literal["withdraw", "shutdown", "restore"]


class ExecutorUnavailable(RuntimeError):
    """This executor cannot run here; the message says why (shown by `cnilab run` / `compare`)."""


@runtime_checkable
class Executor(Protocol):
    name: str  # "sim" or "emu"
    slack: float  # seconds added to every physical deadline (see the module docstring)

    def now(self) -> float:
        """Seconds since the lab came up (virtual on the simulator)."""
        ...

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> float | None:
        """Let time pass to ``deadline``, stopping early when ``until()`` holds (returns that time)."""
        ...

    def session_state(self, key: str, side: Side) -> str:
        """BGP FSM state of session ``key`` (``ewr1/v4``) as ``side`` sees it."""
        ...

    def bfd_state(self, key: str, side: Side) -> str | None:
        """BFD state of the session's BFD peer, or None when BFD is off for it."""
        ...

    def best_path(self, side: Side) -> str | None:
        """Where ``side`` sends traffic for the other side's prefixes: interconnect, "transit" or None."""
        ...

    def start_traffic(self, src: str, dst: str, rate_pps: float) -> None:
        """Start a sequenced packet flow (``inet`` -> ``origin`` or back); replaces a running flow."""
        ...

    def stop_traffic(self) -> None: ...

    def traffic(self) -> TrafficStats:
        """Counters of the current (or last) flow."""
        ...

    def fault(self, link: str, kind: str, value: float | str | None) -> None:
        """Inject a fault (a kind of cnilab.sim.faults.kinds); raise ValueError if this executor cannot."""
        ...

    def clear(self, link: str | None) -> None:
        """Remove faults from ``link``, or from every link when None."""
        ...

    def maintenance(self, link: str, op: MaintenanceOp) -> None:
        """Customer-side planned work on an interconnect.

        withdraw: stop announcing over it and stop preferring routes learned on it (session stays up);
        shutdown: BGP administrative shutdown (NOTIFICATION Cease) of its sessions;
        restore: undo both.
        """
        ...

    def mss_probe(self) -> ProbeResult:
        """Does a full-size TCP segment cross the interconnects without fragmentation or black-holing?"""
        ...

    def series(self) -> Series:
        """Everything observed so far, for the report."""
        ...

    @property
    def notes(self) -> list[str]:
        """What the report should say about how this run was made (e.g. what the simulator did not model)."""
        ...


ExecutorFactory = Callable[..., contextlib.AbstractContextManager[Executor]]


@contextlib.contextmanager
def open_sim(loaded: LoadedScenario, seed: int) -> Iterator[Executor]:
    """The simulator as an executor (nothing to clean up, but the same shape as the emulator)."""
    from cnilab.sim.des.executor import SimExecutor

    yield SimExecutor(loaded.plan, loaded.topology, loaded.scenario.sim, seed)


def emulator_factory() -> ExecutorFactory:
    """The emulator's executor factory (imported on use: it pulls in the lab machinery)."""
    from cnilab.sim.scenario.emulator import open_executor

    return open_executor
