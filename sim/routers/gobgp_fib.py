"""Install gobgpd's best routes into the kernel of the node it runs in (``proto 186``).

gobgpd has no FIB: production deployments let FRR's zebra program the kernel, which Debian's
gobgpd 3.10 cannot do against FRR 8.4 (its ZAPI 6 client crashes on 8.4's messages). This loop is
the lab's stand-in and is labelled as such wherever its routes count: it polls ``gobgp global rib``
and makes the kernel's ``proto 186`` routes equal to the best paths learned from neighbours.
Run inside the node: ``python -m cnilab.sim.routers.gobgp_fib --target unix:///.../gobgp.sock``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

PROTO = "186"
"""rt_protos number for these routes (unassigned in iproute2's table; shows as ``proto 186``)."""


def best_routes(rib: dict, family: int) -> dict[str, str]:
    """prefix -> next hop of the best path learned from a neighbour (locally added paths are skipped)."""
    out = {}
    for prefix, paths in (rib or {}).items():
        for p in paths:
            if not p.get("best") or not p.get("neighbor-ip"):
                continue
            nh = next((a.get("nexthop") for a in p.get("attrs", []) if a.get("type") == 3), None)
            if nh is None:
                nh = next((a.get("nexthop") or (a.get("nexthops") or [None])[0]
                           for a in p.get("attrs", []) if a.get("type") == 14), None)
            if nh and nh not in ("0.0.0.0", "::"):
                out[prefix] = nh
    return out if family in (4, 6) else {}


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)


def sync_once(target: str) -> None:
    for fam in (4, 6):
        r = subprocess.run(["gobgp", "--target", target, "global", "rib", "-a", f"ipv{fam}", "-j"],
                           capture_output=True, text=True, check=False, timeout=10)
        if r.returncode != 0:
            continue
        want = best_routes(json.loads(r.stdout or "{}"), fam)
        cur = _ip(f"-{fam}", "-j", "route", "show", "proto", PROTO)
        have = {x["dst"]: x.get("gateway") for x in json.loads(cur.stdout or "[]")}
        for prefix, nh in want.items():
            if have.get(prefix) != nh:
                _ip(f"-{fam}", "route", "replace", prefix, "via", nh, "proto", PROTO)
        for prefix in set(have) - set(want):
            _ip(f"-{fam}", "route", "del", prefix, "proto", PROTO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", required=True)
    ap.add_argument("--interval", type=float, default=0.3)
    args = ap.parse_args()
    while True:
        try:
            sync_once(args.target)
        except (ValueError, subprocess.TimeoutExpired) as exc:
            print(f"gobgp_fib: {exc}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
