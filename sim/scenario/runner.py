"""Walk a scenario's timeline against any executor and turn what happened into a Report.

Timing rules: a step starts at ``at`` (from the scenario start), else ``after`` seconds after the
previous step ended (default 0). An ``expect`` with ``within`` ends as soon as its condition
holds, so the next step starts from that moment; ``measured`` is the time from the step start
until the condition held, and the step fails if that did not happen by
``within + tolerance + executor slack``.

Deadlines are physics plus executor slack: the scenario states the physics (seconds, or a plan
timer such as ``bfd_detection``), each executor declares its ``slack`` (0 for the simulator in
virtual time; measured poll and exec latency plus a floor for the emulator on a real, possibly
loaded host). The report keeps the tight physical bound as ``limit`` and the slack beside it,
so ``measured / limit`` says how close to the physics a run came.
"""

from __future__ import annotations

from collections.abc import Callable

from cnilab.sim.report.model import Report, StepResult
from cnilab.sim.scenario.executor import Executor
from cnilab.sim.scenario.loader import LoadedScenario, deadlines
from cnilab.sim.scenario.model import (
    ClearStep,
    Expect,
    FaultStep,
    Maintenance,
    StartTraffic,
    StopTraffic,
    WaitEstablished,
    WaitStep,
    describe_step,
)

SIDES = ("cf", "customer")


def session_keys(loaded: LoadedScenario, spec: str, bfd_only: bool = False) -> list[str]:
    """``all`` / ``ewr1`` / ``ewr1/v4`` -> plan session keys."""
    keys = [s.key for s in loaded.plan.sessions if s.bfd or not bfd_only]
    if spec == "all":
        return keys
    return [k for k in keys if k == spec or k.split("/")[0] == spec]


def _states(ex: Executor, keys: list[str], sides: tuple[str, ...], bfd: bool) -> dict[str, str | None]:
    get = ex.bfd_state if bfd else ex.session_state
    return {f"{k} {side}": get(k, side) for k in keys for side in sides}


def executor_slack(ex: Executor) -> float:
    """The executor's declared slack in seconds (0 when it declares none: virtual time)."""
    return float(ex.slack)


class _Outcome:
    def __init__(self, status: str, reason: str = "", measured: float | None = None, limit: float | None = None,
                 slack: float | None = None):
        self.status, self.reason, self.measured, self.limit, self.slack = status, reason, measured, limit, slack


def _wait_for(ex: Executor, t0: float, physics: float | None, cond: Callable[[], bool]) -> float | None:
    """Wait until ``cond`` holds, at most ``physics`` plus the executor's slack. The slack is read
    again at the deadline: a load spike during the wait widens it (the emulator measures its own
    observation latency as it goes), so a deadline never depends on the load at the step's start."""
    if physics is None:
        return t0 if cond() else None
    deadline = t0 + physics + executor_slack(ex)
    while True:
        t = ex.run_until(deadline, cond)
        if t is not None:
            return t
        widened = t0 + physics + executor_slack(ex)
        if widened <= deadline + 1e-9:
            return None
        deadline = widened


def _expect(loaded: LoadedScenario, ex: Executor, step: Expect, t0: float) -> _Outcome:
    within, max_window = deadlines(loaded, step)
    physics = None if within is None else within + step.tolerance
    limit = within
    if step.what in ("path", "traffic_on"):
        target = None if step.link == "none" else step.link
        if step.what == "path":
            def cond() -> bool:
                return ex.best_path(step.side) == target

            def now_desc() -> str:
                return f"{step.side} best path is {ex.best_path(step.side) or 'none'}"
        else:
            def cond() -> bool:
                return ex.traffic().last_path == target

            def now_desc() -> str:
                tr = ex.traffic()
                if not tr.src:
                    return "no traffic was started"
                return (f"traffic last delivered on {tr.last_path or 'nothing'}; "
                        f"{tr.lost} of {tr.sent} packets lost so far")
    elif step.what in ("session_state", "bfd_state"):
        bfd = step.what == "bfd_state"
        keys = session_keys(loaded, step.session or "all", bfd_only=bfd)
        sides = (step.side,)

        def cond() -> bool:
            return all(v == step.state for v in _states(ex, keys, sides, bfd).values())

        def now_desc() -> str:
            bad = {k: v for k, v in _states(ex, keys, sides, bfd).items() if v != step.state}
            return ", ".join(f"{k} is {v}" for k, v in bad.items())
    elif step.what == "loss":
        tr = ex.traffic()
        slack = executor_slack(ex)
        max_w = None if max_window is None else max_window + step.tolerance + slack
        problems = []
        if not tr.src:
            problems.append("no traffic was started")
        if max_w is not None and tr.loss_window_s > max_w + 1e-9:
            problems.append(f"loss window {tr.loss_window_s:.3f}s exceeds {max_w:.3g}s "
                            f"({_bound(max_window, step.tolerance, slack)})")
        if step.max_lost is not None and tr.lost > step.max_lost:
            problems.append(f"{tr.lost} packets lost, at most {step.max_lost} allowed")
        summary = f"loss window {tr.loss_window_s:.3f}s, {tr.lost} of {tr.sent} packets lost"
        return _Outcome("fail" if problems else "pass", "; ".join(problems) or summary,
                        measured=tr.loss_window_s, limit=max_window, slack=slack if max_w is not None else None)
    else:  # mss
        probe = ex.mss_probe()
        ok = probe.passed == (step.result == "pass")
        return _Outcome("pass" if ok else "fail",
                        probe.detail if ok else f"mss probe {'passed' if probe.passed else 'failed'}, "
                                                f"expected it to {step.result}: {probe.detail}")
    t = _wait_for(ex, t0, physics, cond)
    slack = executor_slack(ex)
    window = None if physics is None else physics + slack
    if t is not None:
        return _Outcome("pass", "", measured=round(t - t0, 9), limit=limit,
                        slack=slack if window is not None else None)
    when = f"after {window:.3g}s ({_bound(within, step.tolerance, slack)})" if window is not None else "now"
    return _Outcome("fail", f"{when}: {now_desc()}", limit=limit, slack=slack if window is not None else None)


def _bound(physics: float | None, tolerance: float, slack: float) -> str:
    parts = [f"physics {physics or 0:g}s"] + ([f"tolerance {tolerance:g}s"] if tolerance else [])
    return " + ".join([*parts, f"executor slack {slack:.3g}s"])


def _do(loaded: LoadedScenario, ex: Executor, step: object, t0: float) -> _Outcome:
    if isinstance(step, Expect):
        return _expect(loaded, ex, step, t0)
    try:
        if isinstance(step, WaitEstablished):
            keys = session_keys(loaded, step.session)

            def established() -> bool:
                return all(v == "Established" for v in _states(ex, keys, SIDES, False).values())

            t = ex.run_until(t0 + step.timeout, established)
            if t is None:
                bad = {k: v for k, v in _states(ex, keys, SIDES, False).items() if v != "Established"}
                return _Outcome("fail", f"not Established after {step.timeout:g}s: "
                                + ", ".join(f"{k} is {v}" for k, v in bad.items()), limit=step.timeout)
            return _Outcome("pass", "", measured=round(t - t0, 9), limit=step.timeout)
        if isinstance(step, StartTraffic):
            ex.start_traffic(step.src, step.dst, step.rate_pps)
        elif isinstance(step, StopTraffic):
            ex.stop_traffic()
        elif isinstance(step, FaultStep):
            ex.fault(step.link, step.kind, step.value)
        elif isinstance(step, ClearStep):
            ex.clear(None if step.link == "all" else step.link)
        elif isinstance(step, Maintenance):
            ex.maintenance(step.link, step.do)
        elif isinstance(step, WaitStep):
            ex.run_until(t0 + step.duration)
    except ValueError as exc:  # e.g. a fault kind this executor cannot apply
        return _Outcome("fail", str(exc))
    return _Outcome("done")


def parameters(loaded: LoadedScenario) -> dict[str, str]:
    """The timers that decide the outcome, stated in the report so a reader can check the theory."""
    out: dict[str, str] = {}
    for s in loaded.plan.sessions:
        bfd = (f"BFD {s.bfd_tx_ms}x{s.bfd_multiplier} (detect {s.detection_ms} ms)"
               if s.bfd else "BFD off")
        out[s.key] = (f"hold {s.hold_time}s, keepalive {s.keepalive}s, {bfd}, "
                      f"priority {s.priority}, local-pref {s.local_pref}")
    out["mss_required"] = str(loaded.plan.mss_required)
    out["internet_backup"] = str(loaded.topology.internet_backup).lower()
    return out


def run_scenario(loaded: LoadedScenario, ex: Executor, seed: int) -> Report:
    """Run every step in order (a failed step does not stop the run: the report lists them all)."""
    sc = loaded.scenario
    results: list[StepResult] = []
    notes: list[str] = []
    prev_end = 0.0
    for i, step in enumerate(sc.timeline):
        start = step.at if step.at is not None else prev_end + (step.after or 0.0)
        if start < ex.now() - 1e-9:
            notes.append(f"step {i} was due at {start:g}s but started at {ex.now():.3f}s (previous steps ran late)")
        ex.run_until(start)
        t0 = ex.now()
        out = _do(loaded, ex, step, t0)
        prev_end = ex.now()
        results.append(StepResult(
            index=i, do=step.do, description=step.name or describe_step(step), start=round(t0, 9),
            end=round(prev_end, 9), status=out.status, reason=out.reason, measured=out.measured, limit=out.limit,
            slack=out.slack))
    ex.run_until(ex.now() + sc.end_after)
    notes += ex.notes
    return Report(
        scenario=loaded.name, description=sc.description, topology=loaded.topology.name, executor=ex.name,
        seed=seed, passed=all(r.status != "fail" for r in results), duration=round(ex.now(), 9),
        steps=results, series=ex.series(), parameters=parameters(loaded), notes=notes)
