"""Registered incident kinds: ``KINDS[name](lab, params) -> Outcome``; each measures on the real lab.

A kind raises ``ValueError`` for parameters or a topology it cannot use (bad input, exit 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.handle import LabHandle
from pydantic import BaseModel, Field


class Outcome(BaseModel):
    passed: bool
    cause: str | None = None
    fix: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    measured: dict[str, Any] = Field(default_factory=dict)


Kind = Callable[[Any, dict[str, Any]], Outcome]
KINDS: dict[str, Kind] = {}


def register(name: str) -> Callable[[Kind], Kind]:
    def deco(fn: Kind) -> Kind:
        KINDS[name] = fn
        return fn
    return deco


def leak_outcome(announced: dict[str, dict[str, list[int]]], plan: Any, established: dict[str, bool]) -> Outcome:
    """The verdict from what each third party received (prefix -> AS path), for both executors."""
    from cnilab.sim.transit import party_sessions
    from cnilab.sim.transit.leaks import classify, fix_lines
    from cnilab.sim.verify.observe import leak_findings

    parties = {t.party: t for t in party_sessions(plan)}
    measured = {f"announced_to_{p}": sorted(announced.get(p, {})) for p in parties}
    if not established.get("transit"):
        return Outcome(passed=False, cause="the customer never established BGP with its transit (AS64500): nothing "
                                           "to judge; peer with 203.0.113.0 as in the template", measured=measured)
    leaks = []
    for name, t in parties.items():
        found = classify(name, announced.get(name, {}), plan.customer_prefixes)
        leaks += leak_findings(found, fix_lines(name, str(t.local), plan.customer_prefixes, t.peer_asn))
    if leaks:
        return Outcome(passed=False, cause="; ".join(f.text for f in leaks), fix=leaks[0].fix, measured=measured)
    own = {str(p) for p in plan.customer_prefixes if p.version == 4}
    sent = set(announced.get("transit", {}))
    warn = [] if own <= sent else [
        f"your own {', '.join(sorted(own - sent))} is not announced to the transit either: the "
        "internet backup path would not carry traffic back to you (FRR: eBGP needs an outbound policy, "
        "`bgp ebgp-requires-policy`)"]
    return Outcome(passed=True, warnings=warn, measured=measured)


@register("leak-to-transit")
def leak_to_transit(lab: LabHandle, params: dict[str, Any]) -> Outcome:
    """Observe what the customer announces to its transit (and peer) once converged (cnilab.sim.verify.observe)."""
    from cnilab.sim.transit import party_sessions, transit_session
    from cnilab.sim.verify.observe import observe

    if transit_session(lab.plan) is None:
        raise ValueError("leak-to-transit needs a topology with a transit (internet_backup: true)")
    obs = observe(lab, "incident", probes=False)
    announced, established = {}, {}
    for t in party_sessions(lab.plan):
        nb = obs.neighbors.get(t.party)
        announced[t.party] = {p: r.as_path for p, r in nb.routes.items()} if nb else {}
        established[t.party] = bool(nb and nb.sessions[0].state == "established")
    return leak_outcome(announced, lab.plan, established)


@register("pop-maintenance")
def pop_maintenance(lab: LabHandle, params: dict[str, Any]) -> Outcome:
    """GRACEFUL_SHUTDOWN on the link in use, a wait, then every route on it withdrawn at once."""
    from cnilab.sim.drills.gshut import gshut_drill

    rep = gshut_drill(lab, params.get("link"), float(params.get("wait_s", 5.0)), int(params.get("rate_pps", 200)),
                      pull=params.get("pull", "withdraw"))
    return Outcome(passed=rep.honoured, cause=None if rep.honoured else rep.summary, fix=rep.fix,
                   measured=rep.model_dump(exclude={"fix"}))


@register("md5-rotation-one-side")
def md5_rotation(lab: LabHandle, params: dict[str, Any]) -> Outcome:
    """Cloudflare's side moves to a new MD5 key on one link; the customer keeps the old one.

    Measured: the session drops and stays down, the edge names the MD5 mismatch, and traffic keeps
    flowing over another interconnect (loss no longer than the link's failure detection). Then the
    edge goes back to the old key and the session must come back (the customer router retries)."""
    from cnilab.sim.drills.gshut import _path_map, customer_path
    from cnilab.sim.probes.mtu import _first_v4
    from cnilab.sim.probes.traffic import UdpStream
    from cnilab.sim.topology.plan import INTERNET, ORIGIN

    edge = EdgeClient(lab.state.control["edge"])
    plan = lab.plan
    dst = _first_v4(plan, INTERNET)
    devmap = _path_map(lab)
    link = params.get("link") or customer_path(lab, dst, devmap)
    if link not in {s.interconnect for s in plan.sessions}:
        raise ValueError(f"md5-rotation-one-side: link {link!r} is not an interconnect")
    new_key = str(params.get("new_key", "rotated-key-2"))
    rotated = [s.model_copy(update={"md5": new_key}) if s.interconnect == link else s for s in plan.sessions]
    keys = [s.key for s in plan.sessions if s.interconnect == link]
    sess = plan.sessions_for(link)[0]
    detect_ms = sess.bfd_multiplier * max(sess.bfd_tx_ms, sess.bfd_rx_ms) if sess.bfd else sess.hold_time * 1000
    diag = ""
    try:
        with UdpStream(lab.netns_path(ORIGIN), lab.netns_path(INTERNET), dst, 200) as stream:
            time.sleep(0.5)
            t0 = time.monotonic()
            edge.configure(rotated)
            deadline = t0 + sess.hold_time + 20  # MD5 drops are sampled once a second; retries every few s
            while time.monotonic() < deadline:
                ss = [edge.session(k) for k in keys]
                diag = "; ".join(s.last_error or "" for s in ss)
                if all(not s.up for s in ss) and "MD5" in diag:
                    break
                time.sleep(0.2)
            after = customer_path(lab, dst, devmap)
            time.sleep(0.5)
        st = stream.stats()
    finally:
        edge.configure(plan.sessions)
    back = True
    try:
        edge.wait_established(keys, timeout=60)
    except Exception:
        back = False
    measured = {"link": link, "diagnosis": diag, "path_after": after, "lost": st.lost, "sent": st.sent,
                "loss_window_ms": st.max_gap_ms, "detection_ms": detect_ms, "re_established": back}
    others = len({s.interconnect for s in plan.sessions}) > 1 or any(n.name == "transit" for n in plan.nodes)
    if "MD5" not in diag:
        return Outcome(passed=False, cause=f"the edge did not name the key mismatch on {link}: {diag or 'no error'}",
                       measured=measured)
    if not back:
        return Outcome(passed=False, cause=f"{link} did not come back after the keys matched again: the customer "
                                           "router must keep retrying (FRR `timers connect`, BIRD `connect retry "
                                           "time`)", measured=measured)
    if after == link or not others or st.max_gap_ms > detect_ms * 2 + 500:
        return Outcome(passed=False, cause=f"traffic was lost for {st.max_gap_ms:.0f} ms ({st.lost} packets) while the "
                                           f"MD5 keys differed on {link}: a correct design carries it on another "
                                           "interconnect (local-pref, BFD) and rotates keys one link at a time",
                       fix={"frr": "neighbor X password NEW-KEY on the same maintenance window as Cloudflare's change"},
                       measured=measured)
    return Outcome(passed=True, measured=measured)


@register("max-prefix-growth")
def max_prefix_growth(lab: LabHandle, params: dict[str, Any]) -> Outcome:
    """Cloudflare's table grows by ``routes`` more-specifics; the customer's limit must leave room."""
    from cnilab.sim.verify.customer import read_customer

    edge = EdgeClient(lab.state.control["edge"])
    grow = int(params.get("routes", 200))
    limits = read_customer(lab).max_prefix
    sizes = edge.scale(grow)
    v4 = [s for s in lab.plan.sessions if s.family == 4]
    limit = min((lim for s in v4 if (lim := limits.get(str(s.cf_addr))) is not None), default=None)
    keys = [s.key for s in v4]
    deadline = time.monotonic() + 20
    tripped: list[str] = []
    accepted = 0
    while time.monotonic() < deadline:
        ss = [edge.session(k) for k in keys]
        tripped = [s.key for s in ss if s.last_notification and s.last_notification.direction == "received"
                   and (s.last_notification.code, s.last_notification.subcode) == (6, 1)]
        if tripped:
            break
        from cnilab.sim.observe.ribs import installed_routes

        accepted = len(installed_routes(lab).get("ipv4", []))
        if accepted >= sizes["ipv4"]:
            break
        time.sleep(0.3)
    edge.scale(0)
    return max_prefix_outcome(sizes["ipv4"], limit, accepted, tripped, str(v4[0].cf_addr))


def max_prefix_outcome(table: int, limit: int | None, installed: int, tripped: list[str], neighbor: str) -> Outcome:
    """The verdict once Cloudflare's IPv4 table reached ``table`` routes, for both executors."""
    measured = {"table_ipv4": table, "limit": limit, "installed_ipv4": installed, "tripped": tripped}
    fix = {"frr": f"neighbor {neighbor} maximum-prefix {table * 4} 90 restart 5",
           "bird": f"ipv4 {{ import limit {table * 4} action restart; }};"}
    if tripped:
        return Outcome(passed=False, cause=f"your maximum-prefix {limit} fired when Cloudflare's table grew to "
                                           f"{table} IPv4 routes (Cease 6/1 on {', '.join(tripped)}): the "
                                           "sessions went down", fix=fix, measured=measured)
    if installed < table:
        return Outcome(passed=False, cause=f"only {installed} of {table} routes installed 20 s after the table "
                                           "grew", measured=measured)
    warn = [] if limit is not None else ["no maximum-prefix toward Cloudflare: the grown table was accepted, but so "
                                         "would a full internet table be (a leak on Cloudflare's side)"]
    return Outcome(passed=True, warnings=warn, fix={} if limit is not None else fix, measured=measured)
