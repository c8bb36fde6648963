"""cnilab.sim.runtime.early_stop: `down`'s head start signals exactly the lab's live recorded processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cnilab.sim.runtime import early_stop, proc


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def _write_state(root: Path, lab: str, state: dict) -> None:
    d = root / "labs" / lab
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps(state))


def _exit_signal(p: subprocess.Popen[bytes]) -> int | None:
    try:
        return -p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


def test_signals_recorded_processes_with_matching_start_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    daemon, tunnel, reused = _sleeper(), _sleeper(), _sleeper()
    try:
        rec = lambda p, start=None: {"name": "x", "node": "cf", "pid": p.pid, "argv": ["sleep"],  # noqa: E731
                                     "start_time": proc.start_time(p.pid) if start is None else start}
        _write_state(tmp_path, "lab-a", {"backend": "netns", "processes": [rec(daemon), rec(reused, start=1)],
                                         "tunnels": [{"process": rec(tunnel)}], "faults": []})
        sent = early_stop.sigterm_lab("lab-a")
        assert sorted(sent) == sorted([daemon.pid, tunnel.pid])
        assert _exit_signal(daemon) == signal.SIGTERM and _exit_signal(tunnel) == signal.SIGTERM
        assert reused.poll() is None  # its start time does not match the record: another process now
    finally:
        for p in (daemon, tunnel, reused):
            p.kill()
            p.wait()


def test_only_netns_labs_and_only_one_lab_without_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    p = _sleeper()
    try:
        rec = {"name": "x", "node": "cf", "pid": p.pid, "argv": ["sleep"], "start_time": proc.start_time(p.pid)}
        _write_state(tmp_path, "clab", {"backend": "containerlab", "processes": [rec]})
        assert early_stop.sigterm_lab("clab") == []  # containerlab's lab is not ours to stop
        assert early_stop.sigterm_lab("missing") == []
        _write_state(tmp_path, "other", {"backend": "netns", "processes": [rec]})
        assert early_stop.sigterm_lab(None) == []  # two labs and no name: `down` will refuse, so do nothing
        assert p.poll() is None
        assert early_stop.sigterm_lab("other") == [p.pid]
        assert _exit_signal(p) == signal.SIGTERM
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
