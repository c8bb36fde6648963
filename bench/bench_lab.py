"""Benchmark: time ``up`` (to ready) and ``down`` for every shipped topology.

Why: a rehearsal lab is used interactively and in CI; the target is a v1 lab up in under 3 s.
Daemons are started when the edge/router modules exist (``cnilab.sim.edge.start_edge``,
``cnilab.sim.routers.start_customer``), otherwise the dataplane alone is timed, and the output says which.
Each lab uses a throw-away state dir and a unique name, and is removed even on failure.

With daemons, each v1-gre run is preceded by the anchor (bench/anchor_frr.py: two FRRs in plain
namespaces, eBGP+MD5+BFD 300x3 over a /31 veth) so the ready-time ratio is taken under the same load
(issue 16); a bring-up in which a session flapped is refused rather than timed.

Run as root: ``.venv/bin/python bench/bench_lab.py [--runs 3] [--only v1-gre] [--no-daemons] [--no-write]``.
The section ``## Lab up/down (bench/bench_lab.py)`` of bench/RESULTS.md is replaced in place.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.` helpers when run as a script

RESULTS = Path(__file__).with_name("RESULTS.md")
TOPOS = Path(__file__).resolve().parents[1] / "topologies"
HEADER = "## Lab up/down (bench/bench_lab.py)"


def daemons_available() -> bool:
    def has(module: str, attr: str) -> bool:
        if importlib.util.find_spec(module) is None:
            return False
        return hasattr(importlib.import_module(module), attr)

    return has("cnilab.sim.edge", "start_edge") and has("cnilab.sim.routers", "start_customer")


def time_one(topology: Path, daemons: bool) -> tuple[float, float | None, float | None, float]:
    """(up: namespaces, links, tunnels, daemons started and the edge answering; Established;
    BFD Up at the configured timers (None without BFD); down)."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    plan = build_plan(load_topology(topology), f"b-{uuid.uuid4().hex[:8]}")
    est = bfd = None
    t0 = time.monotonic()
    with Lab.create(plan, daemons=daemons) as lab:
        up = time.monotonic() - t0
        if daemons:
            from cnilab.sim.checks import wait_bfd_at_timers
            from cnilab.sim.edge.control import EdgeClient

            edge = EdgeClient(lab.state.control["edge"])
            edge.wait_established(timeout=60)
            est = time.monotonic() - t0
            if any(x.bfd for x in plan.sessions):
                wait_bfd_at_timers(edge, plan, 30, 0.05)
                bfd = time.monotonic() - t0
            # A ready time that hides a reset is no ready time: refuse runs where a session went
            # Established twice or BFD fell back from Up (e.g. two BFD sessions for one peer).
            ev = edge.events()
            ups = [e for e in ev if e.kind == "bgp-fsm" and e.detail.endswith("Established")]
            downs = [e for e in ev if e.kind == "bfd" and "Up -> Down" in e.detail]
            if len(ups) != len(plan.sessions) or downs:
                raise RuntimeError(f"{topology.stem}: sessions flapped during bring-up: "
                                   f"{[e.detail for e in ups + downs]}")
        lab.detach()
    t1 = time.monotonic()
    lab.destroy()
    return up, est, bfd, time.monotonic() - t1


def write_section(lines: list[str]) -> None:
    from bench.results import write_section as write

    write(HEADER, lines, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-daemons", action="store_true", help="time the dataplane only")
    parser.add_argument("--only", help="one topology stem, e.g. v1-gre")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update RESULTS.md")
    args = parser.parse_args()
    daemons = daemons_available() and not args.no_daemons
    why = ("on (edge peer + customer router)" if daemons else
           "off (" + ("--no-daemons" if args.no_daemons else "edge/router hooks not available") + ")")
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-") as state:
        os.environ["CNILAB_STATE_DIR"] = state
        lines = [f"{time.strftime('%Y-%m-%d')}, kernel {platform.release()}, {os.cpu_count()} CPUs, daemons {why}, "
                 f"median of {args.runs} runs, netns backend.", "",
                 "| topology | up to ready (s) | to Established (s) | to BFD Up at configured timers (s) "
                 "| down (s) | runs up (s) |", "|---|---|---|---|---|---|"]

        def med(xs: list[float | None]) -> str:
            vals = [x for x in xs if x is not None]
            return f"{statistics.median(vals):.2f}" if vals else "-"

        anchors: list[float] = []
        v1_ready: list[float] = []
        for topo in sorted(t for t in TOPOS.glob("*.yml") if not args.only or t.stem == args.only):
            ups, ests, bfds, downs = [], [], [], []
            for _ in range(args.runs):
                if daemons and topo.stem == "v1-gre":  # the anchor interleaved with the lab: same load
                    from bench.anchor_frr import frr_pair

                    with frr_pair() as t:
                        anchors.append(t)
                u, e, b, d = time_one(topo, daemons)
                ups.append(u)
                ests.append(e)
                bfds.append(b)
                downs.append(d)
            row = (f"| {topo.stem} | {med(ups)} | {med(ests)} | {med(bfds)} | {med(downs)} | "
                   f"{', '.join(f'{u:.2f}' for u in ups)} |")
            print(row, flush=True)
            lines.append(row)
            if topo.stem == "v1-gre":
                v1_ready = [b for b in bfds if b is not None]
    lines += ["", "Target: v1 lab (v1-gre) up in under 3 s."]
    if anchors and v1_ready:
        ratio = statistics.median(v1_ready) / statistics.median(anchors)
        runs = ", ".join(f"{x:.2f}" for x in v1_ready)
        ready = ("Ready time v1-gre (`up` start to customer v4+v6 Established and BFD Up at 300x3): "
                 f"median {statistics.median(v1_ready):.2f} s ({runs})")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines += ["", f"load average at the end: {load} (shared 2-core machine)",
                  ready,
                  f"Anchor, same run, interleaved: two FRRs in plain netns, eBGP+MD5+BFD 300x3 over a /31 veth "
                  f"(bench/anchor_frr.py): median {statistics.median(anchors):.2f} s "
                  f"({', '.join(f'{x:.2f}' for x in anchors)})",
                  f"Ratio {ratio:.2f}x (goal <= 1.3x)"]
        print("\n".join(lines[-4:]), flush=True)
    if not args.no_write:
        write_section(lines)


if __name__ == "__main__":
    main()
