"""Processes the lab starts and must be able to stop from another shell, or after a crash.

A PID alone is not an identity: after a crash the number may belong to something else. Each record
keeps the process start time from /proc so :meth:`ProcessRecord.alive` and :meth:`stop` never
touch a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from cnilab.sim.runtime import proc
from pydantic import BaseModel


class ProcessRecord(BaseModel):
    """A detached process owned by a lab (ExaBGP, FRR daemons, BIRD, userspace GRE, ...)."""

    name: str
    node: str
    pid: int
    start_time: int | None
    argv: list[str]
    log: str | None = None

    def alive(self) -> bool:
        st = proc.start_time(self.pid)
        return st is not None and (self.start_time is None or st == self.start_time)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 1.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):  # reap our own child: no zombie left
                    os.waitpid(self.pid, os.WNOHANG)
                if not self.alive() or not proc.running(self.pid):
                    return
                time.sleep(0.02)

    def dead(self) -> bool:
        """Gone, or a zombie nobody has reaped yet: either way it will not answer."""
        return not self.alive() or not proc.running(self.pid)


def stop_popen(child: subprocess.Popen, first: int = signal.SIGTERM, grace: float = 15.0) -> None:
    """Stop a child we started in its own session: ``first`` to its process group (SIGINT lets a CLI
    run its teardown), then SIGKILL if it has not exited within ``grace`` seconds; always reaped."""
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_all(records: list[ProcessRecord], timeout: float = 3.0) -> list[tuple[ProcessRecord, OSError]]:
    """Stop several processes at once: SIGTERM to all, one shared wait, SIGKILL what is left.

    ``down`` used to stop a lab's daemons one after the other, each wait adding up (~0.25 s for
    a v1 lab); they do not depend on each other's exit. Returns the records that could not be
    signalled, with the error."""
    errors: list[tuple[ProcessRecord, OSError]] = []
    live = [r for r in records if r.alive()]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 1.0)):
        for rec in list(live):
            try:
                try:
                    os.killpg(rec.pid, sig)
                except PermissionError:
                    os.kill(rec.pid, sig)
            except ProcessLookupError:
                live.remove(rec)
            except OSError as exc:
                errors.append((rec, exc))
                live.remove(rec)
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            for rec in list(live):
                with contextlib.suppress(ChildProcessError):  # reap our own child: no zombie left
                    os.waitpid(rec.pid, os.WNOHANG)
                if rec.dead():
                    live.remove(rec)
            if live:
                time.sleep(0.01)
        if not live:
            break
    return errors


def spawn(name: str, node: str, argv: list[str], log: Path | None, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> ProcessRecord:
    """Start ``argv`` detached (own session), so it outlives the CLI command that started it."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=cwd, close_fds=True)
    finally:
        if log:
            out.close()
    return ProcessRecord(name=name, node=node, pid=child.pid, start_time=proc.start_time(child.pid), argv=argv,
                         log=str(log) if log else None)
