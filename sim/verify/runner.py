"""Boot a lab per config, observe it, compare: the work behind ``cnilab verify`` and ``test --record``.

Each lab lives exactly as long as its observation (``Lab.create`` is a context manager), so a
failure or Ctrl-C leaves nothing behind. ``parallel`` runs the two labs side by side in threads:
they have the same addresses, but each lives in its own namespaces under its own name.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cnilab.sim.rehearse.model import RunOptions
from cnilab.sim.topology.load import ConfigError, read_config_text
from cnilab.sim.verify.diff import diff
from cnilab.sim.verify.expect import match
from cnilab.sim.verify.model import SCHEMA_VERSION, Observation, Verdict
from pydantic import ValidationError


def record(opts: RunOptions, label: str, *, probes: bool = True, failover: bool = True,
           deadline_s: float = 45.0) -> Observation:
    """Bring the lab up with ``opts``' config, observe it once converged, tear it down."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.rehearse.runner import build_run_plan
    from cnilab.sim.routers import check_customer_config

    lab_name = opts.lab or f"vf-{uuid.uuid4().hex[:6]}"
    _topo, plan = build_run_plan(opts, lab_name)  # bad input: ConfigError before anything exists
    check_customer_config(plan)
    from cnilab.sim.verify.observe import observe

    t0 = time.monotonic()
    with Lab.create(plan, topology_path=opts.topology, ready_timeout=60) as lab:
        return observe(lab, label, probes=probes, failover=failover, deadline_s=deadline_s, started=t0)


def record_both(base: RunOptions, cand: RunOptions, *, parallel: bool, probes: bool = True, failover: bool = True,
                deadline_s: float = 45.0) -> tuple[Observation, Observation]:
    kw = {"probes": probes, "failover": failover, "deadline_s": deadline_s}
    if not parallel:
        return record(base, "baseline", **kw), record(cand, "candidate", **kw)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cnilab-verify") as pool:
        fb = pool.submit(record, base, "baseline", **kw)  # type: ignore[arg-type]
        fc = pool.submit(record, cand, "candidate", **kw)  # type: ignore[arg-type]
        return fb.result(), fc.result()


def load_observation(path: Path) -> Observation:
    """A stored observation (``cnilab test --record``); bad input raises ConfigError naming the file."""
    text = read_config_text(path, "the observation")
    try:
        obs = Observation.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise ConfigError(path, [f"not a cnilab observation (schema {SCHEMA_VERSION}): {loc}: {first['msg']}"]) \
            from None
    return obs


def judge(baseline: Observation, candidate: Observation, declared: list[str], seconds: float = 0.0) -> Verdict:
    """Pass only when every difference is declared, every declaration observed, and no finding fails."""
    diffs, unobserved = match(diff(baseline, candidate), declared)
    failures = [f for f in candidate.findings if f.severity == "fail"]
    warnings = [f for f in candidate.findings if f.severity == "warn"]
    undeclared = [d.text for d in diffs if not d.declared]
    passed = not undeclared and not unobserved and not failures
    return Verdict(passed=passed, exit_code=0 if passed else 1, differences=diffs, undeclared=undeclared,
                   unobserved=unobserved, failures=failures, warnings=warnings, baseline=baseline,
                   candidate=candidate, seconds=round(seconds, 2))


def check_comparable(baseline: Observation, topology: str, path: Path) -> None:
    if baseline.topology != topology:
        raise ConfigError(path, [f"topology = {baseline.topology!r}: the stored baseline was observed on another "
                                 f"topology than {topology!r}; record it again on the same topology"])
