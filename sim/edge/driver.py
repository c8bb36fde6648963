"""The ExaBGP API process: Cloudflare's side of every session, as state an engineer can read.

ExaBGP starts this (``process cnilab-driver { run python -m sim.edge.driver edge.json; }``), so it
runs inside the cf namespace and dies with ExaBGP. It reads ExaBGP's JSON (state, fsm, open,
update, notification) on stdin and writes API commands on stdout (teardown, reload). On top of that:

* import policy (:mod:`sim.bgp.policy`) on every received prefix, with the reason kept;
* kernel routes for accepted prefixes (:mod:`sim.edge.routes`), ranked by :mod:`sim.bgp.bestpath`,
  removed when the session drops;
* the BFD speaker (:mod:`sim.edge.bfd`) for sessions with ``bfd``: BFD Down tears the BGP session
  down with Cease subcode 10 "BFD Down" (RFC 9384), and keeps doing so while BFD stays down
  (strict mode: BGP over a path BFD calls dead is not trusted); BFD Up lets it re-establish;
* diagnosis of sessions that never come up: a NOTIFICATION explained in words, or the kernel's TCP
  MD5 counters (/proc/net/netstat, per namespace) for a key mismatch, which ExaBGP never sees;
* a control socket (:mod:`sim.edge.control`) and an event ring buffer for timelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.bgp import bestpath, rov
from sim.bgp.policy import PolicyDecision, evaluate
from sim.bgp.scale import more_specifics
from sim.edge import exabgp_conf
from sim.edge.control import serve
from sim.edge.exabgp_conf import GSHUT_COMMUNITY, EdgeSpec
from sim.edge.routes import KernelRoute, RouteTable
from sim.facts import load_facts
from sim.topology.plan import Session

log = logging.getLogger("sim.edge.driver")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

EVENT_BUFFER = 2000
MD5_WINDOW_S = 150.0
"""How long a kernel MD5 failure counts as the reason a session is down (FRR retries every 120 s)."""
CEASE_BFD_DOWN = 10
"""RFC 9384: Cease subcode 'BFD Down'."""
TRANSITIONS_KEPT = 20
"""Last state changes kept per session (bgp and bfd) for `cnilab bgp`/`bfd` and timelines."""
STARTING_WINDOW_S = 30.0
"""How long a session that has seen nothing yet is "starting" rather than "the customer never
connected": the customer daemon's own start (BIRD's `start delay time` is 5 s, FRR connects at once)
plus the time to start daemons on a loaded 2-core machine. Any evidence (a NOTIFICATION, MD5 drops,
a TCP connection) ends the window early."""
MD5_CONFIRM_SAMPLES = 3
"""MD5 drops in this many 1 s samples of one streak make a key mismatch deterministic: the first
three SYNs of one connection attempt (at 0, 1 and 3 s: TCP's retransmission backoff) all failed the
check. One stray segment during a key change does not."""
MD5_STREAK_GAP_S = 10.0
"""Drops further apart than this start a new streak (SYN retransmissions of one attempt are at most
8 s apart before the fifth)."""

FSM_NAMES = {"IDLE": "Idle", "ACTIVE": "Active", "CONNECT": "Connect", "OPENSENT": "OpenSent",
             "OPENCONFIRM": "OpenConfirm", "ESTABLISHED": "Established"}

NOTIFICATION_NAMES: dict[tuple[int, int], str] = {
    (1, 0): "Message Header Error", (1, 1): "Connection Not Synchronized", (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 0): "OPEN Message Error", (2, 1): "Unsupported Version Number", (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier", (2, 4): "Unsupported Optional Parameter", (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability", (2, 11): "Role Mismatch",
    (3, 0): "UPDATE Message Error", (3, 1): "Malformed Attribute List", (3, 3): "Missing Well-known Attribute",
    (3, 6): "Invalid ORIGIN Attribute", (3, 8): "Invalid NEXT_HOP Attribute", (3, 11): "Malformed AS_PATH",
    (4, 0): "Hold Timer Expired", (5, 0): "Finite State Machine Error",
    (6, 0): "Cease", (6, 1): "Maximum Number of Prefixes Reached", (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured", (6, 4): "Administrative Reset", (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change", (6, 7): "Connection Collision Resolution", (6, 8): "Out of Resources",
    (6, 9): "Hard Reset", (6, 10): "BFD Down",
}


def notification_name(code: int, subcode: int) -> str:
    return NOTIFICATION_NAMES.get((code, subcode)) or NOTIFICATION_NAMES.get((code, 0)) or f"code {code}"


def explain_notification(direction: str, code: int, subcode: int, session: Session, *,
                         open_asn: int | None = None, open_hold: int | None = None, data: str = "") -> str:
    """A NOTIFICATION in words an engineer can act on (what is wrong and on which side)."""
    name = notification_name(code, subcode)
    tag = f"NOTIFICATION {code}/{subcode}"
    if (code, subcode) == (2, 2):
        got = f"AS {open_asn}" if open_asn is not None else "the wrong AS"
        if direction == "sent":
            return (f"OPEN from {got}, expected {session.cust_asn}: {name} ({tag}); set the customer router's "
                    f"local AS to {session.cust_asn} or fix customer.asn in the topology")
        return (f"customer router refused Cloudflare's AS {session.cf_asn}: {name} ({tag}); its neighbor "
                f"must use remote-as {session.cf_asn}")
    if (code, subcode) == (2, 6):
        hold = f"{open_hold}s" if open_hold is not None else "the offered hold time"
        return f"{name} ({code}/{subcode}): hold time {hold} is not allowed; use 0 or at least 3 seconds"
    if code == 4:
        side = "Cloudflare heard nothing from the customer" if direction == "sent" else \
            "the customer router heard nothing from Cloudflare"
        return f"{name} ({tag}): {side} for {session.hold_time}s (packet loss or a dead path)"
    who = "Cloudflare sent" if direction == "sent" else "the customer router sent"
    extra = f": {data}" if data else ""
    return f"{who} {name} ({tag}){extra}"


def _as_path(attr: dict[str, Any]) -> tuple[int, ...]:
    raw = attr.get("as-path")
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(int(a) for a in raw)
    out: list[int] = []
    for _pos, seg in sorted(raw.items(), key=lambda kv: int(kv[0])):
        out += [int(a) for a in seg.get("value", [])]
    return tuple(out)


def _communities(attr: dict[str, Any]) -> tuple[str, ...]:
    """Standard (a:b) and large (a:b:c) communities of an UPDATE, as text, in the order received."""
    out = [":".join(str(int(x)) for x in c) for c in attr.get("community") or [] if isinstance(c, list)]
    out += [":".join(str(int(x)) for x in c) for c in attr.get("large-community") or [] if isinstance(c, list)]
    return tuple(out)


def _md5_counters() -> dict[str, int]:
    """TcpExt MD5 counters of this process's namespace (the cf node)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            kv = dict(zip(head.split()[1:], vals.split()[1:], strict=False))
            return {k: int(v) for k, v in kv.items() if k.startswith("TCPMD5")}
    return {}


@dataclass
class RouteEntry:
    prefix: Network
    nexthop: str
    as_path: tuple[int, ...]
    med: int
    decision: PolicyDecision
    time: float
    communities: tuple[str, ...] = ()


@dataclass
class Runtime:
    """What the driver knows about one session (reset fields on down, keep diagnosis)."""

    session: Session
    fsm: str = "Idle"
    up: bool = False
    since: float = field(default_factory=time.time)
    up_since: float | None = None
    established_count: int = 0
    connected_ever: bool = False
    last_notification: dict[str, Any] | None = None
    last_down_reason: str | None = None
    last_error: str | None = None
    open_asn: int | None = None
    open_hold: int | None = None
    adj_in: dict[Network, RouteEntry] = field(default_factory=dict)
    bfd_key: str | None = None
    held_by_bfd: bool = False
    created: float = field(default_factory=time.time)
    flaps: int = 0
    transitions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT))
    last_keepalive: float | None = None
    keepalive_rx_s: float | None = None
    bfd_flaps: int = 0
    bfd_transitions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT))

    def transition(self, state: str, reason: str = "", *, bfd: bool = False) -> None:
        (self.bfd_transitions if bfd else self.transitions).append(
            {"time": time.time(), "state": state, "reason": reason})

    def negotiated_hold(self) -> int | None:
        """RFC 4271 4.2: the smaller of both OPENs' hold times (0 if either is 0); None before an OPEN."""
        if self.open_hold is None:
            return None
        ours, theirs = self.session.hold_time, int(self.open_hold)
        return 0 if 0 in (ours, theirs) else min(ours, theirs)


class EdgeDriver:
    def __init__(self, spec_path: Path, *, out: Callable[[str], None] | None = None) -> None:
        self.spec_path = spec_path
        self.spec = EdgeSpec.load(spec_path)
        self._out = out or self._stdout
        self.runtimes: dict[str, Runtime] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_BUFFER)
        self._seq = 0
        self.routes: RouteTable | None = None
        self.route_errors: dict[str, str] = {}
        self.installed_metric: dict[tuple[str, str], int] = {}
        self.bfd: Any = None
        self.bfd_error: str | None = None
        self._md5_base = _md5_counters()
        self._md5_last_change: float | None = None
        self._md5_first_change: float | None = None
        self._md5_samples = 0
        self._md5_detail = ""
        self._reconcile_pending = False
        self._routes_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnilab-routes")
        self._stop = asyncio.Event()
        self.started = time.time()
        for s in self.spec.sessions:
            self.runtimes[self._peer_key(s.cust_addr)] = Runtime(session=s)

    # -- plumbing ---------------------------------------------------------------------------------
    @staticmethod
    def _stdout(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    @staticmethod
    def _peer_key(addr: Any) -> str:
        return str(ipaddress.ip_address(str(addr)))

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
        rt = self.runtimes.get(self._peer_key(nb["address"]["peer"]))
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

    def _state(self, rt: Runtime, state: str | None, reason: str) -> None:
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
            if rt.bfd_key and self.bfd is not None:  # the customer's bgpd registers its BFD now
                self.bfd.nudge(rt.bfd_key)
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

    def _notification(self, rt: Runtime, direction: str, code: int, subcode: int, data: str) -> None:
        text = explain_notification(direction, code, subcode, rt.session, open_asn=rt.open_asn,
                                    open_hold=rt.open_hold, data=data)
        rt.last_notification = {"direction": direction, "code": code, "subcode": subcode,
                                "name": notification_name(code, subcode), "data": data, "time": time.time()}
        rt.last_error = text
        self.event("notification", text, rt.session.key, direction=direction, code=code, subcode=subcode)

    def _update(self, rt: Runtime, upd: dict[str, Any]) -> None:
        now = time.time()
        attr = upd.get("attribute", {})
        path = _as_path(attr)
        link_nets = self.spec.link_nets()
        med = int(attr.get("med", 0) or 0)
        comms = _communities(attr)
        changed = 0
        for _fam, by_nh in (upd.get("announce") or {}).items():
            if not isinstance(by_nh, dict):
                continue
            for nh, nlris in by_nh.items():
                for n in nlris:
                    prefix = ipaddress.ip_network(n["nlri"] if isinstance(n, dict) else n, strict=False)
                    # Adj-RIB-In before policy: every prefix on the wire is kept and judged, including
                    # routes with AS13335 in the path (RFC 4271 9.1.2 loops), so a customer leaking
                    # Cloudflare's routes back is counted and named, not silently discarded.
                    dec = evaluate(prefix, self.spec.customer_prefixes, as_path=path, peer_asn=rt.session.cust_asn,
                                   link_nets=link_nets)
                    dec = rov.apply(dec, path, self.spec.roas)
                    rt.adj_in[prefix] = RouteEntry(prefix, nh, path, med, dec, now, comms)
                    changed += 1
                    if not dec.accepted:
                        self.event("route", f"rejected {dec.reason}", rt.session.key, prefix=str(prefix))
        for _fam, nlris in (upd.get("withdraw") or {}).items():
            for n in nlris:
                prefix = ipaddress.ip_network(n["nlri"] if isinstance(n, dict) else n, strict=False)
                if rt.adj_in.pop(prefix, None) is not None:
                    changed += 1
        if changed:
            self.schedule_reconcile()
        self._enforce_max_prefix(rt)

    def _enforce_max_prefix(self, rt: Runtime) -> None:
        """Cloudflare's own per-CNI limit on what the customer sends: over it, Cease 6/1 (RFC 4486)."""
        limit = rt.session.max_prefix
        if limit is None or len(rt.adj_in) <= limit or not rt.up:
            return
        self.event("teardown", f"the customer sent {len(rt.adj_in)} prefixes, over Cloudflare's limit of {limit} "
                               "for this CNI: Cease 6/1 Maximum Number of Prefixes Reached", rt.session.key)
        self.command(f"neighbor {rt.session.cust_addr} teardown 1")

    # -- kernel routes ----------------------------------------------------------------------------
    def desired_routes(self) -> list[KernelRoute]:
        cands: dict[Network, list[bestpath.Candidate]] = {}
        for rt in self.runtimes.values():
            if not rt.up:
                continue
            gw = self.spec.nexthop_to_customer(rt.session)
            for p, e in rt.adj_in.items():
                if e.decision.accepted:
                    cands.setdefault(p, []).append(bestpath.Candidate(
                        session=rt.session.key, prefix=p, nexthop=gw, as_path=e.as_path, med=e.med,
                        priority=rt.session.priority, gshut=GSHUT_COMMUNITY in e.communities))
        out = []
        self.installed_metric = {}
        for p, cs in cands.items():
            for c, metric in bestpath.ranked_metrics(cs):
                out.append(KernelRoute(dst=p, gateway=c.nexthop, metric=metric))
                self.installed_metric[(str(p), c.session)] = metric
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

    # -- BFD --------------------------------------------------------------------------------------
    def _bfd_ifname(self, s: Session) -> str | None:
        return self.spec.ifnames.get(s.cf_iface, s.cf_iface) if s.cf_iface else None

    def _bfd_add(self, rt: Runtime) -> None:
        s = rt.session
        if not s.bfd or self.bfd is None:
            return
        try:
            rt.bfd_key = self.bfd.add_session(s.cf_addr, s.cust_addr, s.bfd_tx_ms, s.bfd_rx_ms, s.bfd_multiplier,
                                              self._bfd_ifname(s))
        except (OSError, ValueError) as exc:
            self.event("error", f"BFD session not started: {exc}", s.key)

    def _bfd_remove(self, rt: Runtime) -> None:
        if rt.bfd_key and self.bfd is not None:
            with contextlib.suppress(KeyError):
                self.bfd.remove_session(rt.bfd_key)
        rt.bfd_key = None

    def on_bfd_change(self, info: Any, old: str, new: str) -> None:
        for rt in self.runtimes.values():
            if rt.bfd_key != info.key:
                continue
            key = rt.session.key
            self.event("bfd", f"{old} -> {new} ({info.local_diag_name})", key, old=old, new=new)
            if old == "Up" and new != "Up":
                rt.bfd_flaps += 1
            rt.transition(new, str(info.local_diag_name), bfd=True)
            if new in ("Down", "AdminDown") and old == "Up":
                rt.held_by_bfd = True
                if rt.up:
                    self.event("teardown", f"BFD {new}: tearing BGP down (Cease/{CEASE_BFD_DOWN} BFD Down)", key)
                    self.command(f"neighbor {rt.session.cust_addr} teardown {CEASE_BFD_DOWN}")
            elif new == "Up" and rt.held_by_bfd:
                rt.held_by_bfd = False
                self.event("bfd", "BFD Up: BGP may re-establish", key)

    def bfd_state(self, rt: Runtime) -> str | None:
        if not rt.bfd_key or self.bfd is None:
            return None
        try:
            return self.bfd.session(rt.bfd_key).state
        except KeyError:
            return None

    # -- diagnosis --------------------------------------------------------------------------------
    def _sample_md5(self) -> None:
        now_c = _md5_counters()
        delta = {k: v - self._md5_base.get(k, 0) for k, v in now_c.items() if v > self._md5_base.get(k, 0)}
        now = time.time()
        if delta:
            if self._md5_last_change is None or now - self._md5_last_change > MD5_STREAK_GAP_S:
                self._md5_first_change, self._md5_samples = now, 0
            self._md5_samples += 1
            self._md5_last_change = now
            self._md5_detail = ", ".join(f"{k}+{v}" for k, v in sorted(delta.items()))
            self.event("error", f"kernel dropped TCP segments on MD5 check ({self._md5_detail})")
        self._md5_base = now_c

    def md5_evidence(self, rt: Runtime) -> dict[str, Any] | None:
        """Kernel MD5 drops that explain why this (down) session has no TCP connection, or None.

        The counters are per namespace, so they are attributed to sessions that are down and have
        no later NOTIFICATION; ``confirmed`` once the drops repeat (deterministic, not a one-off)."""
        if rt.up or self._md5_last_change is None or time.time() - self._md5_last_change >= MD5_WINDOW_S:
            return None
        if rt.last_notification is not None and rt.last_notification["time"] >= self._md5_last_change:
            return None
        return {"first": self._md5_first_change, "last": self._md5_last_change, "samples": self._md5_samples,
                "counters": self._md5_detail, "confirmed": self._md5_samples >= MD5_CONFIRM_SAMPLES}

    def starting(self, rt: Runtime) -> bool:
        """Nothing seen yet and still inside the start-up window: not a verdict yet."""
        return (not rt.up and not rt.connected_ever and rt.established_count == 0 and rt.last_error is None
                and rt.last_notification is None and self.md5_evidence(rt) is None
                and time.time() - rt.created < STARTING_WINDOW_S)

    def warnings(self, rt: Runtime) -> list[str]:
        """Findings that are not failures: timers that work today but drop the session under stress."""
        out: list[str] = []
        hold = rt.negotiated_hold()
        floor = int(load_facts().bgp["warn_hold_time_below"]["value"])
        if hold is not None and 0 < hold < floor:
            out.append(f"negotiated hold time {hold} s (yours {rt.open_hold} s, Cloudflare {rt.session.hold_time} s) "
                       f"is under {floor} s: one late KEEPALIVE on a loaded router drops the session; keep the hold "
                       f"time at {floor} s or more and use BFD for fast failure detection")
        if hold and rt.keepalive_rx_s is not None and rt.keepalive_rx_s >= hold:
            out.append(f"your router sends KEEPALIVE every {rt.keepalive_rx_s:.0f} s, not less than the hold time "
                       f"{hold} s: the session expires between keepalives; set keepalive to a third of the hold "
                       f"time (FRR `neighbor X timers {max(1, hold // 3)} {hold}`, BIRD `keepalive time "
                       f"{max(1, hold // 3)};`)")
        return out

    def diagnose(self, rt: Runtime) -> str | None:
        if rt.up:
            return None
        s = rt.session
        if self.starting(rt):
            return (f"starting: waiting for the customer router to connect to {s.cf_addr}:179 "
                    f"({time.time() - rt.created:.0f} s since the edge configured this session)")
        if self.md5_evidence(rt) is not None:
            return (f"no TCP session with {s.cust_addr}: the kernel dropped its segments on the MD5 check "
                    f"({self._md5_detail}): no MD5 signature or wrong key on the customer router "
                    f"({'a key is configured' if s.md5 else 'Cloudflare expects no key'})")
        if rt.held_by_bfd:
            return "BFD is Down: the session is held down until BFD comes back Up"
        if rt.last_error:
            return rt.last_error
        if not rt.connected_ever:
            how = "has not opened TCP to" if s.passive else "could not be reached from"
            return (f"no connection from {s.cust_addr} in {time.time() - rt.created:.0f} s: the customer router "
                    f"{how} {s.cf_addr}:179 (check its "
                    f"neighbor address {s.cf_addr}, remote-as {s.cf_asn}, the MD5 key and that the link is up)")
        return None

    # -- views ------------------------------------------------------------------------------------
    def session_view(self, rt: Runtime) -> dict[str, Any]:
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
            "last_error": self.diagnose(rt), "last_notification": rt.last_notification,
            "last_down_reason": rt.last_down_reason, "bfd": s.bfd, "bfd_state": self.bfd_state(rt),
            "held_by_bfd": rt.held_by_bfd, "priority": s.priority,
            "starting": self.starting(rt), "md5_evidence": self.md5_evidence(rt),
            "hold_time": s.hold_time, "peer_hold_time": rt.open_hold, "negotiated_hold_s": rt.negotiated_hold(),
            "keepalive_s": (rt.negotiated_hold() or 0) // 3 if rt.negotiated_hold() else None,
            "peer_keepalive_s": rt.keepalive_rx_s, "flaps": rt.flaps, "transitions": list(rt.transitions),
            "bfd_flaps": rt.bfd_flaps, "bfd_transitions": list(rt.bfd_transitions),
            "warnings": self.warnings(rt),
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

    def _match(self, session: str | None, neighbor: str | None) -> list[Runtime]:
        if session is None and neighbor is None:
            return list(self.runtimes.values())
        out = [rt for rt in self.runtimes.values()
               if session in (rt.session.key, rt.session.interconnect)
               or (neighbor is not None and self._peer_key(neighbor) == self._peer_key(rt.session.cust_addr))]
        if not out:
            have = ", ".join(rt.session.key for rt in self.runtimes.values())
            raise LookupError(f"no BGP session {session or neighbor!r} (sessions: {have})")
        return out

    async def control(self, req: dict[str, Any]) -> Any:
        cmd = req["cmd"]
        if cmd == "ping":
            return {"pong": True, "lab": self.spec.lab, "pid": __import__("os").getpid(),
                    "uptime_s": time.time() - self.started, "sessions": len(self.runtimes),
                    "bfd": self.bfd is not None, "bfd_error": self.bfd_error}
        if cmd == "sessions":
            return [self.session_view(rt) for rt in self.runtimes.values()]
        if cmd == "routes":
            return await self.routes_view()
        if cmd in ("announce", "withdraw"):
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
        if cmd == "teardown":
            subcode = int(req.get("subcode", 2))
            if not 0 <= subcode <= 255:
                raise ValueError(f"subcode {subcode} is not 0-255")
            done = []
            for rt in self._match(req.get("session"), req.get("neighbor")):
                self.command(f"neighbor {rt.session.cust_addr} teardown {subcode}")
                self.event("teardown", f"Cease/{subcode} {notification_name(6, subcode)} requested",
                           rt.session.key)
                done.append(rt.session.key)
            return done
        if cmd == "scale":
            n = int(req.get("routes", 0))
            more_specifics(n)  # ValueError (to the client) when the ranges cannot hold n
            self.spec.scale_routes = n
            self._rewrite()
            self.event("route", f"table now includes {n} more-specifics (scale)")
            return {f"ipv{f}": len(self.spec.announced(f)) for f in (4, 6)}
        if cmd == "gshut":
            ic = str(req.get("interconnect"))
            if ic not in {rt.session.interconnect for rt in self.runtimes.values()}:
                raise LookupError(f"no interconnect {ic!r}")
            on = bool(req.get("on", True))
            self.spec.gshut = sorted((set(self.spec.gshut) | {ic}) if on else (set(self.spec.gshut) - {ic}))
            self._rewrite()
            self.event("route", f"GRACEFUL_SHUTDOWN {'on' if on else 'off'} for routes on {ic}", ic)
            return self.spec.gshut
        if cmd == "bfd":
            if self.bfd is None:
                return []
            by_key = {rt.bfd_key: rt for rt in self.runtimes.values() if rt.bfd_key}
            out = []
            for i in self.bfd.sessions():
                row = i.model_dump(mode="json")
                rt = by_key.get(i.key)
                if rt is not None:
                    row.update(session=rt.session.key, flaps=rt.bfd_flaps, transitions=list(rt.bfd_transitions))
                out.append(row)
            return out
        if cmd == "configure":
            return self.configure([Session.model_validate(s) for s in req.get("sessions", [])])
        if cmd == "events":
            since = int(req.get("since", 0))
            return [e for e in self.events if e["seq"] > since]
        raise ValueError(f"unknown command {cmd!r} (ping, sessions, routes, announce, withdraw, teardown, "
                         "bfd, configure, events)")

    def configure(self, sessions: list[Session]) -> dict[str, list[str]]:
        keys = [s.key for s in sessions]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"configure: session {sorted(dup)[0]} given twice")
        new = {self._peer_key(s.cust_addr): s for s in sessions}
        result: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        for peer in list(self.runtimes):
            if peer not in new:
                rt = self.runtimes.pop(peer)
                self._bfd_remove(rt)
                result["removed"].append(rt.session.key)
        for peer, s in new.items():
            rt = self.runtimes.get(peer)
            if rt is None:
                rt = self.runtimes[peer] = Runtime(session=s)
                self._bfd_add(rt)
                result["added"].append(s.key)
            elif rt.session != s:
                bfd_changed = (rt.session.bfd, rt.session.bfd_tx_ms, rt.session.bfd_rx_ms,
                               rt.session.bfd_multiplier, rt.session.cf_addr) != (
                    s.bfd, s.bfd_tx_ms, s.bfd_rx_ms, s.bfd_multiplier, s.cf_addr)
                rt.session = s
                if bfd_changed:
                    self._bfd_remove(rt)
                    self._bfd_add(rt)
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

    async def _start_bfd(self, stack: contextlib.AsyncExitStack) -> None:
        if not any(s.bfd for s in self.spec.sessions):
            return
        from sim.edge.bfd import BfdSpeaker

        # eager: the customer's BFD starts when its bgpd registers at Established; answering its
        # first packets at once saves up to a slow-start second of the lab's ready time (issue 16)
        self.bfd = await stack.enter_async_context(BfdSpeaker(self.on_bfd_change, eager_first_handshake=True))
        for rt in self.runtimes.values():
            self._bfd_add(rt)

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
            await self._start_bfd(stack)
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
        print("usage: python -m sim.edge.driver EDGE_JSON", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s driver %(levelname)s %(message)s")
    asyncio.run(EdgeDriver(Path(args[0])).run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
