"""Carrier flapping: ``python -m cnilab.sim.faults.flapd --iface X --period S [--since T]`` in the node's netns.

Down for half the period, up for the other half, until SIGTERM; always leaves the link up. With
``--since T`` (a ``time.monotonic()`` reading, the same clock in every process on Linux) the caller
has already taken the link down at T, and every toggle lands on T + k x period/2 however long this
interpreter took to start: the emulated flap then has the simulator's exact timing.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import threading
import time


def _set(iface: str, state: str) -> None:
    subprocess.run(["ip", "link", "set", "dev", iface, state], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--period", type=float, default=4.0, help="seconds (down half, up half)")
    ap.add_argument("--since", type=float, default=None, help="monotonic time the link went down")
    a = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t0 = a.since
    if t0 is None:
        t0 = time.monotonic()
        _set(a.iface, "down")
    half = a.period / 2
    try:
        k = 1
        while not stop.wait(max(0.0, t0 + k * half - time.monotonic())):
            _set(a.iface, "up" if k % 2 else "down")
            k += 1
    finally:
        _set(a.iface, "up")


if __name__ == "__main__":
    main()
