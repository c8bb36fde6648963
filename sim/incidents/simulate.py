"""The incident packs on the discrete-event simulator: the same verdict and cause, no daemons, no root.

Each registered kind has a simulator counterpart in :data:`SIM_KINDS` returning the emulator's
:class:`~cnilab.sim.incidents.kinds.Outcome`, built by the same functions (``leak_outcome``,
``max_prefix_outcome``), so a disagreement between the two executors is a modelling gap, never
wording. Policy incidents read the customer's config as a policy model (:mod:`cnilab.sim.des.policy`); the
PoP maintenance asks that model whether GRACEFUL_SHUTDOWN is honoured and takes the loss of the mass
withdrawal from the pack's ``simulate:`` scenario; the MD5 rotation runs its scenario, which models
the shipped template's behaviour: given another config it refuses rather than pass it unread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnilab.sim.bgp.customer_policy import CustomerPolicy, Unsupported, parse_frr
from cnilab.sim.incidents.kinds import Outcome, leak_outcome, max_prefix_outcome
from cnilab.sim.incidents.model import Incident, IncidentResult
from cnilab.sim.topology.plan import LabPlan

SimKind = Callable[[Incident, LabPlan, CustomerPolicy | None, dict[str, Any]], Outcome]
SIM_KINDS: dict[str, SimKind] = {}


def register(name: str) -> Callable[[SimKind], SimKind]:
    def deco(fn: SimKind) -> SimKind:
        SIM_KINDS[name] = fn
        return fn
    return deco


def _policy(policy: CustomerPolicy | None, kind: str) -> CustomerPolicy:
    if policy is None:
        raise Unsupported(f"{kind}: the simulator reads the customer's policy from an FRR config")
    return policy


@register("leak-to-transit")
def sim_leak(inc: Incident, plan: LabPlan, policy: CustomerPolicy | None, params: dict[str, Any]) -> Outcome:
    from cnilab.sim.des.policy import announced_to
    from cnilab.sim.transit import party_sessions

    pol = _policy(policy, inc.kind)
    parties = party_sessions(plan)
    if not any(t.party == "transit" for t in parties):
        raise ValueError("leak-to-transit needs a topology with a transit (internet_backup: true)")
    # a session comes up when the customer configures the neighbor with the party's AS
    established = {t.party: (nb := pol.neighbor(str(t.local))) is not None and nb.remote_as == t.local_asn
                   and not nb.shutdown for t in parties}
    announced = {t.party: announced_to(plan, pol, t) if established[t.party] else {} for t in parties}
    return leak_outcome(announced, plan, established)


@register("max-prefix-growth")
def sim_max_prefix(inc: Incident, plan: LabPlan, policy: CustomerPolicy | None, params: dict[str, Any]) -> Outcome:
    from cnilab.sim.des.policy import max_prefix_trips

    pol = _policy(policy, inc.kind)
    table, limit, tripped = max_prefix_trips(plan, pol, int(params.get("routes", 200)))
    v4 = [s for s in plan.sessions if s.family == 4]
    return max_prefix_outcome(table, limit, 0 if tripped else table, tripped, str(v4[0].cf_addr))


def _scenario(inc: Incident, plan: LabPlan, policy: CustomerPolicy | None, params: dict[str, Any]) -> Outcome:
    from cnilab.sim.scenario.executor import open_sim
    from cnilab.sim.scenario.loader import load_scenario
    from cnilab.sim.scenario.runner import run_scenario

    if inc.simulate is None:
        raise Unsupported(f"{inc.kind}: the pack names no `simulate:` scenario")
    if params.get("customer_config") is not None:
        raise Unsupported(f"{inc.kind}: the simulator models the shipped template's behaviour for this incident, "
                          "not your config; run it on the emulator (without --sim)")
    loaded = load_scenario(inc.simulate)
    with open_sim(loaded, 1) as ex:
        rep = run_scenario(loaded, ex, 1)
    failed = [s for s in rep.steps if s.status == "fail"]
    return Outcome(passed=rep.passed, cause="; ".join(f"{s.description}: {s.reason}" for s in failed) or None,
                   measured={"scenario": str(inc.simulate), "steps": len(rep.steps)})


register("md5-rotation-one-side")(_scenario)


@register("pop-maintenance")
def sim_pop_maintenance(inc: Incident, plan: LabPlan, policy: CustomerPolicy | None, params: dict[str, Any]
                        ) -> Outcome:
    """GRACEFUL_SHUTDOWN on the link in use, a wait, a mass withdrawal (the drill's sequence).

    Honoured (the policy model says bgpd's local-pref 0 stands): the customer moved during the wait
    and loses nothing. Ignored: the loss is the simulator's, from the pack's scenario (every route on
    the link withdrawn at once under a stream), in the drill's own sentence."""
    from cnilab.sim.drills.gshut import fix_for, ignored_summary
    from cnilab.sim.scenario.executor import open_sim
    from cnilab.sim.scenario.loader import load_scenario
    from cnilab.sim.scenario.runner import run_scenario

    pol = _policy(policy, inc.kind)
    if inc.simulate is None:
        raise Unsupported(f"{inc.kind}: the pack names no `simulate:` scenario")
    loaded = load_scenario(inc.simulate)
    link = next((st.link for st in loaded.scenario.timeline if st.do == "shutdown"), None)
    if link is None:
        raise Unsupported(f"{inc.simulate}: no `shutdown` step names the link under maintenance")
    sess = plan.sessions_for(link)[0]
    detect_ms = sess.bfd_multiplier * max(sess.bfd_tx_ms, sess.bfd_rx_ms) if sess.bfd else sess.hold_time * 1000
    wait_s, rate = float(params.get("wait_s", 5.0)), int(params.get("rate_pps", 200))
    from cnilab.sim.des.policy import cloudflare_table
    from cnilab.sim.facts import load_facts

    table, cf_path = cloudflare_table(plan, 4), [load_facts().cloudflare_asn]
    defeated = [why for s in plan.sessions_for(link) if (why := pol.gshut_defeated(str(s.cf_addr), table, cf_path))]
    if not defeated:
        return Outcome(passed=True, measured={"interconnect": link, "lost": 0, "honoured": True})
    with open_sim(loaded, 1) as ex:
        rep = run_scenario(loaded, ex, 1)
        window_s = ex.traffic().loss_window_s
    lost = round(window_s * rate)
    return Outcome(passed=False, cause=ignored_summary(link, wait_s, lost, round(window_s * 1000, 1), rate,
                                                       str(params.get("pull", "blackhole")), detect_ms),
                   fix=fix_for(plan.customer_router.kind),
                   measured={"interconnect": link, "lost": lost, "honoured": False, "defeated_by": defeated,
                             "scenario_passed": rep.passed})


def simulate_incident(path: Path, customer_config: Path | None = None) -> IncidentResult:
    """Replay ``path`` on the simulator; ConfigError for bad input, Unsupported when it cannot model it."""
    from cnilab.sim.incidents.runner import load_incident
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology
    from cnilab.sim.topology.load import ConfigError, read_config_text

    inc = load_incident(path)
    t0 = time.monotonic()
    plan = build_plan(load_topology(inc.topology), "sim")
    if customer_config is not None:
        text = read_config_text(customer_config, "the customer config")
    else:
        text = render_frr(plan) if plan.customer_router.kind == "frr" else ""
    try:
        policy = parse_frr(text) if text and "router bgp" in text else None
    except Unsupported:
        policy = None
        if inc.kind in ("leak-to-transit", "max-prefix-growth"):
            raise
    try:
        res = SIM_KINDS[inc.kind](inc, plan, policy, {**inc.params, "customer_config": customer_config})
    except ValueError as exc:
        if isinstance(exc, Unsupported):
            raise
        raise ConfigError(path, [f"params: {exc}"]) from None
    return IncidentResult(incident=inc.name or path.stem, kind=inc.kind, topology=plan.topology, lab="(simulator)",
                          router_kind=plan.customer_router.kind, config=str(customer_config or "template"),
                          passed=res.passed, correct=inc.correct, cause=res.cause, fix=res.fix,
                          warnings=res.warnings, measured=res.measured, seconds=round(time.monotonic() - t0, 2))
