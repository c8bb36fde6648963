"""The failover result in an observation: pull the interconnect carrying traffic, see where it goes.

Verify compares what a change does to failover, so the observation keeps what is stable from run to
run: which link was pulled, the path before and after in each direction, whether traffic moved and
whether the loss stayed within what the config implies (BFD detection, else the hold time, twice
over plus the probe's sampling). The raw loss figures are kept too, but only the verdicts are
compared: a loss window of 640 ms one run and 710 ms the next is noise, not a change.
"""

from __future__ import annotations

import ipaddress

from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import TRANSIT, LabPlan
from cnilab.sim.verify.model import FailoverDirection, FailoverObs, Observation

SAMPLING_SLACK_MS = 500
"""The probe's path sampling (10 ms) and settle window, plus scheduling on a loaded 2-core host."""


def link_in_use(plan: LabPlan, obs: Observation) -> str | None:
    """The interconnect Cloudflare's best path for the customer's first IPv4 prefix uses."""
    own = next((p for p in plan.customer_prefixes if p.version == 4), None)
    for nb in obs.neighbors.values():
        if nb.kind != "cloudflare":
            continue
        for p, r in nb.routes.items():
            if r.best and own is not None and ipaddress.ip_network(p).overlaps(own):
                return nb.name
    ics = [lk.name for lk in plan.links if lk.role == "interconnect"]
    return ics[0] if ics else None


def why_not(plan: LabPlan) -> str | None:
    """A sentence when this topology has no second path (nothing to fail over to), else None."""
    ics = {lk.name for lk in plan.links if lk.role == "interconnect"}
    if len(ics) < 2 and not any(n.name == TRANSIT for n in plan.nodes):
        return "failover not measured: one interconnect and no internet backup, so there is no second path"
    return None


def observe_failover(lab: LabHandle, obs: Observation, fault: str = "blackhole") -> FailoverObs | None:
    """Measure (cnilab.sim.probes.failover) and reduce to what verify compares; a note when it cannot run."""
    from cnilab.sim.probes.failover import measure_failover

    plan: LabPlan = lab.plan
    reason = why_not(plan)
    if reason is not None:
        obs.notes.append(reason)
        return None
    link = link_in_use(plan, obs)
    if link is None:
        obs.notes.append("failover not measured: no interconnect carries the customer's prefix")
        return None
    rep = measure_failover(lab, link, fault)
    obs.evidence["failover"] = rep.model_dump_json(indent=1)
    bound = 2 * rep.expected.detection_ms + SAMPLING_SLACK_MS
    dirs = [FailoverDirection(direction=d.direction, path_before=d.path_before, path_after=d.path_after,
                              moved=d.moved, first_packet_ms=d.first_packet_new_path_ms,
                              loss_window_ms=round(d.loss_window_ms, 1), lost=d.lost,
                              within_expected=d.moved and d.loss_window_ms <= bound)
            for d in rep.directions]
    return FailoverObs(link=link, fault=fault, mechanism=rep.expected.mechanism,
                       expected_ms=rep.expected.detection_ms, bound_ms=bound, directions=dirs,
                       ok=all(d.within_expected for d in dirs))


def failover_diffs(old: FailoverObs | None, new: FailoverObs | None) -> list[str]:
    """Sentences for what changed; nothing when either side did not measure (a note, not a change)."""
    if old is None or new is None:
        return []
    if old.link != new.link:
        return [f"failover pulls {new.link} instead of {old.link} (Cloudflare's best path moved)"]
    out = []
    a_dirs = {d.direction: d for d in old.directions}
    for b in new.directions:
        a = a_dirs.get(b.direction)
        if a is None:
            continue
        head = f"failover {b.direction} after pulling {new.link}"
        if (a.path_before, a.path_after) != (b.path_before, b.path_after):
            out.append(f"{head}: {a.path_before} -> {a.path_after} becomes {b.path_before} -> {b.path_after}")
        if a.within_expected != b.within_expected:
            out.append(f"{head} now {'passes' if b.within_expected else 'fails'} "
                       f"(lost {b.loss_window_ms:.0f} ms, bound {new.bound_ms} ms)")
    return out
