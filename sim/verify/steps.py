"""Acceptance-suite step (``cnilab test``): nothing leaks toward the transit or the peer.

Judged like verify's negative checks: only once the third-party sessions are up and the routing
picture has held still for the hold window (cnilab.sim.verify.observe), so a leak still on its way is not
missed.
"""

from __future__ import annotations

from typing import Any

from cnilab.sim.rehearse.advice import StepFailed


def no_leaks(ctx: Any) -> list[str]:
    from cnilab.sim.rehearse.steps import SkipStep
    from cnilab.sim.transit import party_sessions
    from cnilab.sim.transit.leaks import classify, fix_lines
    from cnilab.sim.verify.observe import Sampler, leak_findings, timers_for, wait_converged

    parties = party_sessions(ctx.plan)
    if not parties:
        raise SkipStep("no transit or peer in this topology (internet_backup/peer: false): leaks toward third "
                       "parties not checked")
    s, converged, _c, held, missing = wait_converged(Sampler(ctx.lab), timers_for(ctx.plan, deadline_s=30.0))
    checks, found, advice = [], [], []
    seen = 0
    for t in parties:
        rec = s["parties"][t.party]
        if rec.state != "established":
            checks.append(f"the customer did not establish BGP with its {t.party} AS{t.local_asn} ({rec.state}): "
                          "what it would announce there was not observed")
            continue
        seen += 1
        sent = sorted(rec.routes)
        checks.append(f"{t.party} AS{t.local_asn} received {len(sent)} route(s) from you: {', '.join(sent) or 'none'} "
                      f"(held {held:.1f} s{'' if converged else '; not converged: ' + '; '.join(missing)})")
        leaks = classify(t.party, {p: r.as_path for p, r in rec.routes.items()}, ctx.plan.customer_prefixes)
        if leaks:
            f = leak_findings(leaks, fix_lines(t.party, str(t.local), ctx.plan.customer_prefixes, t.peer_asn))
            found += f
            advice += [f"an outbound filter toward the {t.party} that leaves only your prefixes; FRR:\n"
                       f"{f[0].fix['frr']}", f"BIRD: {f[0].fix['bird']}"]
    if found:
        raise StepFailed("; ".join(f.text for f in found), advice, checks)
    if not seen:
        raise SkipStep("; ".join(checks))
    return checks


def max_prefix(ctx: Any) -> list[str]:
    """Acceptance-suite step: the customer's maximum-prefix toward Cloudflare fires, is absent or too low.

    Read once the lab has converged (a limit that fires is a settled fact by then: Cease 6/1 and the
    session down), from the customer's own daemon, against what the edge announces and Cloudflare's
    published table."""
    from cnilab.sim.rehearse.steps import SkipStep
    from cnilab.sim.verify.customer import read_customer
    from cnilab.sim.verify.observe import Sampler, _max_prefix, timers_for, wait_converged

    s, _conv, _c, _held, _missing = wait_converged(Sampler(ctx.lab), timers_for(ctx.plan, deadline_s=30.0))
    view = read_customer(ctx.lab)
    if view.kind not in ("frr", "bird"):
        raise SkipStep(f"the limits of a {view.kind} customer router are not read here: maximum-prefix not checked")
    obs, findings = _max_prefix(ctx.plan, view, s)
    checks = [f"{m.session}: your limit {m.limit if m.limit is not None else 'none'}; Cloudflare sends {m.table} "
              f"route(s) here and publishes {m.published}: {m.verdict}" for m in obs]
    fails = [f for f in findings if f.severity == "fail"]
    if fails:
        raise StepFailed("; ".join(f.text for f in fails),
                         [f"FRR:\n{fails[0].fix['frr']}", f"BIRD: {fails[0].fix['bird']}"], checks)
    for f in findings:
        ctx.warn("max-prefix", f.text, fix=f.fix.get("frr", ""), subject=f.subject)
    return checks
