"""Benchmark: wall time of ``cnilab verify`` for a v1-gre change (both configs booted and observed).

Why: the point of verify is a CI answer faster than netdryrun's published 60-120 s per single dry
run; the target is under 45 s for *both* configs. The change is the one the tests use: a prepend of
198.51.100.0/24 toward Cloudflare, declared in the expect file. Anchor, measured in the same run:
one bare ``Lab.create`` to BGP Established with the same topology (what any verify must pay per
config), so the ratio says how much the observation adds on this machine at this load.

Run as root: ``.venv/bin/python bench/bench_verify.py [--runs 3] [--no-write]``; replaces the
``## cnilab verify (bench/bench_verify.py)`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HEADER = "## cnilab verify (bench/bench_verify.py)"
TOPO = REPO / "topologies" / "v1-gre.yml"
FULL = REPO / "topologies" / "v1-gre-transit.yml"
"""The whole observation: transit AS64500 and peer AS64501 recording, and the failover pulled on
each lab (ewr1 blackholed, both directions onto the internet backup)."""
CHANGE = "198.51.100.0/24 to ewr1 gains prepend 65010 65010"


def configs(d: Path, topo: Path = TOPO) -> tuple[Path, Path, Path]:
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology

    base = render_frr(build_plan(load_topology(topo), topo.stem))
    cand = base.replace("route-map CNILAB-FROM-CF-EWR1-V4 permit 5", "route-map PREPEND permit 10\n"
                        " set as-path prepend 65010 65010\nexit\n!\nroute-map CNILAB-FROM-CF-EWR1-V4 permit 5", 1)
    cand = cand.replace("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
                        "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n"
                        "  neighbor 192.0.2.10 route-map PREPEND out", 1)
    assert cand != base
    d = d / topo.stem
    d.mkdir(exist_ok=True)
    (d / "base.conf").write_text(base)
    (d / "cand.conf").write_text(cand)
    (d / "expect.txt").write_text(CHANGE + "\n")
    return d / "base.conf", d / "cand.conf", d / "expect.txt"


def time_verify(base: Path, cand: Path, expect: Path, parallel: bool, topo: Path = TOPO) -> float:
    from cnilab.sim.cli.main import app
    from typer.testing import CliRunner

    args = ["verify", "--topology", str(topo), "--baseline", str(base), "--candidate", str(cand), "--expect",
            str(expect)] + (["--parallel"] if parallel else [])
    t0 = time.monotonic()
    res = CliRunner().invoke(app, args)
    took = time.monotonic() - t0
    if res.exit_code != 0:
        raise SystemExit(f"verify exited {res.exit_code}:\n{res.output}")
    return took


def time_anchor() -> float:
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology import build_plan, load_topology

    plan = build_plan(load_topology(TOPO), f"b-{uuid.uuid4().hex[:6]}")
    t0 = time.monotonic()
    with Lab.create(plan) as lab:
        EdgeClient(lab.state.control["edge"]).wait_established(timeout=60)
        return time.monotonic() - t0


def main() -> None:
    from bench.results import run_args, write_section

    args = run_args(__doc__, 3)
    with tempfile.TemporaryDirectory(prefix="cnb-", dir="/tmp") as state:
        os.environ["CNILAB_STATE_DIR"] = state
        base, cand, expect = configs(Path(state))
        full = configs(Path(state), FULL)
        seq, par, anchor, whole = [], [], [], []
        for _ in range(args.runs):
            anchor.append(time_anchor())
            seq.append(time_verify(base, cand, expect, parallel=False))
            par.append(time_verify(base, cand, expect, parallel=True))
            whole.append(time_verify(*full, parallel=True, topo=FULL))
            print(f"anchor {anchor[-1]:.1f}s, verify {seq[-1]:.1f}s, --parallel {par[-1]:.1f}s, "
                  f"v1-gre-transit --parallel {whole[-1]:.1f}s", flush=True)
    m = statistics.median
    load = os.getloadavg()[0]
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M')}, kernel {platform.release()}, {os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end (the machine is shared), median of {args.runs} runs; change: `{CHANGE}` (declared).",
        "",
        "| what | median (s) | runs (s) | target |", "|---|---|---|---|",
        f"| `cnilab verify` v1-gre, both configs one after the other | {m(seq):.1f} | "
        f"{', '.join(f'{x:.1f}' for x in seq)} | < 45 s |",
        f"| `cnilab verify --parallel` (both labs side by side) | {m(par):.1f} | "
        f"{', '.join(f'{x:.1f}' for x in par)} | < 45 s |",
        f"| `cnilab verify --parallel` v1-gre-transit: + transit, peer, failover pulled on each lab | "
        f"{m(whole):.1f} | {', '.join(f'{x:.1f}' for x in whole)} | < 45 s |",
        f"| anchor: one lab up to BGP Established | {m(anchor):.1f} | {', '.join(f'{x:.1f}' for x in anchor)} | |",
        "",
        f"Ratio verify / (2 x anchor): {m(seq) / (2 * m(anchor)):.2f} sequential, {m(par) / (2 * m(anchor)):.2f} "
        "parallel. The rest of verify's time is the convergence hold window (>= 2 s per lab), the MTU/MSS probes "
        "and teardown. netdryrun publishes 60-120 s for one dry run.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(HEADER, lines)


if __name__ == "__main__":
    main()
