"""Benchmark: BFD detection time of our speaker against the RFC 5880 6.8.4 figure.

Why: the whole point of BFD on a CNI is sub-second failover, and the RFC figure (remote multiplier
x max(local required min RX, remote desired min TX)) is what an engineer plans with. This measures
what the asyncio speaker actually delivers, in two ways per run:

* ``from_last_rx``: Down time minus the arrival of the last valid packet. The RFC figure is exactly
  this quantity, so the ratio should be ~1.00 (anything above is timer/loop latency).
* ``from_cut``: Down time minus the moment the ``nft`` command that blackholes UDP 3784 in our
  namespace returned (the drop is certainly active then; it may have started a few ms earlier). It
  is shorter than the figure because part of an interval had already passed at the cut: with
  jitter it lies between about (mult-1)/mult and 1 of the figure.

Setup: two network namespaces joined by a veth, one speaker in each (same process, sockets opened
in each namespace), both at the same timers. Needs root. Usage::

    .venv/bin/python bench/bench_bfd.py [--runs 10] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnilab.sim.edge.bfd import BfdSessionInfo, BfdSpeaker

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NFT_DROP = "table inet bfdbench {\n chain in {\n  type filter hook input priority 0;\n  udp dport 3784 drop\n }\n}\n"


def _ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], check=check, capture_output=True, timeout=20)


class NsPair:
    """Two namespaces and a veth, deleted on exit whatever happens."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.a, self.b = f"bfdb-{tag}-a", f"bfdb-{tag}-b"
        self.if_a, self.if_b = f"bba{tag}", f"bbb{tag}"

    def __enter__(self) -> NsPair:
        try:
            _ip("netns", "add", self.a)
            _ip("netns", "add", self.b)
            _ip("link", "add", self.if_a, "netns", self.a, "type", "veth", "peer", "name", self.if_b, "netns", self.b)
            for ns, ifn, addr in ((self.a, self.if_a, "10.214.0.1/30"), (self.b, self.if_b, "10.214.0.2/30")):
                _ip("-n", ns, "addr", "add", addr, "dev", ifn)
                _ip("-n", ns, "link", "set", ifn, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.a, self.b):
            _ip("netns", "del", ns, check=False)

    def cut(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.a, "nft", "-f", "-"], input=NFT_DROP, text=True, check=True,
                       timeout=10)

    def heal(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.a, "nft", "delete", "table", "inet", "bfdbench"],
                       capture_output=True, timeout=10)


async def _wait(pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("BFD state not reached")
        await asyncio.sleep(0.01)


async def measure(pair: NsPair, tx: int, mult: int, runs: int) -> dict[str, object]:
    downs: list[BfdSessionInfo] = []
    cut_at: list[float] = []
    rfc: list[float] = []

    def on_change(info: BfdSessionInfo, old: str, new: str) -> None:
        if new == "Down" and old == "Up":
            downs.append(info)

    async with BfdSpeaker(on_change, netns=pair.a) as sa, BfdSpeaker(netns=pair.b) as sb:
        ka = sa.add_session("10.214.0.1", "10.214.0.2", tx, tx, mult)
        sb.add_session("10.214.0.2", "10.214.0.1", tx, tx, mult)
        for _ in range(runs):
            await _wait(lambda: sa.session(ka).state == "Up" and not sa.session(ka).poll_active, 10)
            await asyncio.sleep(3 * tx / 1000)  # a few steady-state intervals before the cut
            n = len(downs)
            rfc.append(sa.session(ka).detection_ms)
            await asyncio.to_thread(pair.cut)
            cut_at.append(time.time())  # the drop rule is certainly active from here on
            await _wait(lambda n=n: len(downs) > n, 5)
            await asyncio.to_thread(pair.heal)
    assert len(set(rfc)) == 1, f"detection time changed between runs: {rfc}"
    assert all(d.local_diag == 1 for d in downs), "every Down must carry diag 1 (detection time expired)"
    from_rx = [(d.last_change - (d.last_rx or d.last_change)) * 1000 for d in downs]
    from_cut = [(d.last_change - c) * 1000 for d, c in zip(downs, cut_at, strict=True)]
    return {
        "timers": f"{tx}x{mult}",
        "rfc_ms": rfc[0],
        "runs": runs,
        "from_last_rx": from_rx,
        "from_cut": from_cut,
    }


async def cpu_cost(pair: NsPair, sessions: int, tx: int, seconds: float) -> dict[str, float]:
    """CPU of both ends for ``sessions`` sessions at ``tx`` ms, all Up (one process, one loop).

    Why: the edge peer runs every interconnect's BFD in the driver's asyncio loop, so the per-session
    cost tells how many interconnects one edge process can carry before timers slip.
    """
    for i in range(sessions):
        _ip("-n", pair.b, "addr", "add", f"10.215.{i // 250}.{i % 250 + 2}/16", "dev", pair.if_b)
    _ip("-n", pair.a, "addr", "add", "10.215.255.1/16", "dev", pair.if_a)
    async with BfdSpeaker(netns=pair.a) as sa, BfdSpeaker(netns=pair.b) as sb:
        for i in range(sessions):
            peer = f"10.215.{i // 250}.{i % 250 + 2}"
            sa.add_session("10.215.255.1", peer, tx, tx, 3)
            sb.add_session(peer, "10.215.255.1", tx, tx, 3)
        await _wait(lambda: all(x.state == "Up" and not x.poll_active for x in sa.sessions() + sb.sessions()), 30)
        c0, t0 = time.process_time(), time.monotonic()
        downs0 = sum(1 for x in sa.sessions() if x.state != "Up")
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.monotonic() - t0
        flaps = sum(1 for x in sa.sessions() + sb.sessions() if x.state != "Up") - downs0
        pkts = sum(x.tx for x in sa.sessions() + sb.sessions())
    return {"sessions": sessions, "tx": tx, "cpu_pct": 100 * cpu / wall, "flaps": flaps, "pkts": pkts}


def _stats(values: list[float], rfc: float) -> str:
    ratios = [v / rfc for v in values]
    return (f"{statistics.mean(values):7.1f} ms (min {min(values):.1f}, max {max(values):.1f}) ratio "
            f"{statistics.mean(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--sessions", type=int, default=100, help="sessions for the CPU measurement")
    ap.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_bfd: needs root (network namespaces)", file=sys.stderr)
        return 2
    results = []
    with NsPair() as pair:
        for tx, mult in ((300, 3), (50, 3)):
            res = asyncio.run(measure(pair, tx, mult, args.runs))
            results.append(res)
        cost = asyncio.run(cpu_cost(pair, args.sessions, 50, 5.0))
    lines = [
        f"## BFD detection time ({time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{os.cpu_count()} cores, bench/bench_bfd.py --runs {args.runs})",
        "",
        "Our speaker vs our speaker across a veth between two namespaces; link cut by an nftables drop "
        "of UDP 3784 on the measuring side. Ratio = measured / RFC 5880 6.8.4 detection time.",
        "",
        "| timers | RFC figure | Down - last packet received | Down - link cut |",
        "|---|---|---|---|",
    ]
    for r in results:
        rfc = float(r["rfc_ms"])  # type: ignore[arg-type]
        lines.append(f"| {r['timers']} | {rfc:.0f} ms | {_stats(r['from_last_rx'], rfc)} | "  # type: ignore[arg-type]
                     f"{_stats(r['from_cut'], rfc)} |")  # type: ignore[arg-type]
    lines += ["", f"CPU, both ends in one asyncio loop: {cost['sessions']} sessions x 2 ends at "
              f"{cost['tx']}x3 = {cost['cpu_pct']:.1f} % of one core over 5 s; sessions not Up at the end: "
              f"{cost['flaps']}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        with open(RESULTS, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
