"""The customer's routes at the edge: ExaBGP UPDATEs into a policy-judged Adj-RIB-In, and the
accepted routes of every Established session ranked into the kernel routes to install."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from typing import Any

from cnilab.sim.bgp import bestpath, rov
from cnilab.sim.bgp.policy import evaluate
from cnilab.sim.edge.exabgp_conf import GSHUT_COMMUNITY, EdgeSpec
from cnilab.sim.edge.peer import Network, Peer, RouteEntry
from cnilab.sim.edge.routes import KernelRoute


def as_path(attr: dict[str, Any]) -> tuple[int, ...]:
    """The AS_PATH of an ExaBGP UPDATE (a flat list, or segments keyed by position)."""
    raw = attr.get("as-path")
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(int(a) for a in raw)
    out: list[int] = []
    for _pos, seg in sorted(raw.items(), key=lambda kv: int(kv[0])):
        out += [int(a) for a in seg.get("value", [])]
    return tuple(out)


def communities(attr: dict[str, Any]) -> tuple[str, ...]:
    """Standard (a:b) and large (a:b:c) communities of an UPDATE, as text, in the order received."""
    out = [":".join(str(int(x)) for x in c) for c in attr.get("community") or [] if isinstance(c, list)]
    out += [":".join(str(int(x)) for x in c) for c in attr.get("large-community") or [] if isinstance(c, list)]
    return tuple(out)


def _nlri(n: Any) -> Network:
    return ipaddress.ip_network(n["nlri"] if isinstance(n, dict) else n, strict=False)


def apply_update(rt: Peer, upd: dict[str, Any], spec: EdgeSpec) -> tuple[int, list[RouteEntry]]:
    """Judge and store an UPDATE's announcements, drop its withdrawals; returns (entries changed,
    entries rejected by policy)."""
    now = time.time()
    attr = upd.get("attribute", {})
    path = as_path(attr)
    link_nets = spec.link_nets()
    med = int(attr.get("med", 0) or 0)
    comms = communities(attr)
    changed = 0
    rejected: list[RouteEntry] = []
    for _fam, by_nh in (upd.get("announce") or {}).items():
        if not isinstance(by_nh, dict):
            continue
        for nh, nlris in by_nh.items():
            for n in nlris:
                prefix = _nlri(n)
                # Adj-RIB-In before policy: every prefix on the wire is kept and judged, including
                # routes with AS13335 in the path (RFC 4271 9.1.2 loops), so a customer leaking
                # Cloudflare's routes back is counted and named, not silently discarded.
                dec = evaluate(prefix, spec.customer_prefixes, as_path=path, peer_asn=rt.session.cust_asn,
                               link_nets=link_nets)
                dec = rov.apply(dec, path, spec.roas)
                entry = rt.adj_in[prefix] = RouteEntry(prefix, nh, path, med, dec, now, comms)
                changed += 1
                if not dec.accepted:
                    rejected.append(entry)
    for _fam, nlris in (upd.get("withdraw") or {}).items():
        for n in nlris:
            if rt.adj_in.pop(_nlri(n), None) is not None:
                changed += 1
    return changed, rejected


def desired_routes(peers: Iterable[Peer], spec: EdgeSpec) -> tuple[list[KernelRoute], dict[tuple[str, str], int]]:
    """Kernel routes for every accepted prefix of every Established session, ranked by
    :mod:`cnilab.sim.bgp.bestpath` into metrics; and the metric each (prefix, session) got."""
    cands: dict[Network, list[bestpath.Candidate]] = {}
    for rt in peers:
        if not rt.up:
            continue
        gw = spec.nexthop_to_customer(rt.session)
        for p, e in rt.adj_in.items():
            if e.decision.accepted:
                cands.setdefault(p, []).append(bestpath.Candidate(
                    session=rt.session.key, prefix=p, nexthop=gw, as_path=e.as_path, med=e.med,
                    priority=rt.session.priority, gshut=GSHUT_COMMUNITY in e.communities))
    out = []
    metrics: dict[tuple[str, str], int] = {}
    for p, cs in cands.items():
        for c, metric in bestpath.ranked_metrics(cs):
            out.append(KernelRoute(dst=p, gateway=c.nexthop, metric=metric))
            metrics[(str(p), c.session)] = metric
    return out, metrics
