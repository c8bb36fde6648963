"""Benchmark: Magic tunnel failover time per health-check rate, emulator against simulator.

Why: a trainer sweeping the rate quotes the failover time each rate buys; the emulator's figure
(real probes through real tunnels) must match the simulator's model. The CNI tunnel is blackholed
(scenario cni-fails-to-backup) and the time until the edge steers 198.51.100.0/24 to the internet
GRE backup is taken from the edge daemon's own route-change record. The anchor is the simulator's
mean over 200 probe phases for the same intervals; the ratio emulator median / simulator mean is
reported. Intervals are scaled (high 0.5 s, mid 1 s, low 2 s) so each run settles in a minute.

Run as root: ``.venv/bin/python bench/bench_magic.py [--runs 3] [--no-write]``; replaces the section
``## Magic tunnel failover (bench/bench_magic.py)`` of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnilab.sim.magic.emulate import emulate, scenario_lab
from cnilab.sim.magic.scenario import load_scenario
from cnilab.sim.magic.simulate import sweep

from bench.results import host_line, run_args, write_section

HEADER = "## Magic tunnel failover (bench/bench_magic.py)"
SCENARIO = Path(__file__).resolve().parents[1] / "topologies" / "magic-scenarios" / "cni-fails-to-backup.yml"
INTERVALS = {"high": 0.5, "mid": 1.0, "low": 2.0}
MOVE_STEP = 2


def main() -> None:
    a = run_args(__doc__, 3)
    lines = [f"{host_line()}, 2 CPUs (shared); "
             f"{a.runs} runs per rate; fault = blackhole on the CNI tunnel; time to traffic on the backup.", "",
             "| rate (interval) | simulator min / mean / max | emulator median (min-max) | ratio median / sim mean |",
             "|---|---|---|---|"]
    for rate, iv in INTERVALS.items():
        sc = load_scenario(SCENARIO)
        sc.rate, sc.intervals = rate, dict(INTERVALS)  # type: ignore[assignment]
        sim = next(s for s in sweep(sc, 200) if s.step == MOVE_STEP)
        got = []
        with tempfile.TemporaryDirectory(prefix="mgb-") as tmp:
            os.environ["CNILAB_STATE_DIR"] = tmp
            with scenario_lab(sc) as lab:
                for _ in range(a.runs):
                    run = emulate(sc, lab)
                    m = run.steps[MOVE_STEP].measured_s
                    if run.passed and m is not None:
                        got.append(m)
        if got:
            med = statistics.median(got)
            lines.append(f"| {rate} ({iv:g} s) | {sim.min_s:.2f} / {sim.mean_s:.2f} / {sim.max_s:.2f} s | "
                         f"{med:.2f} s ({min(got):.2f}-{max(got):.2f}) | {med / sim.mean_s:.2f} |")
        else:
            lines.append(f"| {rate} ({iv:g} s) | {sim.min_s:.2f} / {sim.mean_s:.2f} / {sim.max_s:.2f} s | no run "
                         "passed | - |")
        print(lines[-1], flush=True)
    if not a.no_write:
        write_section(HEADER, lines)


if __name__ == "__main__":
    main()
