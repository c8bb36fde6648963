"""Benchmark: the mock CNI API against Prism 5 serving the same OpenAPI file, side by side.

Why: a mock is only useful in a client's test suite if it is not the slow part. The anchor is
Stoplight Prism (``@stoplight/prism-cli@5``), the usual static mock of an OpenAPI document, run on
exactly the document cnilab serves at ``/openapi.json``. Prism answers one generated example per
request; cnilab answers from its SQLite store with real objects (one interconnect, 100 CNIs,
the slot inventory), through authentication, rate limiting and the SDK-exact bodies.

Both servers are measured in the same run with ``wrk -t2 -c32 -d10s --latency`` on the same three
requests (issue 16): GET one interconnect, a list of 100 CNIs, the slots list, in the order A B B A
so a change of load hits both alike. The machine may be shared: the load average is recorded with
the figures, and the ratios are what matter.

Prism is installed from the npm registry into a cache directory on first use (skipped, with the
reason, where npm or wrk is missing). cnilab runs as ``cnilab api`` in its own process, as users
run it (access log off, the default).

Run: ``.venv/bin/python bench/bench_api.py [--seconds 10] [--connections 32] [--no-write]``;
replaces the section ``## mock CNI API vs Prism (bench/bench_api.py)`` of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnilab.mock_api.config import DEV_ACCOUNT, DEV_EMAIL, DEV_KEY, DEV_TOKEN
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.openapi import client_document
from cnilab.mock_api.store import InterconnectRow, Store
from cnilab.sim.runtime.process import stop_popen

from bench.results import write_section

REPO = Path(__file__).resolve().parents[1]
HEADER = "## mock CNI API vs Prism (bench/bench_api.py)"
PRISM_PACKAGE = "@stoplight/prism-cli@5"
# Every request carries all three credentials: Prism enforces the reference's security
# requirement (token and email + key together); cnilab uses the token.
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}", "X-Auth-Email": DEV_EMAIL, "X-Auth-Key": DEV_KEY}
IC_NAME = "ewr01-bench"
# (row, path under /accounts/{account}/cni, goal ratio, p99 goal in ms or None) - issue 16
ROWS = [("GET one interconnect", f"interconnects/{IC_NAME}", 1.5, 50.0),
        ("list of 100 CNIs (real objects)", "cnis?limit=100", 1.0, None),
        ("slots list", "slots", 1.5, None)]


class Skip(Exception):
    """The benchmark cannot run here; the message says why."""


def prism_bin(cache: Path) -> Path:
    """Prism's CLI from the npm registry, installed once into ``cache``."""
    binary = cache / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise Skip("npm is not installed: Prism (the anchor) cannot be installed")
    cache.mkdir(parents=True, exist_ok=True)
    print(f"installing {PRISM_PACKAGE} into {cache} ...", flush=True)
    r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), PRISM_PACKAGE],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not binary.exists():
        raise Skip(f"npm install {PRISM_PACKAGE} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return binary


def seed(db: Path, n: int) -> None:
    """One interconnect and ``n`` CNIs written straight into SQLite (HTTP seeding would dominate)."""
    store = Store(db)
    try:
        ic = store.create_interconnect(InterconnectRow(name=IC_NAME, account=DEV_ACCOUNT, type="direct",
                                                       slot_id=slots()[0].id, speed="10G", vpr_id=str(uuid.uuid4())))
        rows = []
        for i in range(n):
            a = 0x0A000000 + 2 * i
            quad = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}"
            rows.append((str(uuid.uuid4()), DEV_ACCOUNT, ic.name, f"{quad}.{a & 255}/31", f"{quad}.{(a & 255) + 1}/31",
                         f"conduit-{i}", f"bench CNI {i}", 1476,
                         json.dumps({"customer_asn": 65000 + i % 500, "extra_prefixes": ["198.51.100.0/24"],
                                     "md5_key": None}),
                         "dynamic_route_exchange", str(uuid.uuid4())))
        conn = store._conn()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO cnis (id, account, interconnect, p2p_ip, cust_ip, conduit_name, description, "
                         "mtu, bgp, bgp_mode, tunnel_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
    finally:
        store.close()


def cold_list_ms(db: Path, n: int = 200) -> float:
    """In-process time of a 100-CNI list with every cache empty (the first list after a write):
    SQL, model, body and JSON for each item. The served lists above are cached between writes."""
    from cnilab.mock_api.routers.render import cni_cache

    store = Store(db)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            cni_cache().page_text(store.list_cnis(DEV_ACCOUNT, None, None, 0, 100))
        return (time.perf_counter() - t0) / n * 1000
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process(argv: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None,
            timeout: float = 120.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in its own process group until ``ready_url`` answers; always stop the group."""
    with log.open("w") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited ({proc.returncode}): {log.read_text()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, headers=AUTH, timeout=5)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not answer {ready_url} within {timeout:.0f}s")
            time.sleep(0.2)
        yield proc
    finally:
        stop_popen(proc)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, seconds: int, conns: int, pid: int | None = None) -> dict[str, float]:
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in AUTH.items():
        argv += ["-H", f"{k}: {v}"]
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else 0.0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:  # a fast error is not a result
        raise RuntimeError(f"{bad.group(1)} error responses from {url}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    done = re.search(r"(\d+) requests in", out)
    cpu_ms = 1000 * cpu / int(done.group(1)) if done and int(done.group(1)) else 0.0
    return {"rps": float(rps.group(1)), "p50_ms": _ms(p50.group(1)), "p99_ms": _ms(p99.group(1)), "cpu_ms": cpu_ms}


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    """Throughput averaged; latency percentiles: the worse run (a p99 is not averaged away)."""
    return {"rps": sum(r["rps"] for r in runs) / len(runs), "p50_ms": max(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs), "cpu_ms": sum(r["cpu_ms"] for r in runs) / len(runs)}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(seconds: int, conns: int, cache: Path) -> list[str]:
    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (packages.apt lists it)")
    prism = prism_bin(cache)
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-api-") as d:
        tmp = Path(d)
        spec = tmp / "openapi.json"  # the document cnilab serves at /openapi.json: the same file for both
        spec.write_text(json.dumps(client_document()))
        db = tmp / "api.sqlite3"
        seed(db, 100)
        cold = cold_list_ms(db)
        cfg = tmp / "api.yaml"
        cfg.write_text("rate_limit: {quota: 100000000, window_s: 300}\n")
        mine, theirs = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cnilab_base = f"http://127.0.0.1:{mine}/client/v4/accounts/{DEV_ACCOUNT}/cni"
        # Prism ignores the document's relative server path and serves the paths from the root
        prism_base = f"http://127.0.0.1:{theirs}/accounts/{DEV_ACCOUNT}/cni"
        results: list[tuple[str, float, float, dict[str, float], dict[str, float], str]] = []
        with process([sys.executable, "-m", "cnilab.sim.cli.main", "api", "--port", str(mine), "--db", str(db),
                      "--config", str(cfg)], tmp / "cnilab.log", f"{cnilab_base}/slots", env=env) as ours, \
                process([str(prism), "mock", "-h", "127.0.0.1", "-p", str(theirs), str(spec)], tmp / "prism.log",
                        f"{prism_base}/slots") as anchor:
            pids = {"cnilab": ours.pid, "prism": anchor.pid}
            for label, path, goal, p99_goal in ROWS:
                body = httpx.get(f"{cnilab_base}/{path}", headers=AUTH, timeout=30).json()
                if path.startswith("cnis"):
                    assert len(body["items"]) == 100, "the list row must serve 100 real CNIs"
                urls = {"cnilab": f"{cnilab_base}/{path}", "prism": f"{prism_base}/{path}"}
                for url in urls.values():  # warm-up (Node's JIT, Python's caches), not counted
                    run_wrk(url, 2, conns)
                before = load()
                # A B B A: a load change from colleagues' work hits both servers alike
                runs = {name: [] for name in urls}
                for name in ("cnilab", "prism", "prism", "cnilab"):
                    runs[name].append(run_wrk(urls[name], seconds, conns, pids[name]))
                a, b = (_mean(runs[n]) for n in ("cnilab", "prism"))
                results.append((label, goal, p99_goal or 0.0, a, b, f"{before} -> {load()}"))
                print(f"{label}: cnilab {a['rps']:.0f} req/s p99 {a['p99_ms']:.1f} ms {a['cpu_ms']:.2f} CPU ms/req | "
                      f"prism {b['rps']:.0f} req/s p99 {b['p99_ms']:.1f} ms {b['cpu_ms']:.2f} CPU ms/req | "
                      f"ratio {a['rps'] / b['rps']:.2f} (load {results[-1][5]})", flush=True)
    lines = [f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, host {platform.node()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}; `wrk -t2 -c{conns} -d{seconds}s`, same requests, both servers on "
             "127.0.0.1 in this run, order cnilab, Prism, Prism, cnilab after a 2 s warm-up each; req/s is the "
             "mean of the two runs, p50/p99 the worse run",
             "- anchor: Prism 5 (`prism mock`, static examples) on the same OpenAPI file cnilab serves; "
             "cnilab: `cnilab api` (one process, SQLite, 1 interconnect + 100 CNIs)",
             "- the machine is shared with other engineers' work: load averages (1, 5, 15 min) before -> after "
             "each row are given; compare ratios, not absolute figures. CPU ms/req (server process CPU time / "
             "requests served) hardly depends on how busy the machine is; ratio (CPU/req) is Prism's over cnilab's",
             "",
             "| request | cnilab req/s | p50 ms | p99 ms | CPU ms/req | Prism req/s | Prism p99 ms | Prism CPU ms/req "
             "| ratio (req/s) | ratio (CPU/req) | goal | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, goal, p99_goal, a, b, ld in results:
        ratio = a["rps"] / b["rps"]
        met = ratio >= goal and (not p99_goal or a["p99_ms"] < p99_goal)
        want = f">= {goal}x" + (f", p99 < {p99_goal:.0f} ms" if p99_goal else "")
        lines.append(f"| {label} | {a['rps']:.0f} | {a['p50_ms']:.1f} | {a['p99_ms']:.1f} | {a['cpu_ms']:.2f} | "
                     f"{b['rps']:.0f} | {b['p99_ms']:.1f} | {b['cpu_ms']:.2f} | {ratio:.2f}x | "
                     f"{b['cpu_ms'] / a['cpu_ms'] if a['cpu_ms'] else 0:.2f}x | "
                     f"{want}: {'met' if met else 'NOT met'} | {ld} |")
    lines.append(f"- lists are served from a cache keyed by the query and the store's version (any write, by any "
                 f"process, invalidates it); the first 100-CNI list after a write costs {cold:.2f} ms in-process "
                 "(SQL, models, bodies, JSON; measured here with every cache empty)")
    label, _, p99_goal, a, _, ld = results[0]
    lines += ["", f"- why the p99: with {conns} connections on one event loop a request waits at most for the "
              f"{conns - 1} ahead of it, {conns} x {a['cpu_ms']:.2f} CPU ms = {conns * a['cpu_ms']:.1f} ms of work; "
              f"the rest of the measured {a['p99_ms']:.1f} ms ({label}) is time the server was not scheduled "
              f"(2 wrk threads share the {os.cpu_count()} CPUs, load {ld.split(' -> ')[0]})"]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "cnilab" / "prism", help="where Prism is installed from npm")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()
    try:
        lines = measure(args.seconds, args.connections, args.cache)
    except Skip as exc:
        print(f"skipped: {exc}")
        lines = [f"- skipped on {dt.date.today()}: {exc}"]
    print("\n".join(lines))
    if not args.no_write:
        write_section(HEADER, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
