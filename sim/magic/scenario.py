"""Magic scenarios: a timeline of tunnel faults, priority/rate changes and expectations, run by
the simulator (virtual time, many probe phases) or on the emulator (the real lab).

Both executors answer the same questions (which tunnels carry a prefix, what state a tunnel is
in, *when* that changed relative to the last action), so a scenario's measured times compare
directly: the emulator's must fall inside the simulator's range over probe phases, widened by
``compare_tolerance_s``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

import yaml
from cnilab.sim.magic.config import RouteChange
from cnilab.sim.magic.facts import Rate, State
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TunnelFault(_M):
    tunnel: str
    kind: Literal["firewall", "accept-local-off", "rp-filter", "blackhole", "wrong-source"]


class SetTunnel(_M):
    tunnel: str
    priority: int | None = None
    rate: Rate | None = None
    type: Literal["reply", "request"] | None = None


class Expect(_M):
    steered: list[str] | None = Field(default=None, description="Tunnels carrying the prefix (sorted; ECMP = several)")
    state: dict[str, State] | None = None
    within: float = Field(default=1.0, description="Seconds after the last action")
    within_intervals: float = Field(default=0.0, description="Plus this many probe intervals of `tunnel`'s rate")
    tunnel: str | None = Field(default=None, description="Whose interval `within_intervals` counts")
    label: str = ""


class Step(_M):
    wait: float | None = None
    fault: TunnelFault | None = None
    clear: str | None = None
    set: SetTunnel | None = None
    expect: Expect | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        n = sum(x is not None for x in (self.wait, self.fault, self.clear, self.set, self.expect))
        if n != 1:
            raise ValueError("each step has exactly one of wait, fault, clear, set, expect")
        return self

    @property
    def action(self) -> str:
        for k in ("wait", "fault", "clear", "set", "expect"):
            if getattr(self, k) is not None:
                return k
        return "?"


class MagicScenario(_M):
    name: str
    description: str = ""
    topology: str = Field(description="Topology file, relative to the scenario file")
    rate: Rate | None = Field(default=None, description="Health-check rate of every tunnel (the sweep knob)")
    intervals: dict[Rate, float] | None = Field(default=None, description="Probe interval per rate override")
    prefix: ipaddress.IPv4Network = ipaddress.IPv4Network("198.51.100.0/24")
    setup: list[SetTunnel] = Field(default_factory=list, description="Applied before the clock starts")
    steps: list[Step]
    compare_tolerance_s: float = 0.5
    path: Path | None = Field(default=None, exclude=True)


def load_scenario(path: str | Path) -> MagicScenario:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ValueError(f"{p}: {exc.strerror}") from exc
    sc = MagicScenario.model_validate(data)
    sc.path = p
    return sc


def topology_path(sc: MagicScenario) -> Path:
    base = sc.path.parent if sc.path else Path(".")
    return (base / sc.topology).resolve()


class Snapshot(_M):
    t: float
    states: dict[str, str]
    steered: list[str]


class StepResult(_M):
    index: int
    action: str
    detail: str
    ok: bool | None = None
    measured_s: float | None = Field(default=None, description="From the last action to the expected change")
    bound_s: float | None = None


class MagicRun(_M):
    scenario: str
    executor: Literal["simulator", "emulator"]
    rate: str | None
    seed: int | None = None
    steps: list[StepResult]
    passed: bool


class Executor(Protocol):
    name: Literal["simulator", "emulator"]

    def now(self) -> float: ...
    def fault(self, f: TunnelFault, on: bool) -> None: ...
    def set(self, s: SetTunnel) -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def interval(self, tunnel: str) -> float: ...
    def until(self, pred, timeout: float) -> Snapshot | None: ...
    def changed_at(self, exp: Expect, since: float) -> float | None: ...


def changed_at(exp: Expect, since: float, route_changes: Iterable[RouteChange],
               transitions: Iterable[tuple[str, float, str]]) -> float | None:
    """When ``exp`` came true after ``since``, from an executor's records: steering changes and
    (tunnel, time, new state) transitions, each in the order they happened. None while a named state
    has not been reached; steering that already matched (no change) adds no time."""
    times: list[float] = []
    if exp.steered is not None:
        c = next((c.t for c in route_changes if c.t >= since and c.tunnels == sorted(exp.steered)), None)
        if c is not None:
            times.append(c)
    seen = list(transitions)
    for name, state in (exp.state or {}).items():
        c = next((t for n, t, to in seen if n == name and t >= since and to == state), None)
        if c is None:
            return None
        times.append(c)
    return max(times) if times else None


def _matches(exp: Expect, snap: Snapshot) -> bool:
    if exp.steered is not None and sorted(exp.steered) != snap.steered:
        return False
    return not exp.state or all(snap.states.get(k) == v for k, v in exp.state.items())


def _describe(step: Step) -> str:
    if step.wait is not None:
        return f"wait {step.wait:g}s"
    if step.fault:
        return f"fault {step.fault.kind} on {step.fault.tunnel}"
    if step.clear:
        return f"clear faults on {step.clear}"
    if step.set:
        return "set " + step.set.tunnel + " " + " ".join(
            f"{k}={v}" for k, v in step.set.model_dump(exclude={"tunnel"}).items() if v is not None)
    e = step.expect
    assert e is not None
    parts = []
    if e.steered is not None:
        parts.append("traffic on " + "+".join(sorted(e.steered)))
    if e.state:
        parts += [f"{k} {v}" for k, v in e.state.items()]
    return e.label or "expect " + ", ".join(parts)


def run(sc: MagicScenario, ex: Executor, seed: int | None = None) -> MagicRun:
    """Walk the steps; every expectation is timed from the last action (fault, clear or set)."""
    results: list[StepResult] = []
    for s in sc.setup:
        ex.set(s)
    ref = ex.now()
    faults: dict[str, set[str]] = {}
    for i, step in enumerate(sc.steps):
        r = StepResult(index=i, action=step.action, detail=_describe(step))
        if step.wait is not None:
            ex.sleep(step.wait)
        elif step.fault:
            ex.fault(step.fault, True)
            faults.setdefault(step.fault.tunnel, set()).add(step.fault.kind)
            ref = ex.now()
        elif step.clear:
            for k in sorted(faults.pop(step.clear, set())):
                ex.fault(TunnelFault(tunnel=step.clear, kind=k), False)  # type: ignore[arg-type]
            ref = ex.now()
        elif step.set:
            ex.set(step.set)
            ref = ex.now()
        else:
            e = step.expect
            assert e is not None
            bound = e.within + (e.within_intervals * ex.interval(e.tunnel) if e.tunnel else 0.0)
            r.bound_s = round(bound, 3)
            snap = ex.until(lambda s, e=e: _matches(e, s), max(0.0, ref + bound - ex.now()))
            r.ok = snap is not None
            at = ex.changed_at(e, ref) if r.ok else None
            r.measured_s = round(at - ref, 3) if at is not None else None
            if not r.ok:
                r.detail += f": not within {bound:.2f}s"
        results.append(r)
        if r.ok is False:
            break
    return MagicRun(scenario=sc.name, executor=ex.name, rate=sc.rate, seed=seed, steps=results,
                    passed=all(x.ok is not False for x in results) and len(results) == len(sc.steps))
