"""Benchmark the Cloudflare edge peer against FRR: time to Established, time to deliver N routes.

Builds a v2-direct lab (netns, unique name, state under a temp dir), starts the edge with
``scale_routes`` more-specifics, starts FRR (zebra + bgpd) in cust and measures:

* ``ready``: start_edge() -> control socket answers (ExaBGP + driver start-up);
* ``established``: FRR started -> both sessions Established at the edge;
* ``routes``: Established -> FRR holds every announced IPv4 prefix (15 + N);

Usage: sudo .venv/bin/python bench/bench_bgp.py [--routes 5000] [--runs 2] [--record]
(--record appends a line to bench/RESULTS.md). Needs root and FRR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRR = Path("/usr/lib/frr")


def _start_frr(lab, d: Path) -> None:
    plan = lab.plan
    lines = ["frr defaults traditional", f"router bgp {plan.sessions[0].cust_asn}",
             f" bgp router-id {next(s.cust_addr for s in plan.sessions if s.family == 4)}",
             " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast"]
    for s in plan.sessions:
        lines += [f" neighbor {s.cf_addr} remote-as {s.cf_asn}", f" neighbor {s.cf_addr} timers connect 2"]
        if s.customer_md5:
            lines.append(f" neighbor {s.cf_addr} password {s.customer_md5}")
    for fam in (4, 6):
        lines.append(f" address-family ipv{fam} unicast")
        lines += [f"  neighbor {s.cf_addr} activate" for s in plan.sessions if s.family == fam]
        lines.append(" exit-address-family")
    (d / "bgpd.conf").write_text("\n".join(lines) + "\n")
    (d / "zebra.conf").write_text("")
    for daemon in ("zebra", "bgpd"):
        lab.spawn("cust", f"bench-{daemon}", [
            str(FRR / daemon), "-u", "root", "-g", "frrvty", "--vty_socket", str(d), "-z", str(d / "zserv.api"),
            "-i", str(d / f"{daemon}.pid"), "-f", str(d / f"{daemon}.conf"), "--log", f"file:{d / daemon}.log"],
            log=d / f"{daemon}.out")
        deadline = time.monotonic() + 15
        while not (d / f"{daemon}.vty").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"FRR {daemon} did not start")
            time.sleep(0.02)


def _frr_v4_received(lab, d: Path) -> int:
    out = lab.run("cust", ["vtysh", "--vty_socket", str(d), "-c", "show bgp ipv4 unicast summary json"],
                  check=False).stdout
    peers = json.loads(out or "{}").get("peers", {})
    return sum(p.get("pfxRcd", 0) for p in peers.values() if p.get("state") == "Established")


def run_once(n_routes: int) -> dict[str, float]:
    from cnilab.sim.edge import client_for, start_edge, wait_ready
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    plan = build_plan(load_topology(ROOT / "topologies" / "v2-direct.yml"), lab=f"b-{uuid.uuid4().hex[:6]}")
    frr_dir = Path(tempfile.mkdtemp(prefix="cnilab-bfrr-", dir="/tmp"))
    try:
        with Lab.create(plan, daemons=False) as lab:
            t0 = time.monotonic()
            start_edge(lab, scale_routes=n_routes)
            wait_ready(lab, 60)
            t_ready = time.monotonic()
            _start_frr(lab, frr_dir)
            t_frr = time.monotonic()
            client_for(lab).wait_established(timeout=60)
            t_est = time.monotonic()
            want = 15 + n_routes
            while _frr_v4_received(lab, frr_dir) < want:
                if time.monotonic() - t_est > 300:
                    raise RuntimeError(f"FRR did not receive {want} routes within 300 s")
                time.sleep(0.05)
            t_routes = time.monotonic()
    finally:
        shutil.rmtree(frr_dir, ignore_errors=True)
    return {"ready": t_ready - t0, "established": t_est - t_frr, "routes": t_routes - t_est}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_bgp needs root (network namespaces)")
    state = tempfile.mkdtemp(prefix="cnilab-bench-")
    os.environ["CNILAB_STATE_DIR"] = state
    try:
        runs = [run_once(args.routes) for _ in range(args.runs)]
    finally:
        shutil.rmtree(state, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    line = (f"- bench_bgp ({time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
            f"median of {args.runs}): edge ready {med['ready']:.2f} s; FRR start -> Established (v4+v6, MD5) "
            f"{med['established']:.2f} s; {15 + args.routes} IPv4 routes delivered to FRR "
            f"{med['routes']:.2f} s after Established ({(15 + args.routes) / max(med['routes'], 1e-9):.0f} "
            "routes/s)")
    for i, r in enumerate(runs):
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.items()))
    print(line)
    if args.record:
        results = ROOT / "bench" / "RESULTS.md"
        heading = "## BGP edge peer (bench/bench_bgp.py)"
        prefix = "" if results.exists() and heading in results.read_text() else f"\n{heading}\n\n"
        with open(results, "a") as fh:
            fh.write(prefix + line + "\n")


if __name__ == "__main__":
    main()
