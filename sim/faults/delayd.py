"""Userspace delay line for kernels without netem: ``python -m cnilab.sim.faults.delayd``.

iptables sends the link's packets to an NFQUEUE; this daemon, started inside the node's namespace,
accepts each packet ``delay +/- jitter`` ms after it arrived. Packets keep their order unless the
jitter exceeds the inter-packet gap, which is what netem does too. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import time

from cnilab.sim.faults.nfqueue import NfQueue


def run(queue: int, delay_ms: float, jitter_ms: float, seed: int | None) -> None:
    rng = random.Random(seed)
    q = NfQueue(queue)
    print(f"bound to NFQUEUE {queue}", flush=True)  # apply_fault waits for this line
    pending: list[tuple[float, int]] = []
    stop = False

    def _term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    try:
        while not stop:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                q.verdict(heapq.heappop(pending)[1])
            timeout = max(0.0, pending[0][0] - now) if pending else 0.5
            ready, _, _ = select.select([q], [], [], timeout)
            if ready:
                arrived = time.monotonic()
                for pid in q.recv_ids():
                    d = delay_ms + (rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0)
                    heapq.heappush(pending, (arrived + max(0.0, d) / 1000.0, pid))
    finally:
        for _, pid in pending:  # never strand packets in the queue
            q.verdict(pid)
        q.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    run(a.queue, a.delay_ms, a.jitter_ms, a.seed)


if __name__ == "__main__":
    main()
