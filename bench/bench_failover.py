"""Benchmark: failover convergence against the theoretical detection time, and probe run times.

Why: the figure a trainer quotes ("BFD moves traffic in under a second") must be measured, not
assumed. In the three-site lab EWR1 is blackholed under a 200 pps stream; the time until the
stream arrives on EWR2 is compared with the RFC 5880 detection time (multiplier x interval) for
BFD 300x3 and 50x3. Silent failures start at a random point of the BFD interval, so the expected
time after the cut lies between (multiplier - 1) x interval and multiplier x interval; the ratio is
reported against the full detection time. Also times the MTU and MSS probes on the v1 lab.

Run as root: ``.venv/bin/python bench/bench_failover.py [--runs 5] [--no-write]``; replaces the
section ``## Failover and probes (bench/bench_failover.py)`` of bench/RESULTS.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnilab.sim.probes.failover import measure_failover
from cnilab.sim.probes.mss import probe_mss
from cnilab.sim.probes.mtu import probe_mtu

from bench.results import host_line, run_args, write_section
from tests.labs import running_lab

HEADER = "## Failover and probes (bench/bench_failover.py)"


def _timers(tx: int, mult: int):
    def edit(topo):
        ics = [ic.model_copy(update={"bfd": ic.bfd.model_copy(update={"tx_ms": tx, "rx_ms": tx,
                                                                     "multiplier": mult})})
               if ic.bfd.enabled else ic for ic in topo.interconnects]
        return topo.model_copy(update={"interconnects": ics})
    return edit


def main() -> None:
    a = run_args(__doc__, 5)
    lines = [f"{host_line()}, 2 CPUs; "
             f"{a.runs} runs each; 200 pps streams inet -> origin (Cloudflare's switchover, read on the edge) and "
             "origin -> inet (the customer router's own, read on the customer); fault = blackhole on ewr1.", "",
             "| BFD | detection (RFC) | CF->customer: first packet on EWR2, median (min-max) | ratio | "
             "customer->CF: first packet on EWR2, median (min-max) | ratio |",
             "|---|---|---|---|---|---|"]
    for tx, mult in ((300, 3), (50, 3)):
        got: list[float] = []
        back: list[float] = []
        with tempfile.TemporaryDirectory(prefix="cnibench-") as tmp, \
                running_lab(Path(tmp), "ha-three-site.yml", edit=_timers(tx, mult)) as lab:
            for _ in range(a.runs):
                r = measure_failover(lab, "ewr1", "blackhole", rate_pps=200)
                if r.moved and r.first_packet_new_path_ms is not None:
                    got.append(r.first_packet_new_path_ms)
                d = next((d for d in r.directions if d.direction == "customer_to_cf"), None)
                if d is not None and d.moved and d.first_packet_new_path_ms is not None:
                    back.append(d.first_packet_new_path_ms)
                from cnilab.sim.edge.control import EdgeClient

                EdgeClient(lab.state.control["edge"]).wait_established(timeout=60)
                time.sleep(1)
        det = tx * mult
        if got:
            med = statistics.median(got)
            bmed = statistics.median(back) if back else None
            bcol = (f"{bmed:.0f} ms ({min(back):.0f}-{max(back):.0f}) | {bmed / det:.2f}" if bmed is not None
                    else "did not move | -")
            lines.append(f"| {mult}x{tx} ms | {det} ms | {med:.0f} ms ({min(got):.0f}-{max(got):.0f}) | "
                         f"{med / det:.2f} | {bcol} |")
        print(lines[-1])
    with tempfile.TemporaryDirectory(prefix="cnibench-") as tmp, running_lab(Path(tmp), "v1-gre.yml") as lab:
        t = time.monotonic()
        probe_mtu(lab)
        t_mtu = time.monotonic() - t
        t = time.monotonic()
        probe_mss(lab)
        t_mss = time.monotonic() - t
    lines += ["", f"Probe run times on v1-gre: MTU (IPv4 and IPv6, both directions, binary search + PMTUD + "
              f"non-DF check) {t_mtu:.2f} s; MSS (four real handshakes, IPv4 and IPv6) {t_mss:.2f} s."]
    print(lines[-1])
    if not a.no_write:
        write_section(HEADER, lines)


if __name__ == "__main__":
    main()
