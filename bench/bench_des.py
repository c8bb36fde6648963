"""Benchmark the discrete-event simulator.

1. Scenario-seconds simulated per wall-second: the BFD failover scenario stretched to one hour
   (BFD 300 ms on two links, keepalives, and 100 pps of traffic for the first ~30 s), and the same
   hour with traffic at 100 pps all along.
2. A sweep of 1,000 timer settings (BFD tx x rx x multiplier on both EWR links) of the failover
   scenario: scenarios per second.

Run: .venv/bin/python bench/bench_des.py [--append]   (--append adds the results to bench/RESULTS.md)
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from cnilab.sim.scenario.executor import open_sim
from cnilab.sim.scenario.loader import load_scenario
from cnilab.sim.scenario.runner import run_scenario
from cnilab.sim.scenario.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "topologies" / "scenarios" / "ha-failover-bfd.yml"


def _stretched(tmp: Path, keep_traffic: bool) -> Path:
    text = SCEN.read_text().replace("../ha-three-site.yml", str(ROOT / "topologies" / "ha-three-site.yml"))
    tail = "  - do: wait\n    duration: 3600s\n" if keep_traffic else "  - do: stop_traffic\n"
    text = text.replace("end_after: 1s", "").rstrip() + "\n" + tail + "end_after: 1h\n"
    path = tmp / f"long-{keep_traffic}.yml"
    path.write_text(text)
    return path


def bench_long(path: Path) -> tuple[float, float, int]:
    loaded = load_scenario(path)
    started = time.perf_counter()
    with open_sim(loaded, 1) as ex:
        report = run_scenario(loaded, ex, 1)
        events = ex.world.engine.events
    wall = time.perf_counter() - started
    assert report.passed
    return report.duration, wall, events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--sweep-values", type=int, default=10, help="values per axis (3 axes; 10 -> 1,000)")
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for keep in (False, True):
            dur, wall, events = bench_long(_stretched(Path(tmp), keep))
            label = "1 h, traffic all along (100 pps)" if keep else "1 h, traffic for the first 30 s"
            lines.append(f"| {label} | {dur:.0f} s | {wall:.2f} s | {dur / wall:,.0f} x | {events / wall:,.0f} ev/s |")
    n = args.sweep_values
    step = 50
    specs = [f"ewr1+ewr2.bfd.tx_ms=50:{50 + step * (n - 1)}:{step}",
             f"ewr1+ewr2.bfd.rx_ms=50:{50 + step * (n - 1)}:{step}",
             f"ewr1+ewr2.bfd.multiplier=1:{n}:1"]
    loaded = load_scenario(SCEN)
    started = time.perf_counter()
    rows = sweep(loaded, specs, 1)
    wall = time.perf_counter() - started
    fo = [r.failover_s for r in rows if r.failover_s is not None]
    sweep_line = (f"| sweep of {len(rows)} BFD timer settings (tx x rx x multiplier), ha-failover-bfd | "
                  f"~30 s each | {wall:.2f} s | {len(rows) / wall:.1f} scenarios/s | "
                  f"{sum(r.passed for r in rows)} passed; failover {min(fo):.3f}-{max(fo):.3f} s |")
    head = ["", f"## DES ({time.strftime('%Y-%m-%d')}, {platform.python_implementation()} "
                f"{platform.python_version()}, {platform.machine()}, single process)", "",
            "| run | scenario time | wall | speed | notes |", "|---|---|---|---|---|"]
    out = "\n".join([*head, *lines, sweep_line]) + "\n"
    print(out)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write(out)


if __name__ == "__main__":
    main()
