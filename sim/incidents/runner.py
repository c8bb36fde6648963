"""Load an incident pack, bring its lab up with the customer's config, replay the incident, tear down."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from cnilab.sim.incidents.kinds import KINDS
from cnilab.sim.incidents.model import Incident, IncidentResult
from cnilab.sim.topology.load import ConfigError, load_model


def load_incident(path: Path) -> Incident:
    inc = load_model(path, Incident)
    if inc.kind not in KINDS:
        raise ConfigError(path, [f"kind = {inc.kind!r}: unknown incident kind; choose one of "
                                 f"{', '.join(sorted(KINDS))}"])
    if not inc.topology.is_absolute():
        inc.topology = (path.parent / inc.topology).resolve()
    if inc.simulate is not None and not inc.simulate.is_absolute():
        inc.simulate = (path.parent / inc.simulate).resolve()
    return inc


def run_incident(path: Path, customer_config: Path | None = None, kind: str | None = None) -> IncidentResult:
    """Replay ``path`` on a fresh lab; ConfigError for bad input (nothing built), RouterError if the daemon dies."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.rehearse.model import RunOptions
    from cnilab.sim.rehearse.runner import build_run_plan
    from cnilab.sim.routers import check_customer_config
    from cnilab.sim.verify.observe import Sampler, timers_for, wait_converged

    inc = load_incident(path)
    opts = RunOptions(topology=inc.topology, customer_config=customer_config, kind=kind,  # type: ignore[arg-type]
                      lab=f"in-{uuid.uuid4().hex[:6]}")
    _topo, plan = build_run_plan(opts, opts.lab or "incident")
    check_customer_config(plan)
    t0 = time.monotonic()
    with Lab.create(plan, topology_path=inc.topology, ready_timeout=60) as lab:
        _s, converged, _c, _h, missing = wait_converged(Sampler(lab), timers_for(plan))
        if not converged:
            out = IncidentResult(incident=inc.name or path.stem, kind=inc.kind, topology=plan.topology, lab=lab.name,
                                 router_kind=plan.customer_router.kind, config=str(customer_config or "template"),
                                 passed=False, correct=inc.correct,
                                 cause="the lab did not converge before the incident: " + "; ".join(missing))
            return out
        try:
            res = KINDS[inc.kind](lab, inc.params)
        except ValueError as exc:
            raise ConfigError(path, [f"params: {exc}"]) from None
    return IncidentResult(incident=inc.name or path.stem, kind=inc.kind, topology=plan.topology, lab=lab.name,
                          router_kind=plan.customer_router.kind, config=str(customer_config or "template"),
                          passed=res.passed, correct=inc.correct, cause=res.cause, fix=res.fix,
                          warnings=res.warnings, measured=res.measured, seconds=round(time.monotonic() - t0, 2))
