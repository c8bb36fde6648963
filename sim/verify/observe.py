"""Record an :class:`~cnilab.sim.verify.model.Observation` of a running lab once it has converged.

Convergence-aware, with timers from the plan and the daemons, never fixed sleeps:

* positive checks (every planned session Established, BFD Up at the configured timers, the
  sessions to the transit and the peer Established when the lab has them) must hold on
  ``STABLE_SAMPLES`` consecutive samples;
* negative checks (no leak to a third party, nothing else appearing or vanishing) are judged only
  after that, and the whole routing picture must then stay identical for a hold window: the longest
  of the BFD detection time and the customer's advertisement interval toward the third parties plus
  FRR's update coalescing (1 s), and never under 2 s: the time within which anything still on its
  way would have arrived. Any change restarts the window.

When the deadline passes first, the observation is still recorded (a session that never came up is
a fact to compare) with ``converged`` false and a note saying which check did not hold.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnilab.sim.facts import cloudflare_ranges
from cnilab.sim.handle import LabHandle
from cnilab.sim.observe.observer import LabObserver
from cnilab.sim.topology.plan import LabPlan, Session
from cnilab.sim.transit import party_sessions
from cnilab.sim.transit.leaks import Leak, classify, fix_lines
from cnilab.sim.verify.customer import CustomerView, read_customer
from cnilab.sim.verify.model import (
    BfdObs,
    Finding,
    MaxPrefixObs,
    Neighbor,
    Observation,
    ProbeObs,
    Route,
    SessionObs,
)

SAMPLE_S = 0.25
STABLE_SAMPLES = 3
SETTLE_S = 12.0
"""A session refused with a NOTIFICATION (or failing the MD5 check) for this long - two of the
template's 5 s connect retries plus slack - is settled down: waiting longer only delays the verdict."""
MIN_HOLD_S = 2.0
COALESCE_S = 1.0
"""FRR's default subgroup coalesce time: a peer's first UPDATEs can trail its Established by this."""


@dataclass(frozen=True)
class Timers:
    sample_s: float
    stable_samples: int
    hold_window_s: float
    deadline_s: float


def timers_for(plan: LabPlan, mrai_s: float = 0.0, deadline_s: float = 45.0) -> Timers:
    """The hold window from the plan's BFD detection and the customer's MRAI toward the transit."""
    bfd = max((s.bfd_multiplier * max(s.bfd_tx_ms, s.bfd_rx_ms) / 1000 for s in plan.sessions if s.bfd),
              default=0.0)
    hold = max(MIN_HOLD_S, bfd, mrai_s + COALESCE_S + SAMPLE_S)
    return Timers(SAMPLE_S, STABLE_SAMPLES, hold, deadline_s)


def tripped_max_prefix(sess: Any) -> bool:
    """The customer sent Cease 6/1: its maximum-prefix fired. The session stays down until the
    customer's restart timer (if any): settled, not still converging."""
    n = sess.last_notification
    return bool(n is not None and n.direction == "received" and (n.code, n.subcode) == (6, 1) and not sess.up)


class Sampler:
    """One look at the lab through its observer (:meth:`LabObserver.ribs`): edge sessions/routes/BFD,
    each third party's Adj-RIB-In, the customer's kernel; plus the convergence judgement on them.

    Without ``observer`` it makes one that reads only on demand (no background poll)."""

    def __init__(self, lab: LabHandle, observer: LabObserver | None = None) -> None:
        self.lab = lab
        self.plan: LabPlan = lab.plan
        self.observer = observer or LabObserver(lab, customer=False, routes=False)
        self.parties = party_sessions(self.plan)
        self.t0, self.wall0 = time.monotonic(), time.time()

    def sample(self) -> dict[str, Any]:
        r = self.observer.ribs(max_age=0.0)
        return {"sessions": r.sessions, "routes": r.routes, "bfd": r.bfd, "parties": r.parties,
                "installed": r.installed}

    @staticmethod
    def signature(s: dict[str, Any]) -> str:
        """What must not change during the hold window (timestamps and uptimes left out)."""
        sig = {
            "sessions": sorted((x.key, x.up) for x in s["sessions"]),
            "routes": sorted((r.session, r.prefix, tuple(r.as_path), r.med, tuple(r.communities), r.accepted,
                              r.best) for r in s["routes"].received),
            "bfd": sorted((str(b.get("peer")), b.get("state"), b.get("detection_ms")) for b in s["bfd"]),
            "parties": {party: (rec.state, sorted((p, tuple(r.as_path), tuple(r.communities))
                                                  for p, r in rec.routes.items()))
                        for party, rec in s["parties"].items()},
            "installed": s["installed"],
        }
        return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()

    def positive(self, s: dict[str, Any]) -> list[str]:
        """Positive checks that do not hold yet (empty = all hold)."""
        missing = []
        by_key = {x.key: x for x in s["sessions"]}
        settled_ok = time.monotonic() - self.t0 > SETTLE_S
        down_for_good = set()
        for p in self.plan.sessions:
            x = by_key.get(p.key)
            if x and not x.up and (tripped_max_prefix(x) or (settled_ok and (
                    (x.last_notification is not None and x.last_notification.time >= self.wall0)
                    or "MD5" in (x.last_error or "")))):
                down_for_good.add(p.key)  # refused: a fact to record, not a convergence still under way
            elif not (x and x.up):
                missing.append(f"{p.key} not Established")
        tripped = down_for_good
        bfd_peers = [str(p.cust_addr) for p in self.plan.sessions if p.bfd and p.key not in tripped]
        states = {str(b.get("peer")): b for b in s["bfd"]}
        for peer in bfd_peers:
            b = states.get(peer)
            # Up, and past slow start (RFC 5880 6.8.3: >= 1 s while not Up) with no Poll in flight: the
            # timers both sides negotiate from their configs (the customer's may differ from the plan)
            if not b or b.get("state") != "Up" or b.get("poll_active") or b.get("advertised_tx_ms") != b.get("tx_ms"):
                missing.append(f"BFD {peer} not Up at its negotiated timers")
        for party, rec in s["parties"].items():
            # a customer that never opened the session by now does not peer with it: a fact to
            # record (the observation notes it), not a convergence still under way
            if rec.state != "established" and not (settled_ok and rec.established_count == 0):
                missing.append(f"{party} session {rec.state}")
        return missing


def wait_converged(sampler: Sampler, timers: Timers, sleep: Callable[[float], None] = time.sleep
                   ) -> tuple[dict[str, Any], bool, float, float, list[str]]:
    """Positive checks on consecutive samples, then the picture held unchanged for the window.

    Returns (last sample, converged, seconds to convergence, seconds held, what did not hold)."""
    t0 = time.monotonic()
    deadline = t0 + timers.deadline_s
    good = 0
    s = sampler.sample()
    while True:
        missing = sampler.positive(s)
        good = good + 1 if not missing else 0
        if good >= timers.stable_samples:
            break
        if time.monotonic() > deadline:
            return s, False, time.monotonic() - t0, 0.0, missing
        sleep(timers.sample_s)
        s = sampler.sample()
    converged_at = time.monotonic()
    sig, since = sampler.signature(s), converged_at
    while time.monotonic() - since < timers.hold_window_s:
        if time.monotonic() > deadline:
            return s, False, converged_at - t0, time.monotonic() - since, [
                f"routes still changing {timers.deadline_s:.0f}s after start"]
        sleep(timers.sample_s)
        s = sampler.sample()
        missing = sampler.positive(s)
        new = sampler.signature(s)
        if new != sig or missing:
            sig, since = new, time.monotonic()
    return s, True, since - t0, time.monotonic() - since, []


def _cf_neighbors(plan: LabPlan, s: dict[str, Any], view: CustomerView) -> dict[str, Neighbor]:
    """Sessions (timers as negotiated, from the customer's daemon; the plan's when it does not say)."""
    out: dict[str, Neighbor] = {}
    sess_by_key = {x.key: x for x in s["sessions"]}
    for p in plan.sessions:
        nb = out.setdefault(p.interconnect, Neighbor(name=p.interconnect, kind="cloudflare"))
        x = sess_by_key.get(p.key)
        note = None
        if x is not None and x.last_notification is not None:
            n = x.last_notification
            note = f"{n.direction} {n.code}/{n.subcode} {n.name}"
        hold, ka = view.timers.get(str(p.cf_addr), (p.hold_time, p.keepalive))
        nb.sessions.append(SessionObs(key=p.key, state=x.state if x else "absent", peer_asn=p.cust_asn,
                                      hold_time=hold, keepalive=ka, md5=bool(p.md5), last_notification=note))
    ic_of = {p.key: p.interconnect for p in plan.sessions}
    for r in s["routes"].received:
        ic = ic_of.get(r.session)
        if ic is None:
            continue
        out[ic].routes[r.prefix] = Route(prefix=r.prefix, as_path=list(r.as_path), med=r.med,
                                         communities=list(r.communities), accepted=r.accepted,
                                         reason=None if r.accepted else r.reason, best=r.best, rov=r.rov)
    return out


LEAK_TITLES = {
    "cloudflare-route": "Cloudflare's routes (AS13335 in the path) re-advertised to your {party}: a route leak "
                        "(valley-free violation)",
    "default-route": "a default route announced to your {party}",
    "not-own": "prefixes that are not yours announced to your {party}",
}


def leak_findings(leaks: list[Leak], fix: dict[str, str]) -> list[Finding]:
    """One failing finding per party and kind of leak, naming every prefix (and each reason in order)."""
    groups: dict[tuple[str, str], list[Leak]] = {}
    for lk in leaks:
        groups.setdefault((lk.party, lk.kind), []).append(lk)
    out = []
    for (party, kind), items in groups.items():
        title = LEAK_TITLES[kind].format(party=party)
        listing = ", ".join(f"{lk.prefix} (path {' '.join(map(str, lk.as_path))})" for lk in items)
        out.append(Finding(severity="fail", check="leak", subject=f"{kind} to {party}",
                           text=f"{len(items)} route(s): {title}: {listing}", fix=fix))
    return out


def _mp_fix(p: Session, limit: int) -> dict[str, str]:
    """Room for Cloudflare's table to grow, and a restart rather than a session down for good."""
    return {"frr": f"router bgp {p.cust_asn}\n address-family ipv{p.family} unicast\n"
                   f"  neighbor {p.cf_addr} maximum-prefix {limit} 90 restart 5",
            "bird": f"protocol bgp ... {{ ipv{p.family} {{ import limit {limit} action restart; }}; }}"}


def _max_prefix(plan: LabPlan, view: CustomerView, s: dict[str, Any]) -> tuple[list[MaxPrefixObs], list[Finding]]:
    obs, findings = [], []
    announced = s["routes"].announced
    by_key = {x.key: x for x in s["sessions"]}
    for p in plan.sessions:
        if view.kind not in ("frr", "bird"):
            break
        table = len(announced.get(f"ipv{p.family}", []))
        published = sum(1 for r in cloudflare_ranges() if r.version == p.family)
        limit = view.max_prefix.get(str(p.cf_addr))
        sess = by_key.get(p.key)
        n = sess.last_notification if sess else None
        if n is not None and n.direction == "received" and (n.code, n.subcode) == (6, 1):
            verdict = "too-low" if limit is not None and limit < published else "ok"
            findings.append(Finding(
                severity="fail" if verdict == "too-low" else "warn", check="max-prefix", subject=p.key,
                text=f"{p.key}: your maximum-prefix {limit} fired (Cease 6/1, Maximum Number of Prefixes "
                     f"Reached) with {table} routes from Cloudflare: the session went down",
                fix=_mp_fix(p, max(published * 4, table * 2))))
        elif limit is None:
            verdict = "absent"
            findings.append(Finding(
                severity="warn", check="max-prefix", subject=p.key,
                text=f"{p.key}: no maximum-prefix on the session to Cloudflare: a full table (a leak on "
                     "Cloudflare's side) would be accepted",
                fix=_mp_fix(p, published * 4)))
        elif limit < published:
            verdict = "too-low"
            findings.append(Finding(
                severity="fail", check="max-prefix", subject=p.key,
                text=f"{p.key}: maximum-prefix {limit} is below Cloudflare's published IPv{p.family} table "
                     f"({published} ranges): the session will be torn down (Cease 6/1)",
                fix=_mp_fix(p, published * 4)))
        else:
            verdict = "ok"
        obs.append(MaxPrefixObs(session=p.key, limit=limit, table=table, published=published,
                                verdict=verdict))  # type: ignore[arg-type]
    return obs, findings


def _probes(lab: LabHandle) -> tuple[list[ProbeObs], dict[str, str]]:
    from cnilab.sim.probes.mss import probe_mss
    from cnilab.sim.probes.mtu import probe_mtu

    out, raw = [], {}
    mtu = probe_mtu(lab)
    raw["probe mtu"] = mtu.model_dump_json(indent=1)
    out += [ProbeObs(name=f"mtu {r.direction}" + (f" (IPv{fam})" if (fam := getattr(r, "family", 4)) != 4 else ""),
                     value=r.measured, expected=r.expected, ok=r.ok) for r in mtu.results]
    mss = probe_mss(lab)
    raw["probe mss"] = mss.model_dump_json(indent=1)
    out += [ProbeObs(name=f"mss {r.direction}", value=r.syn_arrived, expected=r.required, ok=r.ok)
            for r in mss.results]
    return out, raw


def _third_parties(obs: Observation, plan: LabPlan, sampler: Sampler, s: dict[str, Any],
                   view: CustomerView) -> list[Finding]:
    """Each third party as a neighbor (what it received) and the leaks toward it, with the fix."""
    findings: list[Finding] = []
    for t in sampler.parties:
        rec = s["parties"][t.party]
        hold, ka = view.timers.get(str(t.local), (t.hold_time, t.hold_time // 3))
        nb = Neighbor(name=t.party, kind=t.party, sessions=[SessionObs(
            key=t.party, state=rec.state, peer_asn=t.peer_asn, hold_time=hold, keepalive=ka)])
        nb.routes = {p: Route(prefix=p, as_path=r.as_path, med=r.med, communities=r.communities)
                     for p, r in rec.routes.items()}
        obs.neighbors[t.party] = nb
        obs.evidence[f"{t.party} AS{t.local_asn} received (Adj-RIB-In + last UPDATEs)"] = rec.model_dump_json(indent=1)
        leaks = classify(t.party, {p: r.as_path for p, r in rec.routes.items()}, plan.customer_prefixes)
        findings += leak_findings(leaks, fix_lines(t.party, str(t.local), plan.customer_prefixes, t.peer_asn))
        if rec.state != "established":
            obs.notes.append(f"{t.party} session {rec.state}: what the customer would announce to its {t.party} "
                             f"AS{t.local_asn} was not observed (does your config peer with {t.local}?)")
    roles = {t.party for t in sampler.parties}
    if "transit" not in roles:
        obs.notes.append("no transit in this topology (internet_backup: false): leaks toward it not checked")
    if "peer" not in roles:
        obs.notes.append("no peer in this topology (peer: false): leaks toward a peer not checked")
    return findings


def observe(lab: LabHandle, label: str, *, probes: bool = True, failover: bool = True, deadline_s: float = 45.0,
            started: float | None = None) -> Observation:
    """Wait for convergence, then record everything verify compares (see the module docstring)."""
    t_start = started if started is not None else time.monotonic()
    plan: LabPlan = lab.plan
    sampler = Sampler(lab)
    first = read_customer(lab)
    mrai = max((first.mrai_s.get(str(t.local), 0.0) for t in sampler.parties), default=0.0)
    timers = timers_for(plan, mrai, deadline_s)
    s, converged, conv_s, held, missing = wait_converged(sampler, timers)
    view = read_customer(lab)
    cfg = plan.customer_router.config
    obs = Observation(
        label=label, topology=plan.topology, router_kind=plan.customer_router.kind,
        config=str(cfg) if cfg else None,
        config_sha256=hashlib.sha256(Path(cfg).read_bytes()).hexdigest() if cfg else None,
        lab=lab.name, converged=converged, convergence_s=round(conv_s, 2), hold_window_s=round(held, 2),
        installed=s["installed"],
    )
    if not converged:
        obs.notes.append("not converged: " + "; ".join(missing))
    obs.neighbors = _cf_neighbors(plan, s, view)
    obs.bfd = [BfdObs(peer=str(b.get("peer")), state=str(b.get("state")), detection_ms=b.get("detection_ms"))
               for b in s["bfd"]]
    obs.findings += _third_parties(obs, plan, sampler, s, view)
    mp, mp_findings = _max_prefix(plan, view, s)
    obs.max_prefix, obs.findings = mp, obs.findings + mp_findings
    if probes:
        try:
            obs.probes, raw = _probes(lab)
            obs.evidence.update(raw)
        except Exception as exc:  # a probe that cannot run here is a note, never a verdict
            obs.notes.append(f"probes skipped: {type(exc).__name__}: {exc}")
    if probes and failover and converged:  # last: it pulls a link (and restores it)
        from cnilab.sim.verify.failover import observe_failover

        try:
            obs.failover = observe_failover(lab, obs)
        except Exception as exc:  # a measurement that cannot run here is a note, never a verdict
            obs.notes.append(f"failover skipped: {type(exc).__name__}: {exc}")
    obs.evidence["edge sessions"] = json.dumps([x.model_dump(mode="json") for x in s["sessions"]], indent=1)
    obs.evidence["edge routes"] = s["routes"].model_dump_json(indent=1)
    obs.evidence["edge bfd"] = json.dumps(s["bfd"], indent=1, default=str)
    obs.evidence.update({f"customer: {k}": v for k, v in view.raw.items()})
    obs.seconds = round(time.monotonic() - t_start, 2)
    return obs
