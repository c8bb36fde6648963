"""Carrier flapping: ``python -m sim.faults.flapd --iface X --period S`` inside the node's netns.

Down for half the period, up for the other half, until SIGTERM; always leaves the link up.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import threading


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--period", type=float, default=4.0)
    a = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.is_set():
            subprocess.run(["ip", "link", "set", "dev", a.iface, "down"], check=False)
            if stop.wait(a.period / 2):
                break
            subprocess.run(["ip", "link", "set", "dev", a.iface, "up"], check=False)
            stop.wait(a.period / 2)
    finally:
        subprocess.run(["ip", "link", "set", "dev", a.iface, "up"], check=False)


if __name__ == "__main__":
    main()
