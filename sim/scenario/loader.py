"""Load a scenario: read the file, load its topology, apply overrides, build the plan, check names.

Everything a step refers to (links, sessions) is checked against the plan here, before any
executor starts, so a typo costs a clear error instead of a half-run demo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnilab.sim.runtime import shipped
from cnilab.sim.scenario.model import (
    ClearStep,
    Expect,
    FaultStep,
    Maintenance,
    Scenario,
    WaitEstablished,
    resolve_deadline,
)
from cnilab.sim.topology.load import ConfigError, describe_validation_error, load_model, load_topology
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.paths import resolve_scenario
from cnilab.sim.topology.plan import LabPlan, build_plan
from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_PATH = shipped.schema_path("scenario")


class LoadedScenario(BaseModel):
    """A scenario with its resolved topology and plan: everything an executor needs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    name: str
    scenario: Scenario
    topology: Topology
    plan: LabPlan
    base_topology: Topology
    lab: str | None = None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in extra.items():
        out[key] = _merge(out[key], val) if isinstance(val, dict) and isinstance(out.get(key), dict) else val
    return out


def apply_overrides(topo: Topology, overrides: dict[str, Any], where: Path | str) -> Topology:
    """Return a new Topology with ``overrides`` (Overrides.model_dump(exclude_unset=True)) applied.

    Raises ConfigError naming ``where`` and the overridden field when the result is invalid
    (e.g. BFD switched on for a v2 interconnect).
    """
    data = topo.model_dump()
    names = [ic["name"] for ic in data["interconnects"]]
    for name, change in overrides.get("interconnects", {}).items():
        if name not in names:
            raise ConfigError(where, [f"overrides.interconnects.{name}: no interconnect named {name!r} in topology "
                                      f"{topo.name!r} (it has {', '.join(names)})"])
        i = names.index(name)
        data["interconnects"][i] = _merge(data["interconnects"][i], change)
    if "router" in overrides:
        data["customer"]["router"] = _merge(data["customer"]["router"], overrides["router"])
    if "internet_backup" in overrides:
        data["internet_backup"] = overrides["internet_backup"]
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        problems = [f"overrides: topology {topo.name!r} is invalid after the overrides: {p}"
                    for p in describe_validation_error(exc, data)]
        raise ConfigError(where, problems) from exc


def plan_timers(plan: LabPlan) -> dict[str, float]:
    """The timers a deadline may name (seconds), from the plan: the slowest session decides."""
    out: dict[str, float] = {}
    bfd = [s.detection_ms / 1000 for s in plan.sessions if s.detection_ms]
    if bfd:
        out["bfd_detection"] = max(bfd)
    if plan.sessions:
        out["hold_time"] = float(max(s.hold_time for s in plan.sessions))
    return out


def deadlines(loaded: LoadedScenario, step: Expect) -> tuple[float | None, float | None]:
    """``(within, max_window)`` of ``step`` in seconds (plan timers resolved)."""
    timers = plan_timers(loaded.plan)
    return resolve_deadline(step.within, timers), resolve_deadline(step.max_window, timers)


def _check_names(sc: Scenario, plan: LabPlan, path: Path) -> None:
    links = {lk.name for lk in plan.links}
    ics = {s.interconnect for s in plan.sessions} | {lk.interconnect for lk in plan.links if lk.interconnect}
    keys = {s.key for s in plan.sessions}
    bfd_keys = {s.key for s in plan.sessions if s.bfd}
    problems: list[str] = []

    def session_ok(field: str, value: str, known: set[str]) -> None:
        if value == "all" or value in known or value in {k.split("/")[0] for k in known}:
            return
        problems.append(f"{field} = {value!r}: no such session (known: all, {', '.join(sorted(known)) or 'none'})")

    for i, step in enumerate(sc.timeline):
        f = f"timeline[{i}]"
        if isinstance(step, FaultStep) and step.link not in links:
            problems.append(f"{f}.link = {step.link!r}: no such link (known: {', '.join(sorted(links))})")
        if isinstance(step, ClearStep) and step.link != "all" and step.link not in links:
            problems.append(f"{f}.link = {step.link!r}: no such link (known: all, {', '.join(sorted(links))})")
        if isinstance(step, Maintenance) and step.link not in ics:
            problems.append(f"{f}.link = {step.link!r}: not an interconnect (known: {', '.join(sorted(ics))})")
        if isinstance(step, WaitEstablished):
            session_ok(f"{f}.session", step.session, keys)
        if isinstance(step, Expect):
            for field in ("within", "max_window"):
                try:
                    resolve_deadline(getattr(step, field), plan_timers(plan))
                except ValueError as exc:
                    problems.append(f"{f}.{field} = {getattr(step, field)!r}: {exc}")
            if step.what in ("path", "traffic_on") and step.link not in ics | {"transit", "none"}:
                problems.append(f"{f}.link = {step.link!r}: not an interconnect, 'transit' or 'none' "
                                f"(known: {', '.join(sorted(ics))})")
            if step.what == "session_state":
                session_ok(f"{f}.session", step.session or "", keys)
            if step.what == "bfd_state":
                session_ok(f"{f}.session", step.session or "", bfd_keys)
    if problems:
        raise ConfigError(path, problems)


def load_scenario(path: Path | str, lab: str | None = None) -> LoadedScenario:
    """Load and fully check a scenario file (or a shipped scenario's name); every failure is a
    ConfigError naming file/field/value."""
    path = resolve_scenario(path)
    sc = load_model(path, Scenario)
    topo_path = sc.topology if sc.topology.is_absolute() else (path.parent / sc.topology)
    if not topo_path.is_file():
        raise ConfigError(path, [f"topology = '{sc.topology}': file not found (looked for {topo_path})"])
    base = load_topology(topo_path)
    name = sc.name or path.name.removesuffix(".yml").removesuffix(".yaml")
    return _resolve(path, name, sc, base, sc.overrides.model_dump(exclude_unset=True), lab)


def _resolve(path: Path, name: str, sc: Scenario, base: Topology, overrides: dict[str, Any],
             lab: str | None) -> LoadedScenario:
    topo = apply_overrides(base, overrides, path)
    try:
        plan = build_plan(topo, lab)
    except ValueError as exc:
        raise ConfigError(path, [f"topology = '{sc.topology}': {exc}"]) from exc
    _check_names(sc, plan, path)
    return LoadedScenario(path=path, name=name, scenario=sc, topology=topo, plan=plan, base_topology=base, lab=lab)


def with_overrides(loaded: LoadedScenario, extra: dict[str, Any]) -> LoadedScenario:
    """The same scenario with more overrides on top of its own (parameter sweeps, what-ifs)."""
    sc = loaded.scenario
    return _resolve(loaded.path, loaded.name, sc, loaded.base_topology,
                    _merge(sc.overrides.model_dump(exclude_unset=True), extra), loaded.lab)


def scenario_json_schema() -> dict[str, Any]:
    """JSON schema of scenario files (for editors: ``# yaml-language-server: $schema=...``)."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cnilab scenario"
    return schema


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario_json_schema(), indent=2) + "\n", encoding="utf-8")
    return path
