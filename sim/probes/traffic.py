"""A sequenced UDP stream through the lab, and a sampler that tells which path carries it.

The stream is what failover is measured with: every datagram carries a sequence number, so the
receiver sees exactly which packets were lost, duplicated or reordered and when. The sampler reads
the edge's per-interface TX counters (netlink, in the edge's namespace) every few milliseconds, so
"which interconnect carries the traffic" is read off the dataplane, not inferred from BGP.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import select
import socket
import struct
import threading
import time

from cnilab.sim.probes.sockets import socket_in
from cnilab.sim.runtime.nsenter import in_netns
from pydantic import BaseModel
from pyroute2 import IPRoute

_HDR = struct.Struct("!Qd")
IN_FLIGHT_S = 0.3
"""A packet sent less than this long ago may still be on its way: it is not counted lost yet."""


class StreamStats(BaseModel):
    sent: int
    received: int
    lost: int
    duplicates: int
    reordered: int
    max_gap_ms: float
    gap_start: float | None
    gap_end: float | None


class UdpStream:
    """``with UdpStream(src_ns, dst_ns, dst_addr, rate) as s: ...`` - always stops its threads."""

    def __init__(self, src_netns: str, dst_netns: str, dst_addr: str, rate_pps: int = 200, size: int = 200) -> None:
        self.rate = rate_pps
        self.size = max(size, _HDR.size)
        self.rx = socket_in(dst_netns, socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind((dst_addr, 0))
        self.dst = (dst_addr, self.rx.getsockname()[1])
        self.tx = socket_in(src_netns, socket.AF_INET, socket.SOCK_DGRAM)
        self.arrivals: list[tuple[int, float]] = []
        self.sent = 0
        self.send_times: list[float] = []
        self._stop_send = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._recv, daemon=True)]

    def __enter__(self) -> UdpStream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending, give the packets in flight time to arrive, then stop receiving."""
        if not self._stop.is_set():
            self._stop_send.set()
            self._threads[0].join(timeout=2)
            time.sleep(IN_FLIGHT_S)
            self._stop.set()
            self._threads[1].join(timeout=2)
            self.tx.close()
            self.rx.close()

    def _send(self) -> None:
        interval = 1.0 / self.rate
        pad = b"\0" * (self.size - _HDR.size)
        start = time.monotonic()
        while not self._stop_send.is_set():
            due = start + self.sent * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with contextlib.suppress(OSError):  # no route during a failover is part of the test
                self.tx.sendto(_HDR.pack(self.sent, time.monotonic()) + pad, self.dst)
            self.send_times.append(time.monotonic())
            self.sent += 1

    def _recv(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.rx], [], [], 0.05)
            if r:
                data = self.rx.recv(65535)
                self.arrivals.append((_HDR.unpack_from(data)[0], time.monotonic()))

    def received_since(self, t: float) -> int:
        return sum(1 for _, at in self.arrivals if at >= t)

    def loss_since(self, t0: float) -> tuple[int, float]:
        """(packets lost among those sent at or after ``t0``, longest arrival gap ending after ``t0`` in ms).

        A failover is judged on what happened after the fault, not on a start-up gap (neighbour
        resolution on the first packets) that :meth:`stats` would report as the longest."""
        arr = list(self.arrivals)
        gap = max((t2 - t1 for (_, t1), (_, t2) in itertools.pairwise(arr) if t2 >= t0), default=0.0)
        first = bisect.bisect_left(self.send_times, t0)
        settled = self.sent
        if not self._stop.is_set():
            settled = bisect.bisect_right(self.send_times, time.monotonic() - IN_FLIGHT_S)
        got = {q for q, _ in arr}
        lost = sum(1 for q in range(first, settled) if q not in got)
        return lost, round(gap * 1000, 1)

    def stats(self) -> StreamStats:
        arr = list(self.arrivals)
        seqs = [s for s, _ in arr]
        uniq = set(seqs)
        reordered = sum(1 for a, b in itertools.pairwise(seqs) if b < a)
        gap, gs, ge = 0.0, None, None
        for (_, t1), (_, t2) in itertools.pairwise(arr):
            if t2 - t1 > gap:
                gap, gs, ge = t2 - t1, t1, t2
        # Packets sent in the last IN_FLIGHT_S (while the stream runs) may still arrive.
        settled = self.sent
        if not self._stop.is_set():
            cutoff = time.monotonic() - IN_FLIGHT_S
            settled = bisect.bisect_right(self.send_times, cutoff)
        got = sum(1 for q in uniq if q < settled)
        return StreamStats(sent=self.sent, received=len(uniq), lost=max(0, settled - got),
                           duplicates=len(seqs) - len(uniq), reordered=reordered,
                           max_gap_ms=round(gap * 1000, 1), gap_start=gs, gap_end=ge)


class PathSample(BaseModel):
    t: float
    deltas: dict[str, int]
    path: str | None


class PathSampler:
    """Samples TX packet counters of ``ifaces`` (name -> label) in one namespace every ``period``."""

    def __init__(self, netns: str, ifaces: dict[str, str], period: float = 0.01, min_pkts: int = 1) -> None:
        self.netns = netns
        self.ipr: IPRoute | None = None
        self.ifaces = ifaces
        self.period = period
        self.min_pkts = min_pkts
        self.samples: list[PathSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _counters(self) -> dict[str, int]:
        assert self.ipr is not None
        out = {}
        for link in self.ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name in self.ifaces:
                stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS")
                out[self.ifaces[name]] = stats["tx_packets"] if stats else 0
        return out

    def _run(self) -> None:
        # pyroute2 binds its socket to the thread that uses it: open it here, inside the namespace.
        with in_netns(self.netns):
            self.ipr = IPRoute()
        prev = self._counters()
        prev_t = time.monotonic()
        while not self._stop.wait(self.period):
            cur = self._counters()
            now = time.monotonic()
            deltas = {k: cur.get(k, 0) - prev.get(k, 0) for k in cur}
            # The threshold is a rate: a sample that comes late on a loaded machine covers more
            # time, so background packets (BFD, keepalives) on an idle path must not reach it.
            need = self.min_pkts * max(1.0, (now - prev_t) / self.period)
            prev, prev_t = cur, now
            top = max(deltas.items(), key=lambda kv: kv[1], default=(None, 0))
            self.samples.append(PathSample(t=now, deltas=deltas, path=top[0] if top[1] >= need else None))

    def __enter__(self) -> PathSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self.ipr is not None:
            self.ipr.close()

    def path_at(self, t0: float, t1: float, min_total: int = 1) -> str | None:
        """The label that carried most packets between t0 and t1, if it carried at least ``min_total``.

        Control traffic (a BGP keepalive, a neighbour solicitation) also moves the counters, so a
        path only counts when it carries a share of the stream.
        """
        tot: dict[str, int] = {}
        for s in self.samples:
            if t0 <= s.t <= t1:
                for k, v in s.deltas.items():
                    tot[k] = tot.get(k, 0) + v
        best = max(tot.items(), key=lambda kv: kv[1], default=(None, 0))
        return best[0] if best[1] >= max(1, min_total) else None

    def first_on(self, label: str, after: float, window: float, min_total: int) -> float | None:
        """Start of the first ``window`` after ``after`` in which ``label`` carried ``min_total`` packets."""
        samples = [s for s in self.samples if s.t >= after]
        for i, s in enumerate(samples):
            if not s.deltas.get(label):
                continue
            got = sum(x.deltas.get(label, 0) for x in samples[i:] if x.t <= s.t + window)
            if got >= min_total:
                return s.t
        return None
