"""Why a session is not Established, in words: starting, MD5, BFD hold-down, a NOTIFICATION, or
no connection at all; and the timers that work today but drop the session under stress."""

from __future__ import annotations

import time

from cnilab.sim.edge.md5 import Md5Watch
from cnilab.sim.edge.peer import Peer
from cnilab.sim.facts import load_facts

STARTING_WINDOW_S = 30.0
"""How long a session that has seen nothing yet is "starting" rather than "the customer never
connected": the customer daemon's own start (BIRD's `start delay time` is 5 s, FRR connects at once)
plus the time to start daemons on a loaded 2-core machine. Any evidence (a NOTIFICATION, MD5 drops,
a TCP connection) ends the window early."""


def starting(rt: Peer, md5: Md5Watch) -> bool:
    """Nothing seen yet and still inside the start-up window: not a verdict yet."""
    return (not rt.up and not rt.connected_ever and rt.established_count == 0 and rt.last_error is None
            and rt.last_notification is None and md5.evidence(rt.up, rt.notification_time()) is None
            and time.time() - rt.created < STARTING_WINDOW_S)


def diagnose(rt: Peer, md5: Md5Watch) -> str | None:
    if rt.up:
        return None
    s = rt.session
    if starting(rt, md5):
        return (f"starting: waiting for the customer router to connect to {s.cf_addr}:179 "
                f"({time.time() - rt.created:.0f} s since the edge configured this session)")
    if md5.evidence(rt.up, rt.notification_time()) is not None:
        return (f"no TCP session with {s.cust_addr}: the kernel dropped its segments on the MD5 check "
                f"({md5.detail}): no MD5 signature or wrong key on the customer router "
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


def warnings(rt: Peer) -> list[str]:
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
