"""Benchmark the mock CNI API: requests/s and p50/p99 latency of list and get at 100 and 10,000 CNIs.

Uses wrk (Debian package) against 127.0.0.1 when installed, else a bounded httpx asyncio loop.
The server runs one uvicorn worker in this process; results are appended to bench/RESULTS.md.
Run: .venv/bin/python -m bench.bench_api [--seconds 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
from mock_api.inventory import slots
from mock_api.store import InterconnectRow, Store
from mock_api.testing import serve

RESULTS = Path(__file__).parent / "RESULTS.md"


def seed(db: Path, n: int) -> str:
    """Write one interconnect and ``n`` CNIs straight into SQLite (HTTP seeding would dominate the run)."""
    store = Store(db)
    try:
        ic = store.create_interconnect(InterconnectRow(name="ewr01-bench", account=DEV_ACCOUNT, type="direct",
                                                       slot_id=slots()[0].id, speed="10G", vpr_id=str(uuid.uuid4())))
        rows = []
        for i in range(n):
            a = 0x0A000000 + 2 * i
            p2p = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/31"
            cust = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{(a & 255) + 1}/31"
            rows.append((str(uuid.uuid4()), DEV_ACCOUNT, ic.name, p2p, cust, f"c{i}", "", 1476,
                         json.dumps({"customer_asn": 65000, "extra_prefixes": [], "md5_key": None}),
                         "dynamic_route_exchange", str(uuid.uuid4())))
        conn = store._conn()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO cnis (id, account, interconnect, p2p_ip, cust_ip, conduit_name, description, "
                         "mtu, bgp, bgp_mode, tunnel_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        return rows[n // 2][0]
    finally:
        store.close()


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def run_wrk(url: str, seconds: int, conns: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {DEV_TOKEN}", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses from {url}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def run_httpx(url: str, seconds: int, conns: int) -> dict[str, float]:
    async def main() -> dict[str, float]:
        lat: list[float] = []
        stop = time.monotonic() + seconds
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {DEV_TOKEN}"}) as c:
            async def worker() -> None:
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    r = await c.get(url)
                    r.raise_for_status()
                    lat.append((time.perf_counter() - t) * 1000)
            await asyncio.gather(*(worker() for _ in range(conns)))
        lat.sort()
        return {"rps": len(lat) / seconds, "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(len(lat) * 0.99)]}
    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--sizes", default="100,10000")
    args = ap.parse_args()
    tool = "wrk" if shutil.which("wrk") else "httpx-asyncio"
    runner = run_wrk if tool == "wrk" else run_httpx
    lines = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="cnilab-bench-") as d:
            db = Path(d) / "bench.sqlite3"
            cni_id = seed(db, n)
            settings = load_settings(db=db, rate_limit={"quota": 10_000_000, "window_s": 300})
            with serve(settings) as url:
                base = f"{url}/client/v4/accounts/{DEV_ACCOUNT}/cni"
                for op, target in (("list (limit 100)", f"{base}/cnis?limit=100"), ("get", f"{base}/cnis/{cni_id}")):
                    assert httpx.get(target, headers={"Authorization": f"Bearer {DEV_TOKEN}"}).status_code == 200
                    r = runner(target, args.seconds, args.connections)
                    line = (f"| {n} | {op} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
                    print(line, flush=True)
                    lines.append(line)
    header = (f"\n## mock CNI API ({dt.date.today().isoformat()}, {tool}, {args.connections} connections, "
              f"{args.seconds}s each, 1 uvicorn worker, {platform.processor() or platform.machine()})\n\n"
              "| CNIs stored | request | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n")
    with RESULTS.open("a") as fh:
        fh.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
