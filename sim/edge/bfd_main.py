"""Standalone BFD speaker: ``python -m cnilab.sim.edge.bfd_main --local A --peer B [--tx 300 --rx 300 --mult 3]``.

Why a runner: tests, the benchmark and containers need a BFD end that is a separate process (in
another namespace, killable with SIGKILL to simulate a crash) without pulling in the edge driver.
With ``--json-events`` every state change is one JSON line on stdout; ``--status-interval`` adds
periodic session snapshots. Commands may be sent as JSON lines on stdin::

    {"cmd": "set_timers", "tx": 50, "rx": 50, "mult": 3}
    {"cmd": "admin_down"} / {"cmd": "admin_up"} / {"cmd": "status"} / {"cmd": "stop"}

SIGTERM/SIGINT stop cleanly (AdminDown sent to the peer); SIGKILL leaves the peer to detect it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import stat
import sys
import time
from typing import Any

from cnilab.sim.edge.bfd import BfdSessionInfo, BfdSpeaker


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cnilab.sim.edge.bfd_main", description=__doc__.splitlines()[0])
    p.add_argument("--local", required=True, help="local address (IPv4 or IPv6)")
    p.add_argument("--peer", required=True, help="peer address (same family)")
    p.add_argument("--tx", type=int, default=300, help="desired min TX interval, ms")
    p.add_argument("--rx", type=int, default=300, help="required min RX interval, ms")
    p.add_argument("--mult", type=int, default=3, help="detect multiplier")
    p.add_argument("--ifname", default=None, help="bind to this interface (needed for IPv6 link-local)")
    p.add_argument("--netns", default=None, help="open sockets in this network namespace")
    p.add_argument("--json-events", action="store_true", help="one JSON line per state change on stdout")
    p.add_argument("--status-interval", type=float, default=0.0, help="also print a status line every N s")
    p.add_argument("--port", type=int, default=None, help="UDP port (default RFC 5881's 3784)")
    return p


async def _commands(speaker: BfdSpeaker, key: str, stop: asyncio.Event) -> None:
    """Read JSON commands from stdin until EOF; a bad line is reported, never fatal."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        return  # /dev/null or a regular file cannot be polled: no commands
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return
    while not stop.is_set():
        line = await reader.readline()
        if not line:
            return
        try:
            cmd = json.loads(line)
            name = cmd["cmd"]
            if name == "set_timers":
                speaker.set_timers(key, int(cmd["tx"]), int(cmd["rx"]), int(cmd["mult"]))
            elif name == "admin_down":
                speaker.admin_down(key)
            elif name == "admin_up":
                speaker.admin_up(key)
            elif name == "stop":
                stop.set()
            elif name != "status":
                raise ValueError(f"unknown cmd {name!r}")
            _emit({"event": "ok", "cmd": name, "time": time.time(), "info": speaker.session(key).model_dump()})
        except (ValueError, KeyError, TypeError) as exc:
            _emit({"event": "error", "error": str(exc), "line": line.decode(errors="replace").strip()})


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()

    def on_change(info: BfdSessionInfo, old: str, new: str) -> None:
        if args.json_events:
            _emit({"event": "state", "time": time.time(), "old": old, "new": new, "info": info.model_dump()})
        else:
            print(f"{time.strftime('%H:%M:%S')} {info.key}: {old} -> {new} (diag {info.local_diag_name})",
                  flush=True)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with BfdSpeaker(on_change, netns=args.netns, port=args.port) as speaker:
        try:
            key = speaker.add_session(args.local, args.peer, args.tx, args.rx, args.mult, ifname=args.ifname)
        except (ValueError, OSError) as exc:
            print(f"bfd_main: {exc}", file=sys.stderr)
            return 2
        if args.json_events:
            _emit({"event": "started", "time": time.time(), "info": speaker.session(key).model_dump()})
        tasks = [asyncio.create_task(_commands(speaker, key, stop))]
        if args.status_interval > 0:
            async def status() -> None:
                while True:
                    await asyncio.sleep(args.status_interval)
                    _emit({"event": "status", "time": time.time(), "info": speaker.session(key).model_dump()})
            tasks.append(asyncio.create_task(status()))
        await stop.wait()
        for t in tasks:
            t.cancel()
        if args.json_events:
            _emit({"event": "stopping", "time": time.time(), "info": speaker.session(key).model_dump()})
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
