"""TCP MD5 failures seen by the kernel: the evidence ExaBGP never gets for a key mismatch.

A segment with a missing or wrong RFC 2385 signature is dropped by the kernel before any BGP
speaker sees it, so the only trace is the ``TcpExt: TCPMD5*`` counters in /proc/net/netstat (per
network namespace: the driver reads its own, the cf node's).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

MD5_WINDOW_S = 150.0
"""How long a kernel MD5 failure counts as the reason a session is down (FRR retries every 120 s)."""
MD5_CONFIRM_SAMPLES = 3
"""MD5 drops in this many 1 s samples of one streak make a key mismatch deterministic: the first
three SYNs of one connection attempt (at 0, 1 and 3 s: TCP's retransmission backoff) all failed the
check. One stray segment during a key change does not."""
MD5_STREAK_GAP_S = 10.0
"""Drops further apart than this start a new streak (SYN retransmissions of one attempt are at most
8 s apart before the fifth)."""


def md5_counters() -> dict[str, int]:
    """TcpExt MD5 counters of this process's namespace."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            kv = dict(zip(head.split()[1:], vals.split()[1:], strict=False))
            return {k: int(v) for k, v in kv.items() if k.startswith("TCPMD5")}
    return {}


class Md5Watch:
    """Samples the counters (once a second, by the driver's tick) and keeps the current streak."""

    def __init__(self) -> None:
        self._base = md5_counters()
        self.last_change: float | None = None
        self.first_change: float | None = None
        self.samples = 0
        self.detail = ""

    def sample(self) -> str | None:
        """Read the counters; the increase as text (``TCPMD5Failure+2``) when they moved, else None."""
        now_c = md5_counters()
        delta = {k: v - self._base.get(k, 0) for k, v in now_c.items() if v > self._base.get(k, 0)}
        self._base = now_c
        if not delta:
            return None
        now = time.time()
        if self.last_change is None or now - self.last_change > MD5_STREAK_GAP_S:
            self.first_change, self.samples = now, 0
        self.samples += 1
        self.last_change = now
        self.detail = ", ".join(f"{k}+{v}" for k, v in sorted(delta.items()))
        return self.detail

    def evidence(self, up: bool, last_notification_time: float | None) -> dict[str, Any] | None:
        """Kernel MD5 drops that explain why a (down) session has no TCP connection, or None.

        The counters are per namespace, so they are attributed to sessions that are down and have
        no later NOTIFICATION; ``confirmed`` once the drops repeat (deterministic, not a one-off)."""
        if up or self.last_change is None or time.time() - self.last_change >= MD5_WINDOW_S:
            return None
        if last_notification_time is not None and last_notification_time >= self.last_change:
            return None
        return {"first": self.first_change, "last": self.last_change, "samples": self.samples,
                "counters": self.detail, "confirmed": self.samples >= MD5_CONFIRM_SAMPLES}
