"""ExaBGP API process of a third-party speaker: records what the customer announces to it.

ExaBGP runs this (``run python -m cnilab.sim.transit.recorder received.json``) and feeds it parsed UPDATEs
as JSON lines. Every change rewrites ``received.json`` atomically: session state, the Adj-RIB-In
(prefix -> AS path, MED, communities, next hop) and the last raw UPDATEs as evidence. A file, not a
socket: the speaker holds no state a reader could lose, and ``cat`` is the debugger.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

RAW_KEEP = 50


def _as_path(attr: dict[str, Any]) -> list[int]:
    raw = attr.get("as-path")
    if raw is None:
        return []
    if isinstance(raw, list):
        return [int(a) for a in raw]
    out: list[int] = []
    for _pos, seg in sorted(raw.items(), key=lambda kv: int(kv[0])):
        out += [int(a) for a in seg.get("value", [])]
    return out


def _communities(attr: dict[str, Any]) -> list[str]:
    out = [":".join(str(int(x)) for x in c) for c in attr.get("community") or [] if isinstance(c, list)]
    out += [":".join(str(int(x)) for x in c) for c in attr.get("large-community") or [] if isinstance(c, list)]
    return out


class Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.state = "idle"
        self.since = time.time()
        self.established_count = 0
        self.routes: dict[str, dict[str, Any]] = {}
        self.raw: deque[dict[str, Any]] = deque(maxlen=RAW_KEEP)
        self.updates = 0
        self.write()

    def write(self) -> None:
        doc = {"state": self.state, "since": self.since, "established_count": self.established_count,
               "updates": self.updates, "routes": self.routes, "raw": list(self.raw), "written": time.time()}
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.out)

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        nb = msg.get("neighbor")
        if not isinstance(nb, dict):
            return
        if kind == "state":
            st = str(nb.get("state"))
            if st in ("up", "down", "connected"):
                self.state = {"up": "established", "down": "down", "connected": "connected"}[st]
                self.since = time.time()
                if st == "up":
                    self.established_count += 1
                if st == "down":
                    self.routes.clear()
                self.write()
        elif kind == "update" and nb.get("direction") == "receive":
            upd = nb.get("message", {}).get("update", {})
            attr = upd.get("attribute", {})
            self.updates += 1
            self.raw.append({"time": time.time(), "update": upd})
            for _fam, by_nh in (upd.get("announce") or {}).items():
                if not isinstance(by_nh, dict):
                    continue
                for nh, nlris in by_nh.items():
                    for n in nlris:
                        p = str(ipaddress.ip_network(n["nlri"] if isinstance(n, dict) else n, strict=False))
                        self.routes[p] = {"as_path": _as_path(attr), "med": attr.get("med"),
                                          "communities": _communities(attr), "nexthop": nh, "time": time.time()}
            for _fam, nlris in (upd.get("withdraw") or {}).items():
                for n in nlris:
                    p = str(ipaddress.ip_network(n["nlri"] if isinstance(n, dict) else n, strict=False))
                    self.routes.pop(p, None)
            self.write()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m cnilab.sim.transit.recorder OUT_JSON", file=sys.stderr)
        return 2
    rec = Recorder(Path(args[0]))
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("type") == "notification" and msg.get("notification") == "shutdown":
            break
        rec.handle(msg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
