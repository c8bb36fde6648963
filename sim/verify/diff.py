"""Differences between two observations, each as one sentence an ``--expect`` file can declare.

The sentence grammar is the contract with the expect file (:mod:`cnilab.sim.verify.expect`)::

    PREFIX to NEIGHBOR added (AS path 65010)            PREFIX to NEIGHBOR removed
    PREFIX to NEIGHBOR gains prepend 65010 65010        PREFIX to NEIGHBOR loses prepend 65010
    PREFIX to NEIGHBOR AS path 65010 -> 65010 64999     PREFIX to NEIGHBOR MED 0 -> 50
    PREFIX to NEIGHBOR gains community 65535:0          PREFIX to NEIGHBOR loses community 65010:1
    PREFIX to NEIGHBOR now refused by Cloudflare        PREFIX to NEIGHBOR now accepted by Cloudflare
    PREFIX at Cloudflare moves from ewr1 to ewr2
    session ewr1/v4 Established -> Active               session ewr1/v4 hold time 9 -> 30
    BFD 192.0.2.11 Up -> Down                           customer installs 8.8.8.0/24 (new)
    customer no longer installs 104.16.0.0/13           mtu customer_to_cf 1476 -> 1400
    failover cf_to_customer after pulling ewr1: ewr1 -> ewr2 becomes ewr1 -> lax1
    failover customer_to_cf after pulling ewr1 now fails (lost 9120 ms, bound 2300 ms)
    new finding: leak 104.16.0.0/13 to transit          finding gone: max-prefix ewr1/v4
    max-prefix ewr1/v4 none -> 100

NEIGHBOR is the interconnect name (``ewr1``) for Cloudflare, or ``transit``/``peer``.
"""

from __future__ import annotations

from cnilab.sim.verify.failover import failover_diffs
from cnilab.sim.verify.model import Difference, Neighbor, Observation, Route


def _path(p: list[int]) -> str:
    return " ".join(map(str, p)) or "(empty)"


def prepend_change(old: list[int], new: list[int]) -> tuple[str, list[int]] | None:
    """('gains'|'loses', the ASNs) when one path is the other with its first AS repeated."""
    if not old or not new or old[0] != new[0]:
        return None
    first = old[0]
    for longer, shorter, verb in ((new, old, "gains"), (old, new, "loses")):
        extra = len(longer) - len(shorter)
        if extra > 0 and longer[extra:] == shorter and all(a == first for a in longer[:extra]):
            return verb, [first] * extra
    return None


def _route_diffs(nb: str, old: Route, new: Route) -> list[str]:
    out = []
    head = f"{new.prefix} to {nb}"
    if old.as_path != new.as_path:
        pre = prepend_change(old.as_path, new.as_path)
        if pre:
            out.append(f"{head} {pre[0]} prepend {_path(pre[1])}")
        else:
            out.append(f"{head} AS path {_path(old.as_path)} -> {_path(new.as_path)}")
    if (old.med or 0) != (new.med or 0):
        out.append(f"{head} MED {old.med or 0} -> {new.med or 0}")
    for c in sorted(set(new.communities) - set(old.communities)):
        out.append(f"{head} gains community {c}")
    for c in sorted(set(old.communities) - set(new.communities)):
        out.append(f"{head} loses community {c}")
    if old.rov != new.rov and old.rov is not None and new.rov is not None:
        out.append(f"{head} RPKI {old.rov} -> {new.rov}")
    if old.accepted is not None and new.accepted is not None and old.accepted != new.accepted:
        out.append(f"{head} now {'accepted' if new.accepted else 'refused'} by Cloudflare"
                   + (f": {new.reason}" if new.reason and not new.accepted else ""))
    return out


def _neighbor_diffs(name: str, old: Neighbor | None, new: Neighbor | None) -> list[Difference]:
    out: list[Difference] = []
    o_routes = old.routes if old else {}
    n_routes = new.routes if new else {}
    for p in sorted(set(n_routes) - set(o_routes)):
        r = n_routes[p]
        extra = f" (AS path {_path(r.as_path)})"
        if r.accepted is False:
            extra += " refused by Cloudflare"
        out.append(Difference(area="route", text=f"{p} to {name} added{extra}"))
    for p in sorted(set(o_routes) - set(n_routes)):
        out.append(Difference(area="route", text=f"{p} to {name} removed"))
    for p in sorted(set(o_routes) & set(n_routes)):
        out += [Difference(area="route", text=t) for t in _route_diffs(name, o_routes[p], n_routes[p])]
    o_sess = {s.key: s for s in (old.sessions if old else [])}
    n_sess = {s.key: s for s in (new.sessions if new else [])}
    for k in sorted(set(o_sess) | set(n_sess)):
        a, b = o_sess.get(k), n_sess.get(k)
        if a is None or b is None:
            out.append(Difference(area="session", text=f"session {k} {'added' if a is None else 'removed'}"))
            continue
        if a.state != b.state:
            why = f" ({b.last_notification})" if b.last_notification else ""
            out.append(Difference(area="session", text=f"session {k} {a.state} -> {b.state}{why}"))
        for f, label in (("hold_time", "hold time"), ("keepalive", "keepalive"), ("md5", "md5"),
                         ("peer_asn", "peer AS")):
            if getattr(a, f) != getattr(b, f):
                out.append(Difference(area="session", text=f"session {k} {label} {getattr(a, f)} -> {getattr(b, f)}"))
    return out


def _best_moves(old: Observation, new: Observation) -> list[Difference]:
    def best(o: Observation) -> dict[str, str]:
        out: dict[str, str] = {}
        for nb in o.neighbors.values():
            for p, r in nb.routes.items():
                if r.best:
                    out[p] = nb.name
        return out

    a, b = best(old), best(new)
    out = []
    for p in sorted(set(a) | set(b)):
        if a.get(p) != b.get(p):
            out.append(Difference(area="route", text=f"{p} at Cloudflare moves from {a.get(p, 'nowhere')} to "
                                                     f"{b.get(p, 'nowhere')}"))
    return out


def diff(old: Observation, new: Observation) -> list[Difference]:
    """Every difference, routes first (per neighbor), then sessions, BFD, installs, probes, findings."""
    out: list[Difference] = []
    for name in sorted(set(old.neighbors) | set(new.neighbors)):
        out += _neighbor_diffs(name, old.neighbors.get(name), new.neighbors.get(name))
    out += _best_moves(old, new)
    ob = {b.peer: b for b in old.bfd}
    nbfd = {b.peer: b for b in new.bfd}
    for peer in sorted(set(ob) | set(nbfd)):
        a, b = ob.get(peer), nbfd.get(peer)
        sa, sb = (a.state if a else "absent"), (b.state if b else "absent")
        if sa != sb:
            out.append(Difference(area="bfd", text=f"BFD {peer} {sa} -> {sb}"))
        elif a and b and a.detection_ms != b.detection_ms:
            out.append(Difference(area="bfd", text=f"BFD {peer} detection {a.detection_ms} -> {b.detection_ms} ms"))
    for fam in sorted(set(old.installed) | set(new.installed)):
        a_set, b_set = set(old.installed.get(fam, [])), set(new.installed.get(fam, []))
        out += [Difference(area="installed", text=f"customer installs {p} (new)") for p in sorted(b_set - a_set)]
        out += [Difference(area="installed", text=f"customer no longer installs {p}") for p in sorted(a_set - b_set)]
    op = {p.name: p for p in old.probes}
    np_ = {p.name: p for p in new.probes}
    for name in sorted(set(op) & set(np_)):  # a probe run on one side only is a note, not a change
        a, b = op[name], np_[name]
        if a.value != b.value or a.ok != b.ok:
            verdict = "" if a.ok == b.ok else (" (now fails)" if not b.ok else " (now passes)")
            out.append(Difference(area="probe", text=f"{name} {a.value} -> {b.value}{verdict}"))
    out += [Difference(area="failover", text=t) for t in failover_diffs(old.failover, new.failover)]
    om = {m.session: m for m in old.max_prefix}
    for m in new.max_prefix:
        a = om.get(m.session)
        if a is not None and a.limit != m.limit:
            out.append(Difference(area="max-prefix", text=f"max-prefix {m.session} {a.limit or 'none'} -> "
                                                          f"{m.limit or 'none'}"))
    of = {(f.check, f.subject) for f in old.findings}
    nf = {(f.check, f.subject) for f in new.findings}
    out += [Difference(area="finding", text=f"new finding: {c} {s}") for c, s in sorted(nf - of)]
    out += [Difference(area="finding", text=f"finding gone: {c} {s}") for c, s in sorted(of - nf)]
    if old.converged != new.converged:
        out.append(Difference(area="convergence", text=f"converged {old.converged} -> {new.converged}"))
    return out
