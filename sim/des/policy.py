"""The simulator's customer router for policy incidents: what it announces, and when its limit trips.

The timing simulator (``cnilab.sim.des.world``) models sessions, BFD and paths but no router policy. The
incident packs that hinge on policy (a leak toward a third party, a maximum-prefix trip after
Cloudflare's table grows) are predicted here from the same inputs the emulator uses: the plan, the
edge's own table (``EdgeSpec.announced``, the function the live edge announces from), the third
parties' tables (``sim/data/internet-table.yaml``) and the customer's config read as a policy model
(:mod:`cnilab.sim.bgp.customer_policy`).

The customer's RIB is its ``network`` statements (AS path empty), Cloudflare's IPv4 table (13335)
and each third party's table as that party sends it. A route goes to a neighbor when the outbound
policy permits it, even back to the party it came from: bgpd does not hold it back (the receiver's
AS-path loop check drops it, after it has been recorded as announced, as on the emulator). Inbound
policy is not modelled: Cloudflare's routes are taken as accepted, which is what the shipped
templates do.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cnilab.sim.bgp.customer_policy import CustomerPolicy
from cnilab.sim.edge.exabgp_conf import EdgeSpec
from cnilab.sim.facts import load_facts
from cnilab.sim.topology.plan import LabPlan
from cnilab.sim.transit.speaker import TransitSession, party_sessions
from cnilab.sim.transit.table import third_parties

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def cloudflare_table(plan: LabPlan, family: int, scale_routes: int | None = None) -> list[Network]:
    """What the edge announces on sessions of ``family`` (same code as the live edge)."""
    spec = EdgeSpec(lab=plan.lab, sessions=plan.sessions, cf_prefixes=plan.cf_prefixes,
                    customer_prefixes=plan.customer_prefixes,
                    scale_routes=plan.scale_routes if scale_routes is None else scale_routes,
                    workdir=Path("/nonexistent"))
    return spec.announced(family)


def customer_rib(plan: LabPlan, policy: CustomerPolicy) -> list[tuple[Network, list[int], str]]:
    """(prefix, AS path as received, source) for every IPv4 route the customer holds."""
    out: list[tuple[Network, list[int], str]] = [(n, [], "own") for n in policy.networks if n.version == 4]
    if any(s.family == 4 for s in plan.sessions):
        cf = load_facts().cloudflare_asn
        out += [(p, [cf], "cloudflare") for p in cloudflare_table(plan, 4)]
    for t in party_sessions(plan):
        out += [(r.prefix, list(r.as_path), t.party) for r in getattr(third_parties(), t.party).routes
                if r.prefix.version == 4]
    return out


def announced_to(plan: LabPlan, policy: CustomerPolicy, party: TransitSession) -> dict[str, list[int]]:
    """prefix -> AS path as the third party would record it."""
    out: dict[str, list[int]] = {}
    nb = policy.neighbor(str(party.local))
    if nb is not None and nb.default_originate:
        out["0.0.0.0/0"] = [policy.asn]
    for prefix, path, _source in customer_rib(plan, policy):
        if str(prefix) in out:
            continue
        sent = policy.export(str(party.local), prefix, path)
        if sent is not None:
            out[str(prefix)] = sent
    return out


def max_prefix_trips(plan: LabPlan, policy: CustomerPolicy, scale_routes: int
                     ) -> tuple[int, int | None, list[str]]:
    """(Cloudflare's IPv4 table size, the lowest IPv4 limit toward Cloudflare, sessions that trip).

    bgpd sends Cease 6/1 when the count exceeds the limit, unless ``warning-only``."""
    table = len(cloudflare_table(plan, 4, scale_routes))
    v4 = [s for s in plan.sessions if s.family == 4]
    limits = {s.key: nb for s in v4 if (nb := policy.neighbor(str(s.cf_addr))) is not None}
    limit = min((nb.max_prefix for nb in limits.values() if nb.max_prefix is not None), default=None)
    tripped = [k for k, nb in limits.items()
               if nb.max_prefix is not None and table > nb.max_prefix and not nb.max_prefix_warning_only]
    return table, limit, tripped
