"""The one reader of ``/proc/<pid>/stat``: process state and start time.

The command name (field 2) may contain spaces and parentheses, so fields are counted after the
last ``)``, as proc(5) advises.
"""

from __future__ import annotations

from pathlib import Path


def _fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """Field 22 (starttime, clock ticks since boot): with the pid, an identity that survives reuse."""
    f = _fields(pid)
    return None if f is None else int(f[19])


def state(pid: int) -> str | None:
    """Field 3 (R, S, D, Z ...), or None when the process is gone."""
    f = _fields(pid)
    return None if f is None else f[0]


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    return state(pid) not in (None, "Z")


def cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def effective_caps() -> int:
    """CapEff of this process (a bit mask; bit 12 is CAP_NET_ADMIN)."""
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("CapEff:"))
    return int(line.split()[1], 16)
