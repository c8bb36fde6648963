"""Cross-check the customer's router against the plan, from what the daemon itself reports.

The edge sees only what crosses the wire; many mistakes are clearer from the customer's side: a
neighbour address one digit off, a route-map that was never defined, BFD left on toward a v2
interconnect, timers that stretch detection or recovery. Each finding says what the daemon reported
(``evidence``, naming the command), what it means, and the line that fixes it in the daemon's own
syntax (the kind's ``phrases``). Nothing here names a router kind: the kinds fill
:class:`~cnilab.sim.routers.base.RouterFacts` and the words come from their classes.

``judge(plan, facts, cls)`` is pure (tests feed it parsed daemon output); ``cross_check(lab)`` reads
a running lab. The check runner turns findings into report lines: ``fail`` fails the step, ``warn``
is a WARN, ``info`` is context (never a verdict).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from cnilab.sim.facts import load_facts
from cnilab.sim.routers.base import BgpNeighbor, CustomerRouter, RouterFacts
from cnilab.sim.topology.plan import LabPlan, Session
from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["fail", "warn", "info"]
MIN_HOLD_S = 9
"""Shortest hold time worth running without a WARN: three keepalives at 3 s (RFC 4271's suggested ratio)."""
SLOW_RECONNECT_S = 30
"""A reconnect back-off from this long makes recovery after a fault visibly the customer's own delay."""


class Finding(BaseModel):
    """One verdict about the customer's router: what was seen, what to change, and where it was read."""

    model_config = ConfigDict(extra="forbid")

    check: str = Field(description="neighbor-address, remote-as, local-as, undefined-policy, policy-not-applied, "
                                   "outbound-policy, exports, bfd-v2, bfd-missing, bfd-timers, timers, reconnect")
    severity: Severity
    session: str | None = Field(default=None, description="Plan session key (ewr1/v4) when it is about one")
    message: str
    fix: str = ""
    evidence: str = ""


def _phrase(cls: type[CustomerRouter], key: str, fallback: str, **kw: object) -> str:
    tmpl = cls.info().phrases.get(key)
    return tmpl.format(**kw) if tmpl else fallback


def _cmd(cls: type[CustomerRouter], key: str) -> str:
    return cls.info().commands.get(key, key)


def _same_family(a: str, b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(a).version == b.version
    except ValueError:
        return False


def _typo_candidate(s: Session, unmatched: list[BgpNeighbor]) -> BgpNeighbor | None:
    """The neighbour the customer most likely meant as ``s``: AS13335 or the same /24 (/64), closest first.

    Other neighbours (a transit provider, iBGP) are not candidates: they are not a typo of Cloudflare's.
    """
    near = ipaddress.ip_network(f"{s.cf_addr}/{24 if s.family == 4 else 64}", strict=False)
    same = [n for n in unmatched if _same_family(n.peer, s.cf_addr)
            and (n.remote_as == s.cf_asn or ipaddress.ip_address(n.peer) in near)]
    if not same:
        return None
    target = int(s.cf_addr)
    return min(same, key=lambda n: (n.remote_as != s.cf_asn, abs(int(ipaddress.ip_address(n.peer)) - target)))


def judge(plan: LabPlan, facts: RouterFacts, cls: type[CustomerRouter],
          dataplanes: dict[str, str] | None = None) -> list[Finding]:
    """Every finding about ``facts`` (one daemon's state) against ``plan``.

    ``dataplanes`` maps interconnect -> dataplane profile id, to say *why* Cloudflare runs no BFD.
    """
    out: list[Finding] = []
    title = cls.info().title.split(" (")[0]
    plan_peers = {str(s.cf_addr) for s in plan.sessions}
    by_peer = {n.peer: n for n in facts.neighbors}
    unmatched = [n for n in facts.neighbors if n.peer not in plan_peers]
    allowed = {str(p) for p in plan.customer_prefixes}
    profiles = load_facts().profiles

    for policy in facts.undefined_policies:
        out.append(Finding(check="undefined-policy", severity="fail",
                           message=f"your config references {policy!r} but never defines it: {title} applies a "
                                   "policy that does not exist, so what you announce or accept is not what you wrote",
                           fix=f"define {policy} (or correct the name where it is referenced)",
                           evidence=f"{_cmd(cls, 'config')}: {policy} referenced, no definition"))

    for err in facts.policy_errors:
        out.append(Finding(check="policy-not-applied", severity="fail",
                           message=f"{title} is not running the policy your config defines: {err}",
                           fix="fix the policy the daemon names (gobgpd: one prefix-set per address family; an "
                               "import statement accepting route-type local)",
                           evidence=f"{_cmd(cls, 'policy')}: {err}"))

    for s in plan.sessions:
        kw = {"peer": s.cf_addr, "asn": s.cf_asn, "local_as": s.cust_asn, "tx": s.bfd_tx_ms, "rx": s.bfd_rx_ms,
              "mult": s.bfd_multiplier, "hold": s.hold_time, "keepalive": s.keepalive, "wrong": ""}
        n = by_peer.get(str(s.cf_addr))
        if n is None:
            cand = _typo_candidate(s, unmatched)
            if cand is not None:
                unmatched.remove(cand)
                kw["wrong"] = cand.peer
                out.append(Finding(
                    check="neighbor-address", severity="fail", session=s.key,
                    message=f"your router peers with {cand.peer}; Cloudflare is {s.cf_addr} ({s.key}, your side "
                            f"{s.cust_addr})",
                    fix=_phrase(cls, "neighbor", f"change the neighbor {cand.peer} to {s.cf_addr}", **kw),
                    evidence=f"{_cmd(cls, 'neighbors')}: neighbor {cand.peer} AS{cand.remote_as} {cand.state}"))
            else:
                out.append(Finding(
                    check="neighbor-address", severity="fail", session=s.key,
                    message=f"your router has no BGP neighbor {s.cf_addr} (Cloudflare, {s.key})",
                    fix=_phrase(cls, "remote_as", f"add neighbor {s.cf_addr} remote-as {s.cf_asn}", **kw),
                    evidence=f"{_cmd(cls, 'neighbors')}: neighbors "
                             f"{', '.join(sorted(by_peer)) or 'none'}"))
            continue
        ev = f"{_cmd(cls, 'neighbors')}: {n.peer} remote AS{n.remote_as} local AS{n.local_as} {n.state}"
        if n.remote_as is not None and n.remote_as != s.cf_asn:
            out.append(Finding(check="remote-as", severity="fail", session=s.key,
                               message=f"your router expects AS{n.remote_as} at {s.cf_addr}; Cloudflare is "
                                       f"AS{s.cf_asn}",
                               fix=_phrase(cls, "remote_as", f"set the neighbor's AS to {s.cf_asn}", **kw),
                               evidence=ev))
        if n.local_as is not None and n.local_as != s.cust_asn:
            out.append(Finding(check="local-as", severity="fail", session=s.key,
                               message=f"your router opens as AS{n.local_as} toward {s.cf_addr}; the CNI has "
                                       f"AS{s.cust_asn} on file",
                               fix=_phrase(cls, "local_as", f"use AS{s.cust_asn}", **kw), evidence=ev))
        out += _outbound(s, n, facts, cls, kw, allowed, plan)
        out += _bfd(s, n, facts, cls, kw, title, dataplanes, profiles)
        out += _timers(s, n, cls, kw, ev)
    return out


def _outbound(s: Session, n: BgpNeighbor, facts: RouterFacts, cls: type[CustomerRouter], kw: dict,
              allowed: set[str], plan: LabPlan) -> list[Finding]:
    out: list[Finding] = []
    if n.export_policy == []:
        ev = f"{_cmd(cls, 'neighbors')}: no outbound policy on {n.peer}"
        if facts.requires_policy:
            out.append(Finding(check="outbound-policy", severity="fail", session=s.key,
                               message=f"no outbound policy toward {s.cf_addr}, and with `bgp ebgp-requires-policy` "
                                       "(on by default) your router sends Cloudflare nothing",
                               fix=_phrase(cls, "export", "add an outbound policy that permits your prefixes", **kw),
                               evidence=ev))
        else:
            out.append(Finding(check="outbound-policy", severity="warn", session=s.key,
                               message=f"no outbound policy toward {s.cf_addr}: everything in your table is "
                                       "advertised, including Cloudflare's own routes learned on another link, a "
                                       "default route and your link nets",
                               fix=_phrase(cls, "export", "add an outbound policy that permits only your prefixes",
                                           **kw), evidence=ev))
    sent = (facts.exported or {}).get(n.peer)
    if sent:
        extra = {str(p) for p in plan.customer_announce} - allowed  # announce_extra: a rehearsed refusal
        foreign = [p for p in sent if p not in allowed and p not in extra]
        if foreign:
            cf = {str(p) for p in plan.cf_prefixes}
            back = [p for p in foreign if p in cf]
            other = [p for p in foreign if p not in cf]
            what = "; ".join(x for x in (
                f"re-advertises Cloudflare's own {', '.join(back[:4])}{' ...' if len(back) > 4 else ''} "
                f"({len(back)} prefixes, AS13335 in the path: the classic leak)" if back else "",
                f"advertises {', '.join(other[:6])}{' ...' if len(other) > 6 else ''}" if other else "") if x)
            out.append(Finding(check="exports", severity="fail", session=s.key,
                               message=f"your router {what} to Cloudflare; only "
                                       f"{', '.join(sorted(allowed))} are yours to announce",
                               fix=_phrase(cls, "export", "permit only your prefixes toward Cloudflare", **kw),
                               evidence=f"{_cmd(cls, 'exported')}: {len(sent)} prefixes to {n.peer}"))
    return out


def _bfd(s: Session, n: BgpNeighbor, facts: RouterFacts, cls: type[CustomerRouter], kw: dict, title: str,
         dataplanes: dict[str, str] | None, profiles: dict) -> list[Finding]:
    out: list[Finding] = []
    det_ms = s.detection_ms
    if not s.bfd:
        if n.bfd:
            dp = (dataplanes or {}).get(s.interconnect)
            why = (f"dataplane {dp} has no BFD" if dp and dp in profiles and not profiles[dp].bfd
                   else "Cloudflare runs no BFD on this interconnect")
            peer_bfd = next((b for b in facts.bfd or [] if b.peer == str(s.cf_addr)), None)
            now = f" (now: {peer_bfd.state})" if peer_bfd else ""
            out.append(Finding(check="bfd-v2", severity="warn", session=s.key,
                               message=f"BFD is configured toward {s.cf_addr} but {why}: your BFD session stays "
                                       f"Down{now} and only adds noise to your monitoring",
                               fix=_phrase(cls, "bfd_off", f"remove BFD toward {s.cf_addr}", **kw),
                               evidence=f"{_cmd(cls, 'neighbors')}: BFD on for {n.peer}"))
        return out
    if facts.bfd is None or n.bfd is False:
        if facts.bfd is None:  # the daemon cannot run BFD at all: say what that costs
            severity, who, ev = "warn", f"{title} has no BFD", f"{title}: no BFD implementation"
            fix = "keep the hold time short, or run a BFD daemon beside it (e.g. FRR bfdd)"
        else:  # it can, and BFD is off toward Cloudflare: a mistake with a one-line fix
            severity, who, ev = "fail", f"no BFD toward {s.cf_addr}", f"{_cmd(cls, 'neighbors')}: BFD off for {n.peer}"
            fix = _phrase(cls, "bfd_on", "enable BFD toward Cloudflare", **kw)
        out.append(Finding(check="bfd-missing", severity=severity, session=s.key, fix=fix, evidence=ev,
                           message=f"{who}, and Cloudflare runs BFD {s.bfd_tx_ms} ms x {s.bfd_multiplier} on "
                                   f"{s.interconnect}: a silent failure takes your BGP hold time ({s.hold_time} s) "
                                   f"to detect instead of {det_ms} ms"))
        return out
    peer_bfd = next((b for b in facts.bfd if b.peer == str(s.cf_addr)), None)
    if peer_bfd is not None and None not in (peer_bfd.tx_ms, peer_bfd.multiplier):
        tx, rx, mult = peer_bfd.tx_ms or 0, peer_bfd.rx_ms or peer_bfd.tx_ms or 0, peer_bfd.multiplier or 0
        if (tx, rx, mult) != (s.bfd_tx_ms, s.bfd_rx_ms, s.bfd_multiplier):
            yours = mult * max(tx, rx)
            out.append(Finding(check="bfd-timers", severity="warn", session=s.key,
                               message=f"your BFD toward {s.cf_addr} runs {tx}/{rx} ms x {mult} (detection "
                                       f"{yours} ms); the CNI runs {s.bfd_tx_ms}/{s.bfd_rx_ms} ms x "
                                       f"{s.bfd_multiplier} ({det_ms} ms): the two ends detect a failure at "
                                       "different times",
                               fix=_phrase(cls, "bfd_timers", "use the CNI's BFD timers", **kw),
                               evidence=f"{_cmd(cls, 'bfd')}: {peer_bfd.peer} {peer_bfd.state} {tx}/{rx} x {mult}"))
    return out


def _timers(s: Session, n: BgpNeighbor, cls: type[CustomerRouter], kw: dict, ev: str) -> list[Finding]:
    out: list[Finding] = []
    hold, ka = n.hold_time, n.keepalive
    if hold is not None:
        out.append(Finding(check="timers", severity="info", session=s.key,
                           message=f"negotiated hold {hold} s, keepalive {ka} s with {s.cf_addr}", evidence=ev))
        if hold == 0:
            out.append(Finding(check="timers", severity="warn", session=s.key,
                               message=f"hold time 0 with {s.cf_addr}: keepalives are off and BGP never notices a "
                                       "dead link on its own", fix=_phrase(cls, "timers", "set a hold time", **kw),
                               evidence=ev))
        elif hold < MIN_HOLD_S:
            out.append(Finding(check="timers", severity="warn", session=s.key,
                               message=f"negotiated hold time {hold} s with {s.cf_addr} is under {MIN_HOLD_S} s: "
                                       "one delayed keepalive resets the session (BFD is the fast detector)",
                               fix=_phrase(cls, "timers", f"hold time {s.hold_time}", **kw), evidence=ev))
        elif ka is not None and ka >= hold:
            out.append(Finding(check="timers", severity="warn", session=s.key,
                               message=f"keepalive {ka} s >= hold time {hold} s with {s.cf_addr}: the session "
                                       "expires between two keepalives",
                               fix=_phrase(cls, "timers", "keepalive at most hold / 3", **kw), evidence=ev))
    cfg_hold, cfg_ka = n.hold_time_configured, n.keepalive_configured
    if hold is None and cfg_hold and cfg_ka is not None and cfg_ka >= cfg_hold:
        out.append(Finding(check="timers", severity="warn", session=s.key,
                           message=f"configured keepalive {cfg_ka} s >= hold time {cfg_hold} s toward {s.cf_addr}",
                           fix=_phrase(cls, "timers", "keepalive at most hold / 3", **kw), evidence=ev))
    back = max(n.error_wait[0] if n.error_wait else 0, 0)
    if back >= SLOW_RECONNECT_S or (n.connect_retry or 0) >= SLOW_RECONNECT_S:
        what = []
        if n.error_wait and back >= SLOW_RECONNECT_S:
            grows = f" (up to {n.error_wait[1]} s on repeated errors)" if n.error_wait[1] > n.error_wait[0] else ""
            what.append(f"waits {n.error_wait[0]} s after an error before reconnecting{grows}")
        if (n.connect_retry or 0) >= SLOW_RECONNECT_S:
            what.append(f"retries a failed connection every {n.connect_retry} s")
        out.append(Finding(check="reconnect", severity="info", session=s.key,
                           message=f"after a fault your router {' and '.join(what)}: recovery takes at least that "
                                   "long, whatever Cloudflare does",
                           fix=_phrase(cls, "reconnect", "shorten the reconnect timers", **kw), evidence=ev))
    return out


def recovery_cause(plan: LabPlan, facts: RouterFacts, session: str, took_s: float,
                   cls: type[CustomerRouter]) -> Finding | None:
    """Why ``session`` took ``took_s`` to come back, when the customer's own back-off explains it.

    Cloudflare's side is passive: it waits for the customer to reconnect, so a back-off on the
    customer's router (BIRD's ``error wait time`` 60/300 s by default, a long connect-retry: FRR's
    and GoBGP's default 120 s) is the delay, not the edge.
    """
    s = next((x for x in plan.sessions if x.key == session), None)
    n = next((x for x in facts.neighbors if s is not None and x.peer == str(s.cf_addr)), None)
    if s is None or n is None:
        return None
    kw = {"peer": s.cf_addr, "asn": s.cf_asn, "local_as": s.cust_asn, "hold": s.hold_time,
          "keepalive": s.keepalive, "tx": s.bfd_tx_ms, "rx": s.bfd_rx_ms, "mult": s.bfd_multiplier, "wrong": ""}
    waits = [(n.error_wait[0], f"error back-off {n.error_wait[0]} s"
              + (f" (max {n.error_wait[1]} s)" if n.error_wait[1] > n.error_wait[0] else ""))] if n.error_wait else []
    if n.connect_retry:
        waits.append((n.connect_retry, f"connect-retry {n.connect_retry} s"))
    # The back-off that explains the delay: the longest one that fits in it (BIRD's error wait comes
    # before any connect retry), else, when the wait ran out first, the shortest one still running.
    cause = [(w, what) for w, what in waits if w >= SLOW_RECONNECT_S and took_s >= 0.5 * w]
    if not cause:
        return None
    fits = [c for c in cause if c[0] <= took_s + 5]
    _, what = max(fits) if fits else min(cause)
    return Finding(check="reconnect", severity="warn", session=session,
                   message=f"{session} took {took_s:.0f} s to return because your router's {what} kept it from "
                           "reconnecting; Cloudflare's side waits passively for your router",
                   fix=_phrase(cls, "reconnect", "shorten the reconnect timers", **kw),
                   evidence=f"{_cmd(cls, 'config')}: {what}")


def cross_check(lab: object, dataplanes: dict[str, str] | None = None) -> list[Finding]:
    """Findings about the customer router running in ``lab``; [] when it runs outside the lab."""
    from cnilab.sim.routers import router_for

    router = router_for(lab)  # type: ignore[arg-type]
    if router is None:
        return []
    return judge(router.lab.plan, router.facts(), type(router), dataplanes)
