"""What the dashboard's buttons start: a UDP stream inet -> origin, and a scenario run.

Both are owned by the app (created and stopped by its lifespan), so closing the dashboard stops the
stream and interrupts a scenario, whose emulator then tears its own lab down. A scenario runs as a
``cnilab run`` child process rather than a thread: the emulator builds namespaces and daemons,
and only a process can be interrupted (SIGINT -> its ``with`` blocks clean up) without leaving
them behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cnilab.sim.dashboard.models import ScenarioInfo, ScenarioRun, TrafficView
from cnilab.sim.lab.lab import Lab
from cnilab.sim.runtime.process import stop_popen
from cnilab.sim.topology.plan import ORIGIN

MAX_RATE_PPS = 20_000


class ActionError(ValueError):
    """A request the page may show as is (bad rate, unknown scenario, already running)."""


def origin_address(lab: Lab) -> str | None:
    node = next((n for n in lab.plan.nodes if n.name == ORIGIN), None)
    if node is None:
        return None
    return next((str(a.ip) for i in node.interfaces for a in i.addresses if a.version == 4), None)


class TrafficRunner:
    """At most one :class:`~cnilab.sim.probes.traffic.UdpStream` at a time; ``stop()`` always joins it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.dst = origin_address(lab)
        self._lock = threading.Lock()
        self._stream = None
        self._rate = 0
        self._error: str | None = None

    def start(self, rate_pps: int) -> TrafficView:
        from cnilab.sim.probes.traffic import UdpStream

        if not 1 <= rate_pps <= MAX_RATE_PPS:
            raise ActionError(f"rate_pps {rate_pps} is out of range (1..{MAX_RATE_PPS})")
        if self.dst is None:
            raise ActionError("this lab has no origin host with an IPv4 address to send to")
        with self._lock:
            self._stop_locked()
            try:
                self._stream = UdpStream(self.lab.netns_path("inet"), self.lab.netns_path("origin"), self.dst,
                                         rate_pps).__enter__()
            except OSError as exc:
                self._error = f"cannot start the stream: {exc}"
                raise ActionError(self._error) from exc
            self._rate, self._error = rate_pps, None
        return self.view()

    def stop(self) -> TrafficView:
        with self._lock:
            self._stop_locked()
        return self.view()

    def _stop_locked(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    def view(self) -> TrafficView:
        s = self._stream
        if s is None:
            return TrafficView(running=False, dst=self.dst, error=self._error)
        received = len({seq for seq, _ in list(s.arrivals)})
        return TrafficView(running=True, rate_pps=self._rate, dst=self.dst, sent=s.sent, received=received,
                           lost=max(0, s.sent - received), error=self._error)


def scenario_files(root: Path) -> list[str]:
    d = root / "topologies" / "scenarios"
    return sorted(str(p.relative_to(root)) for p in d.glob("*.yml")) if d.is_dir() else []


def scenario_availability() -> tuple[bool, str | None]:
    """Whether `cnilab run` can work here, and if not the reason the button shows."""
    from cnilab.sim.scenario.executor import ExecutorUnavailable, emulator_factory

    if os.geteuid() != 0:
        return False, "the emulator needs root (network namespaces); start the dashboard as root"
    try:
        emulator_factory()
    except ExecutorUnavailable as exc:
        return False, str(exc)
    return True, None


class ScenarioRunner:
    """Runs ``cnilab run FILE --json`` in the background; one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        available, reason = scenario_availability()
        self.info = ScenarioInfo(available=available, reason=reason, files=scenario_files(root))
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._waiter: threading.Thread | None = None
        self._run = ScenarioRun()

    def start(self, file: str) -> ScenarioRun:
        if not self.info.available:
            raise ActionError(f"scenarios cannot run here: {self.info.reason}")
        if file not in self.info.files:
            raise ActionError(f"unknown scenario {file!r}; choose one of: {', '.join(self.info.files)}")
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise ActionError(f"scenario {self._run.file} is still running")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "cnilab.sim.cli.main", "run", file, "--json"], cwd=self.root,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            self._run = ScenarioRun(file=file, running=True, started=time.time())
            self._waiter = threading.Thread(target=self._wait, args=(self._proc,), daemon=True)
            self._waiter.start()
        return self._run

    def _wait(self, proc: subprocess.Popen[str]) -> None:
        out, err = proc.communicate()
        run = self._run.model_copy(update={"running": False, "finished": time.time()})
        try:
            report = json.loads(out)
            run.passed = bool(report.get("passed"))
            run.steps = [{k: s.get(k) for k in ("index", "description", "status", "measured", "reason")}
                         for s in report.get("steps", [])]
            run.summary = f"{report.get('scenario', run.file)}: {'PASS' if run.passed else 'FAIL'}"
        except (json.JSONDecodeError, AttributeError):
            run.passed = False
            tail = (err or out).strip().splitlines()[-3:]
            run.summary = f"exit {proc.returncode}: " + " ".join(tail)
        self._run = run

    def view(self) -> ScenarioRun:
        return self._run

    def stop(self) -> None:
        """Interrupt a running scenario (SIGINT, so the emulator's teardown runs) and wait for it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            stop_popen(proc, signal.SIGINT, grace=30)
        if self._waiter is not None:
            self._waiter.join(timeout=5)
