"""The ExaBGP API process: Cloudflare's side of every session, as state an engineer can read.

ExaBGP starts this (``process cnilab-driver { run python -m cnilab.sim.edge.driver edge.json; }``), so it
runs inside the cf namespace and dies with ExaBGP. It reads ExaBGP's JSON (state, fsm, open,
update, notification) on stdin and writes API commands on stdout (teardown, reload). On top of that:

* import policy on every received prefix, with the reason kept, and kernel routes for the accepted
  ones ranked by best path (:mod:`cnilab.sim.edge.adj_rib`, :mod:`cnilab.sim.edge.routes`);
* BFD's hold on BGP (:mod:`cnilab.sim.edge.bfd_glue`) for sessions with ``bfd``;
* diagnosis of sessions that never come up (:mod:`cnilab.sim.edge.diagnosis`): a NOTIFICATION explained
  in words (:mod:`cnilab.sim.edge.notifications`), or the kernel's TCP MD5 counters (:mod:`cnilab.sim.edge.md5`);
* a control socket (:mod:`cnilab.sim.edge.control`) and an event ring buffer for timelines.

Per-session state is :class:`cnilab.sim.edge.peer.Peer`; this module only routes ExaBGP's messages and the
control commands to those parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import json
import logging
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cnilab.sim.bgp import rov
from cnilab.sim.bgp.scale import more_specifics
from cnilab.sim.edge import diagnosis, exabgp_conf
from cnilab.sim.edge.adj_rib import apply_update, desired_routes
from cnilab.sim.edge.bfd_glue import BfdGlue
from cnilab.sim.edge.control import serve
from cnilab.sim.edge.exabgp_conf import EdgeSpec
from cnilab.sim.edge.md5 import Md5Watch
from cnilab.sim.edge.notifications import CEASE_BFD_DOWN, explain_notification, notification_name
from cnilab.sim.edge.peer import Peer, peer_key
from cnilab.sim.edge.routes import KernelRoute, RouteTable
from cnilab.sim.topology.plan import Session

log = logging.getLogger("cnilab.sim.edge.driver")

EVENT_BUFFER = 2000

FSM_NAMES = {"IDLE": "Idle", "ACTIVE": "Active", "CONNECT": "Connect", "OPENSENT": "OpenSent",
             "OPENCONFIRM": "OpenConfirm", "ESTABLISHED": "Established"}
"""ExaBGP's FSM state names (upper case in its JSON) in RFC 4271's spelling."""


class EdgeDriver:
    def __init__(self, spec_path: Path, *, out: Callable[[str], None] | None = None) -> None:
        self.spec_path = spec_path
        self.spec = EdgeSpec.load(spec_path)
        self._out = out or self._stdout
        self.runtimes: dict[str, Peer] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_BUFFER)
        self._seq = 0
        self.routes: RouteTable | None = None
        self.route_errors: dict[str, str] = {}
        self.installed_metric: dict[tuple[str, str], int] = {}
        self.bfd = BfdGlue(self.spec.ifnames, self.event, self.command)
        self.md5 = Md5Watch()
        self._reconcile_pending = False
        self._routes_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnilab-routes")
        self._stop = asyncio.Event()
        self.started = time.time()
        for s in self.spec.sessions:
            self.runtimes[peer_key(s.cust_addr)] = Peer(session=s)

    # -- plumbing ---------------------------------------------------------------------------------
    @staticmethod
    def _stdout(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def event(self, kind: str, detail: str, session: str | None = None, **data: Any) -> None:
        self._seq += 1
        self.events.append({"seq": self._seq, "time": time.time(), "kind": kind, "session": session,
                            "detail": detail, "data": data})
        log.info("%s %s %s", kind, session or "-", detail)

    def command(self, line: str) -> None:
        """Send one API command to ExaBGP."""
        self._out(line)

    # -- ExaBGP messages --------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "notification" and msg.get("notification") == "shutdown":
            self.event("config", "ExaBGP is shutting down")
            self._stop.set()
            return
        nb = msg.get("neighbor")
        if not isinstance(nb, dict):
            return
        rt = self.runtimes.get(peer_key(nb["address"]["peer"]))
        if rt is None:
            return
        key = rt.session.key
        if kind == "fsm":
            rt.fsm = FSM_NAMES.get(str(nb.get("state", "")).upper(), str(nb.get("state")))
            self.event("bgp-fsm", rt.fsm, key)
        elif kind == "state":
            self._state(rt, nb.get("state"), nb.get("reason", ""))
        elif kind == "open" and nb.get("direction") == "receive":
            o = nb.get("open", {})
            rt.open_asn, rt.open_hold = o.get("asn"), o.get("hold_time")
        elif kind == "keepalive" and nb.get("direction") == "receive":
            now = time.time()
            if rt.up and rt.last_keepalive is not None:
                rt.keepalive_rx_s = round(now - rt.last_keepalive, 2)
            rt.last_keepalive = now
        elif kind == "notification":
            n = nb.get("notification", {})
            self._notification(rt, "received", int(n.get("code", 0)), int(n.get("subcode", 0)),
                               str(n.get("message") or ""))
        elif kind == "update" and nb.get("direction") == "receive":
            self._update(rt, nb.get("message", {}).get("update", {}))

    def _state(self, rt: Peer, state: str | None, reason: str) -> None:
        key = rt.session.key
        now = time.time()
        if state == "connected":
            rt.connected_ever = True
            self.event("bgp-state", f"TCP connection with {rt.session.cust_addr}", key)
        elif state == "up":
            rt.up, rt.since, rt.up_since, rt.fsm = True, now, now, "Established"
            rt.established_count += 1
            rt.connected_ever = True
            rt.last_error = None
            rt.last_keepalive = now
            rt.transition("Established")
            self.event("bgp-state", "Established", key)
            self.bfd.nudge(rt)  # the customer's bgpd registers its BFD now
            if rt.held_by_bfd:
                self.event("teardown", "BFD is Down: BGP session not trusted, tearing it down again", key)
                self.command(f"neighbor {rt.session.cust_addr} teardown {CEASE_BFD_DOWN}")
        elif state == "down":
            was_up, since = rt.up, rt.since
            rt.up, rt.since, rt.up_since, rt.fsm = False, now, None, "Idle"
            rt.last_down_reason = reason
            m = re.search(r"notification (sent|received) \((\d+),(\d+)\)", reason or "")
            seen = rt.last_notification is not None and rt.last_notification["time"] >= since
            if m and (m.group(1) == "sent" or not seen):  # a received one usually came as its own message
                self._notification(rt, m.group(1), int(m.group(2)), int(m.group(3)), "")
            elif not m:
                rt.last_error = f"session closed: {reason or 'connection lost'}"
            if was_up:
                rt.flaps += 1
            rt.last_keepalive = None
            rt.transition("Idle", rt.last_error or reason or "connection lost")
            dropped = len(rt.adj_in)
            rt.adj_in.clear()
            self.event("bgp-state", f"down: {rt.last_error or reason}", key, was_up=was_up, withdrawn=dropped)
            self.schedule_reconcile()

    def _notification(self, rt: Peer, direction: str, code: int, subcode: int, data: str) -> None:
        text = explain_notification(direction, code, subcode, rt.session, open_asn=rt.open_asn,
                                    open_hold=rt.open_hold, data=data)
        rt.last_notification = {"direction": direction, "code": code, "subcode": subcode,
                                "name": notification_name(code, subcode), "data": data, "time": time.time()}
        rt.last_error = text
        self.event("notification", text, rt.session.key, direction=direction, code=code, subcode=subcode)

    def _update(self, rt: Peer, upd: dict[str, Any]) -> None:
        changed, rejected = apply_update(rt, upd, self.spec)
        for e in rejected:
            self.event("route", f"rejected {e.decision.reason}", rt.session.key, prefix=str(e.prefix))
        if changed:
            self.schedule_reconcile()
        self._enforce_max_prefix(rt)

    def _enforce_max_prefix(self, rt: Peer) -> None:
        """Cloudflare's own per-CNI limit on what the customer sends: over it, Cease 6/1 (RFC 4486)."""
        limit = rt.session.max_prefix
        if limit is None or len(rt.adj_in) <= limit or not rt.up:
            return
        self.event("teardown", f"the customer sent {len(rt.adj_in)} prefixes, over Cloudflare's limit of {limit} "
                               "for this CNI: Cease 6/1 Maximum Number of Prefixes Reached", rt.session.key)
        self.command(f"neighbor {rt.session.cust_addr} teardown 1")

    # -- kernel routes ----------------------------------------------------------------------------
    def desired_routes(self) -> list[KernelRoute]:
        out, self.installed_metric = desired_routes(self.runtimes.values(), self.spec)
        return out

    def schedule_reconcile(self) -> None:
        """Coalesce a burst of updates into one kernel sync on the next loop turn."""
        if self._reconcile_pending:
            return
        self._reconcile_pending = True
        asyncio.get_running_loop().create_task(self._reconcile())

    async def _in_routes_thread(self, fn: Callable[[], Any]) -> Any:
        """pyroute2 0.9's sync IPRoute cannot run inside a running event loop: it lives in its own
        single thread, and every netlink call goes through it (order preserved)."""
        return await asyncio.get_running_loop().run_in_executor(self._routes_exec, fn)

    async def _reconcile(self) -> None:
        self._reconcile_pending = False
        if self.routes is None:
            return
        table, desired = self.routes, self.desired_routes()
        try:
            self.route_errors = await self._in_routes_thread(lambda: table.sync(desired))
        except Exception as exc:  # netlink trouble must not kill the BGP driver
            self.route_errors = {"*": f"route sync failed: {exc}"}
            log.exception("route sync failed")

    # -- diagnosis --------------------------------------------------------------------------------
    def _sample_md5(self) -> None:
        detail = self.md5.sample()
        if detail:
            self.event("error", f"kernel dropped TCP segments on MD5 check ({detail})")

    # -- views ------------------------------------------------------------------------------------
    def session_view(self, rt: Peer) -> dict[str, Any]:
        s = rt.session
        rejected = [e for e in rt.adj_in.values() if not e.decision.accepted]
        now = time.time()
        return {
            "key": s.key, "interconnect": s.interconnect, "family": s.family, "local": str(s.cf_addr),
            "peer": str(s.cust_addr), "local_asn": s.cf_asn, "peer_asn": s.cust_asn, "md5": bool(s.md5),
            "passive": s.passive, "state": rt.fsm if not rt.up else "Established", "up": rt.up,
            "since": rt.since, "uptime_s": (now - rt.up_since) if rt.up_since else None,
            "established_count": rt.established_count,
            "prefixes_sent": len(self.spec.announced(s.family)) if rt.up else 0,
            "prefixes_received": len(rt.adj_in), "prefixes_accepted": len(rt.adj_in) - len(rejected),
            "prefixes_rejected": len(rejected),
            "rejected": [{"prefix": str(e.prefix), "reason": e.decision.reason, "rule": e.decision.rule}
                         for e in rejected],
            "last_error": diagnosis.diagnose(rt, self.md5), "last_notification": rt.last_notification,
            "last_down_reason": rt.last_down_reason, "bfd": s.bfd, "bfd_state": self.bfd.state(rt),
            "held_by_bfd": rt.held_by_bfd, "priority": s.priority,
            "starting": diagnosis.starting(rt, self.md5),
            "md5_evidence": self.md5.evidence(rt.up, rt.notification_time()),
            "hold_time": s.hold_time, "peer_hold_time": rt.open_hold, "negotiated_hold_s": rt.negotiated_hold(),
            "keepalive_s": (rt.negotiated_hold() or 0) // 3 if rt.negotiated_hold() else None,
            "peer_keepalive_s": rt.keepalive_rx_s, "flaps": rt.flaps, "transitions": list(rt.transitions),
            "bfd_flaps": rt.bfd_flaps, "bfd_transitions": list(rt.bfd_transitions),
            "warnings": diagnosis.warnings(rt),
        }

    async def routes_view(self) -> dict[str, Any]:
        received = []
        best: dict[str, int] = {}
        for (p, _sess), metric in self.installed_metric.items():
            best[p] = min(best.get(p, metric), metric)
        for rt in self.runtimes.values():
            for e in rt.adj_in.values():
                metric = self.installed_metric.get((str(e.prefix), rt.session.key))
                received.append({
                    "prefix": str(e.prefix), "session": rt.session.key, "peer": str(rt.session.cust_addr),
                    "nexthop": e.nexthop, "as_path": list(e.as_path), "med": e.med,
                    "communities": list(e.communities),
                    "rov": rov.validate(e.prefix, e.as_path, self.spec.roas)[0] if self.spec.roas is not None
                    else None,
                    "accepted": e.decision.accepted, "reason": e.decision.reason, "rule": e.decision.rule,
                    "best": metric is not None and metric == best.get(str(e.prefix)), "metric": metric,
                    "time": e.time})
        table = self.routes
        have = await self._in_routes_thread(table.installed) if table is not None else set()
        installed = [{"prefix": str(r.dst), "gateway": str(r.gateway), "metric": r.metric}
                     for r in sorted(have, key=lambda r: (r.dst.version, str(r.dst), r.metric))]
        return {"received": received, "installed": installed, "errors": self.route_errors,
                "announced": {f"ipv{f}": [str(p) for p in self.spec.announced(f)] for f in (4, 6)}}

    # -- control commands -------------------------------------------------------------------------
    def _rewrite(self) -> None:
        """Persist the spec, re-render exabgp.conf and ask ExaBGP to reload it (delta to peers)."""
        exabgp_conf.write(self.spec)
        self.command("reload")

    def _match(self, session: str | None, neighbor: str | None) -> list[Peer]:
        if session is None and neighbor is None:
            return list(self.runtimes.values())
        out = [rt for rt in self.runtimes.values()
               if session in (rt.session.key, rt.session.interconnect)
               or (neighbor is not None and peer_key(neighbor) == peer_key(rt.session.cust_addr))]
        if not out:
            have = ", ".join(rt.session.key for rt in self.runtimes.values())
            raise LookupError(f"no BGP session {session or neighbor!r} (sessions: {have})")
        return out

    async def control(self, req: dict[str, Any]) -> Any:
        """One control request (cnilab.sim.edge.control): dispatched by ``cmd`` through :meth:`commands`."""
        handlers = self.commands()
        handler = handlers.get(req["cmd"])
        if handler is None:
            raise ValueError(f"unknown command {req['cmd']!r} ({', '.join(handlers)})")
        result = handler(req)
        return await result if inspect.isawaitable(result) else result

    def commands(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {"ping": self._ping, "sessions": self._sessions, "routes": lambda _req: self.routes_view(),
                "announce": self._announce, "withdraw": self._announce, "teardown": self._teardown,
                "scale": self._scale, "gshut": self._gshut, "bfd": lambda _req: self.bfd.sessions(),
                "configure": lambda req: self.configure([Session.model_validate(s) for s in req.get("sessions", [])]),
                "events": self._events}

    def _ping(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "lab": self.spec.lab, "pid": os.getpid(), "uptime_s": time.time() - self.started,
                "sessions": len(self.runtimes), "bfd": self.bfd.speaker is not None}

    def _sessions(self, _req: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.session_view(rt) for rt in self.runtimes.values()]

    def _announce(self, req: dict[str, Any]) -> list[str]:
        """``announce`` / ``withdraw`` one prefix (Cloudflare's own, or an extra one) on every session."""
        cmd = req["cmd"]
        prefix = ipaddress.ip_network(str(req.get("prefix")), strict=False)
        base = set(self.spec.cf_prefixes)
        if cmd == "announce":
            self.spec.withdrawn = [p for p in self.spec.withdrawn if p != prefix]
            if prefix not in base and prefix not in self.spec.extra_announce:
                self.spec.extra_announce.append(prefix)
        else:
            if prefix not in base and prefix not in self.spec.extra_announce:
                raise LookupError(f"{prefix} is not announced by the edge")
            self.spec.extra_announce = [p for p in self.spec.extra_announce if p != prefix]
            if prefix in base and prefix not in self.spec.withdrawn:
                self.spec.withdrawn.append(prefix)
        self._rewrite()
        self.event("route", f"{cmd} {prefix}")
        return [rt.session.key for rt in self.runtimes.values() if rt.session.family == prefix.version]

    def _teardown(self, req: dict[str, Any]) -> list[str]:
        subcode = int(req.get("subcode", 2))
        if not 0 <= subcode <= 255:
            raise ValueError(f"subcode {subcode} is not 0-255")
        done = []
        for rt in self._match(req.get("session"), req.get("neighbor")):
            self.command(f"neighbor {rt.session.cust_addr} teardown {subcode}")
            self.event("teardown", f"Cease/{subcode} {notification_name(6, subcode)} requested", rt.session.key)
            done.append(rt.session.key)
        return done

    def _scale(self, req: dict[str, Any]) -> dict[str, int]:
        n = int(req.get("routes", 0))
        more_specifics(n)  # ValueError (to the client) when the ranges cannot hold n
        self.spec.scale_routes = n
        self._rewrite()
        self.event("route", f"table now includes {n} more-specifics (scale)")
        return {f"ipv{f}": len(self.spec.announced(f)) for f in (4, 6)}

    def _gshut(self, req: dict[str, Any]) -> list[str]:
        ic = str(req.get("interconnect"))
        if ic not in {rt.session.interconnect for rt in self.runtimes.values()}:
            raise LookupError(f"no interconnect {ic!r}")
        on = bool(req.get("on", True))
        self.spec.gshut = sorted((set(self.spec.gshut) | {ic}) if on else (set(self.spec.gshut) - {ic}))
        self._rewrite()
        self.event("route", f"GRACEFUL_SHUTDOWN {'on' if on else 'off'} for routes on {ic}", ic)
        return self.spec.gshut

    def _events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        since = int(req.get("since", 0))
        return [e for e in self.events if e["seq"] > since]

    def configure(self, sessions: list[Session]) -> dict[str, list[str]]:
        keys = [s.key for s in sessions]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"configure: session {sorted(dup)[0]} given twice")
        new = {peer_key(s.cust_addr): s for s in sessions}
        result: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        for peer in list(self.runtimes):
            if peer not in new:
                rt = self.runtimes.pop(peer)
                self.bfd.remove(rt)
                result["removed"].append(rt.session.key)
        for peer, s in new.items():
            rt = self.runtimes.get(peer)
            if rt is None:
                rt = self.runtimes[peer] = Peer(session=s)
                self.bfd.add(rt)
                result["added"].append(s.key)
            elif rt.session != s:
                bfd_changed = (rt.session.bfd, rt.session.bfd_tx_ms, rt.session.bfd_rx_ms,
                               rt.session.bfd_multiplier, rt.session.cf_addr) != (
                    s.bfd, s.bfd_tx_ms, s.bfd_rx_ms, s.bfd_multiplier, s.cf_addr)
                rt.session = s
                if bfd_changed:
                    self.bfd.remove(rt)
                    self.bfd.add(rt)
                result["changed"].append(s.key)
        self.spec.sessions = sessions
        self._rewrite()
        self.event("config", f"sessions configured: {result}")
        self.schedule_reconcile()
        return result

    # -- main -------------------------------------------------------------------------------------
    async def _tick(self) -> None:
        while not self._stop.is_set():
            self._sample_md5()
            # every second, not only after a refusal: a carrier loss shorter than the detection time
            # leaves the session up but makes the kernel drop the routes through that interface
            self.schedule_reconcile()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while not self._stop.is_set():
            line = await reader.readline()
            if not line:
                self.event("config", "ExaBGP closed our stdin")
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue  # ack text ("done") or other non-JSON lines
            try:
                self.handle(msg)
            except Exception:
                log.exception("could not handle %s", line[:300])
        self._stop.set()

    async def _close_routes(self, table: RouteTable) -> None:
        self.routes = None
        await self._in_routes_thread(lambda: table.__exit__(None, None, None))

    async def run(self, stdin: bool = True) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self._routes_exec.shutdown, wait=True)
            table = RouteTable()
            await self._in_routes_thread(table.__enter__)
            stack.push_async_callback(self._close_routes, table)
            # a previous driver that was killed may have left routes behind
            await self._in_routes_thread(table.flush)
            self.routes = table
            if any(s.bfd for s in self.spec.sessions):
                await self.bfd.start(stack, lambda: list(self.runtimes.values()))
            await stack.enter_async_context(serve(self.spec.control_path, self.control))
            self.event("config", f"edge driver ready: {len(self.runtimes)} sessions")
            tasks = [asyncio.create_task(self._tick())]
            if stdin:
                tasks.append(asyncio.create_task(self._read_stdin()))
            try:
                await self._stop.wait()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m cnilab.sim.edge.driver EDGE_JSON", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s driver %(levelname)s %(message)s")
    asyncio.run(EdgeDriver(Path(args[0])).run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
