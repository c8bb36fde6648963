"""Benchmark: TCP throughput through the userspace GRE tunnel vs the plain veth between the same nodes.

Why: the v1 dataplane rides GRE, and on kernels without ip_gre every byte of lab traffic crosses
the userspace endpoint; the lab is only credible for throughput tests (1 Gbit/s per GRE tunnel is
the documented Magic Transit rate) if the endpoint carries at least that. This builds two
namespaces joined by a veth with the interconnect /31, starts both endpoints exactly as a lab does
(:func:`cnilab.sim.dataplane.gre.start_userspace_gre`), runs iperf3 over the veth and then over the
tunnel, prints the numbers and appends a GRE section to bench/RESULTS.md.

Run as root: ``.venv/bin/python bench/bench_gre.py [--seconds 5] [--no-write]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from cnilab.sim.dataplane import gre
from cnilab.sim.facts import load_facts
from cnilab.sim.runtime.process import ProcessRecord, spawn

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## GRE (bench/bench_gre.py)\n"
CF_OUTER, CUST_OUTER = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11")
CF_INNER, CUST_INNER = IPv4Interface("10.212.0.0/31"), IPv4Interface("10.212.0.1/31")


def sh(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=timeout)


@contextlib.contextmanager
def two_nodes() -> Iterator[tuple[str, str]]:
    """cf and cust namespaces joined by a veth carrying the /31; always deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    cf, cust = f"cnilab-b-gre-{tag}-a", f"cnilab-b-gre-{tag}-b"
    try:
        for ns in (cf, cust):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"bg{tag}a", "netns", cf, "type", "veth", "peer", "name", f"bg{tag}b", "netns", cust)
        for ns, dev, addr in ((cf, f"bg{tag}a", CF_OUTER), (cust, f"bg{tag}b", CUST_OUTER)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/31", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield cf, cust
    finally:
        for ns in (cf, cust):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def iperf(server_ns: str, client_ns: str, addr: str, seconds: int, reverse: bool = False) -> float:
    """Gbit/s received by the iperf3 receiver, TCP, one stream."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # wait for the listener instead of sleeping a fixed time
            probe = subprocess.run(["ip", "netns", "exec", server_ns, "ss", "-Htln", f"src {addr}:5201"],
                                   capture_output=True, text=True, check=False)
            if probe.stdout.strip():
                break
            time.sleep(0.05)
        args = ["ip", "netns", "exec", client_ns, "iperf3", "-c", addr, "-t", str(seconds), "-J"]
        out = sh(*args, *(["-R"] if reverse else []), timeout=seconds + 30).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def busy_core(on: bool) -> Iterator[None]:
    """One process spinning on the CPU for the duration (the 'one core busy' condition), or nothing."""
    if not on:
        yield
        return
    hog = subprocess.Popen(["python3", "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@contextlib.contextmanager
def tunnel(cf: str, cust: str, mtu: int, tmp: str, offload: bool) -> Iterator[None]:
    """Both endpoints as a lab starts them; ``offload=False`` adds ``--no-offload`` (the old path)."""
    records: list[ProcessRecord] = []
    try:
        for ns, local, remote, inner in ((cf, CF_OUTER, CUST_OUTER, CF_INNER),
                                         (cust, CUST_OUTER, CF_OUTER, CUST_INNER)):
            log = Path(tmp) / f"{ns}-{offload}.log"
            extra = [] if offload else ["--no-offload"]
            records.append(gre.start_userspace_gre(
                lambda name, argv, log=log, ns=ns, extra=extra: spawn(name, ns, [*argv, *extra], log),
                f"/run/netns/{ns}", "gre0", local, remote, inner, mtu, log))
        yield
    finally:
        for rec in records:
            rec.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    parser.add_argument("--idle-only", action="store_true", help="skip the 'one core busy' runs")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_gre needs root (network namespaces)")
    facts = load_facts()
    mtu = int(facts.physical_mtu.value) - facts.overhead(["gre", "ipv4"])
    mode, reason = gre.gre_mode("userspace")
    rows: list[str] = []
    loads: list[str] = []
    met: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-gre-") as tmp, two_nodes() as (cf, cust):
        for busy in (False,) if opts.idle_only else (False, True):
            goal = 1.0 if busy else 2.0
            with busy_core(busy):
                veth = iperf(cf, cust, str(CF_OUTER), opts.seconds)
                figures = {}
                for offload in (True, False):
                    with tunnel(cf, cust, mtu, tmp, offload):
                        figures[offload] = (iperf(cf, cust, str(CF_INNER.ip), opts.seconds),
                                            iperf(cf, cust, str(CF_INNER.ip), opts.seconds, reverse=True))
                loads.append(", ".join(f"{x:.1f}" for x in os.getloadavg()))
            up, down = figures[True]
            old_up, old_down = figures[False]
            met.append(min(up, down) >= goal)
            rows.append(f"| {'one core busy' if busy else 'idle'} | {veth:.2f} | {up:.2f} / {down:.2f} | "
                        f"{up / veth:.2f} / {down / veth:.2f} | {old_up:.2f} / {old_down:.2f} | "
                        f">= {goal:.0f} Gbit/s: {'met' if met[-1] else 'NOT met'} |")
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}, host: {platform.node()}, kernel {platform.release()}, "
        f"{os.cpu_count()} CPUs, load average after each condition {' / '.join(loads)} (shared machine); "
        f"iperf3 TCP, 1 stream, {opts.seconds} s per figure; tunnel MTU {mtu}",
        f"- mode: {mode} ({reason}); offload = TUN TSO/checksum offload + sendmmsg + receive-side merge "
        "(the default); plain = `--no-offload`, one packet per syscall, same run",
        "- one core busy: a `python3 -c 'while True: pass'` spinning during the whole condition",
        "",
        "| condition | veth (Gbit/s) | GRE cust->cf / cf->cust (Gbit/s) | ratio to veth | plain endpoint "
        "(Gbit/s) | goal |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))
    if not opts.no_write:
        write_results(lines)


def write_results(lines: list[str]) -> None:
    """Replace the GRE section of RESULTS.md (or append it); other sections belong to other benches."""
    import sys

    sys.path.insert(0, str(RESULTS.parents[1]))
    from bench.results import write_section

    write_section(SECTION.rstrip("\n"), lines, RESULTS)


if __name__ == "__main__":
    main()
