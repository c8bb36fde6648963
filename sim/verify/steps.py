"""Acceptance-suite step (``cnilab test``): nothing leaks toward the transit.

Judged like verify's negative checks: only once the transit session is up and the routing picture
has held still for the hold window (sim.verify.observe), so a leak still on its way is not missed.
"""

from __future__ import annotations

from typing import Any

from sim.rehearse.advice import StepFailed


def no_leaks(ctx: Any) -> list[str]:
    from sim.rehearse.steps import SkipStep
    from sim.transit import transit_session
    from sim.transit.leaks import classify, fix_lines
    from sim.verify.observe import Sampler, leak_findings, timers_for, wait_converged

    t = transit_session(ctx.plan)
    if t is None:
        raise SkipStep("no transit in this topology (internet_backup: false): leaks toward third parties not checked")
    s, converged, _c, held, missing = wait_converged(Sampler(ctx.lab), timers_for(ctx.plan, deadline_s=30.0))
    rec = s["transit"]
    if rec is None or rec.state != "established":
        state = rec.state if rec else "absent"
        raise SkipStep(f"the customer did not establish BGP with its transit AS{t.local_asn} ({state}): what it would "
                       "announce there was not observed")
    sent = sorted(rec.routes)
    checks = [f"transit AS{t.local_asn} received {len(sent)} route(s) from you: {', '.join(sent) or 'none'} "
              f"(held {held:.1f} s{'' if converged else '; not converged: ' + '; '.join(missing)})"]
    leaks = classify("transit", {p: r.as_path for p, r in rec.routes.items()}, ctx.plan.customer_prefixes)
    if leaks:
        found = leak_findings(leaks, fix_lines("transit", str(t.local), ctx.plan.customer_prefixes, t.peer_asn))
        fix = found[0].fix
        raise StepFailed("; ".join(f.text for f in found),
                         [f"an outbound filter toward the transit that leaves only your prefixes; FRR:\n{fix['frr']}",
                          f"BIRD: {fix['bird']}"], checks)
    return checks
