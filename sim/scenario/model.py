"""What a scenario file says: the topology it runs on, overrides, and a timeline of steps.

Steps are a tagged union on ``do`` (``do: fault``, ``do: expect`` ...) so each action has its own
strict field set: a misspelt field is refused with the step index and field name instead of being
silently ignored, which matters when a trainer edits the file five minutes before a demo.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from cnilab.sim.des.params import SimParams
from cnilab.sim.faults.kinds import EXAMPLES, FaultKindName, parse_fault
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"


def parse_duration(value: Any) -> float:
    """``5s``, ``1.5s``, ``300ms``, ``2m`` or a bare number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 5s, 300ms or 2m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value} is negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration; write e.g. 5s, 300ms or 2m")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
                    "description": "Seconds, or a string such as 5s, 1.5s, 300ms, 2m"}),
]

PHYSICS = {
    "bfd_detection": "BFD detection time: multiplier x max(tx, rx) of the plan's BFD sessions",
    "hold_time": "BGP hold time of the plan's sessions",
}
"""Named timers a deadline may be stated in; the loader resolves them from the plan's timers."""
_PHYSICS_RE = re.compile(r"^\s*(" + "|".join(PHYSICS) + r")\s*(?:\+\s*(\d+(?:\.\d+)?\s*(?:ms|s|m|h)?))?\s*$")
PHYSICS_PATTERN = _PHYSICS_RE.pattern


def parse_deadline(value: Any) -> float | str:
    """A deadline is physics: seconds (``0.5s``, ``300ms``) or a plan timer (``bfd_detection``,
    ``bfd_detection + 100ms``). Timer names are kept as text and resolved against the plan by
    :func:`resolve_deadline`, so the file says *why* the bound is what it is."""
    if isinstance(value, str) and _PHYSICS_RE.match(value):
        return " ".join(value.split())
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a deadline; write seconds (e.g. 900ms, 1.5s) or a plan timer "
                         f"({', '.join(PHYSICS)}), optionally '+ 100ms'") from None


def resolve_deadline(value: float | str | None, timers: dict[str, float]) -> float | None:
    """Seconds for a deadline; ``timers`` maps the names of :data:`PHYSICS` to the plan's values."""
    if value is None or isinstance(value, float | int):
        return value
    m = _PHYSICS_RE.match(value)
    if m is None:  # pragma: no cover - parse_deadline admitted it
        raise ValueError(f"{value!r} is not a deadline")
    if m.group(1) not in timers:
        raise ValueError(f"{value!r}: the plan has no {m.group(1).replace('_', ' ')} ({PHYSICS[m.group(1)]})")
    return timers[m.group(1)] + (parse_duration(m.group(2)) if m.group(2) else 0.0)


Deadline = Annotated[
    float | str,
    BeforeValidator(parse_deadline),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN},
                              {"type": "string", "pattern": PHYSICS_PATTERN}],
                    "description": "Physics: seconds (5s, 300ms) or a plan timer (bfd_detection, hold_time), "
                                   "optionally '+ 100ms'. The executor adds its own declared slack"}),
]

Side = Literal["cf", "customer"]
SessionState = Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
BfdState = Literal["AdminDown", "Down", "Init", "Up"]
Node = Literal["inet", "origin"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- overrides ---------------------------------------------------------------------------------

class BfdOverride(Model):
    enabled: bool | None = None
    tx_ms: int | None = None
    rx_ms: int | None = None
    multiplier: int | None = None


class BgpOverride(Model):
    hold_time: int | None = None
    keepalive: int | None = None
    local_pref: int | None = None
    md5: str | None = None
    customer_md5: str | None = None
    passive: bool | None = None


class InterconnectOverride(Model):
    bfd: BfdOverride | None = None
    bgp: BgpOverride | None = None
    priority: int | None = None
    dataplane: str | None = None


class RouterOverride(Model):
    mss_clamp: int | Literal["auto"] | None = Field(
        default="auto", description="MSS clamp of the customer router; null = no clamp (the classic mistake)")


class Overrides(Model):
    """Changes applied to the topology before it is validated, so "the same without BFD" is one file.

    Only fields that are written are applied (``mss_clamp: null`` is written, and means "no clamp").
    """

    interconnects: dict[str, InterconnectOverride] = Field(
        default_factory=dict, description="Interconnect name -> fields to change")
    router: RouterOverride | None = Field(default=None, description="Customer router fields to change")
    internet_backup: bool | None = None


# -- steps -------------------------------------------------------------------------------------

class StepBase(Model):
    at: Duration | None = Field(default=None, description="Start at this time from the scenario start")
    after: Duration | None = Field(default=None, description="Start this long after the previous step ended")
    name: str | None = Field(default=None, description="Label shown in the report")

    @model_validator(mode="after")
    def _one_time(self) -> StepBase:
        if self.at is not None and self.after is not None:
            raise ValueError("give either 'at' or 'after', not both")
        return self


class WaitEstablished(StepBase):
    do: Literal["wait_established"]
    session: str = Field(default="all", description="'all', an interconnect ('ewr1') or a session ('ewr1/v4')")
    timeout: Duration = 120.0


class StartTraffic(StepBase):
    do: Literal["start_traffic"]
    rate_pps: float = Field(default=100.0, gt=0, le=100000)
    src: Node = Field(default="inet", alias="from")
    dst: Node = Field(default="origin", alias="to")

    @model_validator(mode="after")
    def _two_ends(self) -> StartTraffic:
        if self.src == self.dst:
            raise ValueError(f"traffic from {self.src} to itself")
        return self


class StopTraffic(StepBase):
    do: Literal["stop_traffic"]


class FaultStep(StepBase):
    do: Literal["fault"]
    link: str = Field(description="Link name from the plan: an interconnect, backbone, lan, transit-cf, transit-cust")
    kind: FaultKindName
    value: float | str | None = Field(default=None, description=f"With its unit where it has one: {EXAMPLES}")

    @model_validator(mode="after")
    def _value(self) -> FaultStep:
        parse_fault(self.kind, self.value)  # one parser for both executors: a bad value fails at load
        return self


class ClearStep(StepBase):
    do: Literal["clear"]
    link: str = Field(default="all", description="A link name, or 'all'")


class Maintenance(StepBase):
    """Planned work on one interconnect, done the graceful way."""

    do: Literal["withdraw", "shutdown", "restore"]
    link: str = Field(description="Interconnect name")


class WaitStep(StepBase):
    do: Literal["wait"]
    duration: Duration


class Expect(StepBase):
    """A check. With ``within`` it passes as soon as the condition holds, else fails at the deadline."""

    do: Literal["expect"]
    what: Literal["path", "traffic_on", "session_state", "bfd_state", "loss", "mss"]
    link: str | None = Field(default=None, description="path/traffic_on: interconnect, 'transit' or 'none'")
    side: Side = Field(default="cf", description="Whose view: Cloudflare's edge or the customer router")
    session: str | None = Field(default=None, description="session_state/bfd_state: 'ewr1/v4', 'ewr1' or 'all'")
    state: str | None = Field(default=None, description="session_state: Idle..Established; bfd_state: Up/Down/Init")
    within: Deadline | None = Field(
        default=None, description="Deadline from the step start, as physics (seconds or a plan timer such as "
                                  "bfd_detection); the executor adds its declared slack; omitted = now")
    tolerance: Duration = Field(default=0.0, description="Physical margin added to within / max_window (e.g. one "
                                                          "packet interval); executor slack is added separately")
    compare_tolerance: Duration | None = Field(
        default=None, description="`cnilab compare`: how far prediction and measurement may differ on this step "
                                  "(default: --tolerance); wider where the outcome depends on a timer's phase")
    max_window: Deadline | None = Field(default=None, description="loss: longest outage allowed (physics, as within)")
    max_lost: int | None = Field(default=None, ge=0, description="loss: packets allowed to be lost")
    result: Literal["pass", "fail"] | None = Field(default=None, description="mss: the probe outcome expected")

    @model_validator(mode="after")
    def _fields_for_what(self) -> Expect:
        need: dict[str, tuple[str, ...]] = {
            "path": ("link",), "traffic_on": ("link",), "session_state": ("session", "state"),
            "bfd_state": ("session", "state"), "loss": (), "mss": ("result",),
        }
        missing = [f for f in need[self.what] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"expect {self.what} needs {', '.join(missing)}")
        if self.what == "loss" and self.max_window is None and self.max_lost is None:
            raise ValueError("expect loss needs max_window and/or max_lost")
        states = {"session_state": SessionState.__args__, "bfd_state": BfdState.__args__}.get(self.what)
        if states and self.state not in states:
            raise ValueError(f"state {self.state!r} is not a {self.what} state; choose one of {', '.join(states)}")
        return self

    def describe(self) -> str:
        when = f" within {_fmt(self.within)}" if self.within is not None else ""
        if self.what in ("path", "traffic_on"):
            who = "" if self.what == "traffic_on" else f" ({self.side} best path)"
            return f"expect {self.what.replace('_', ' ')} {self.link}{who}{when}"
        if self.what in ("session_state", "bfd_state"):
            kind = "session" if self.what == "session_state" else "BFD"
            return f"expect {kind} {self.session} {self.state} ({self.side}){when}"
        if self.what == "loss":
            parts = []
            if self.max_window is not None:
                parts.append(f"loss window <= {_fmt(self.max_window)}")
            if self.max_lost is not None:
                parts.append(f"lost <= {self.max_lost}")
            return "expect " + " and ".join(parts)
        return f"expect mss probe {self.result}"


def _fmt(deadline: float | str) -> str:
    return deadline if isinstance(deadline, str) else f"{deadline:g}s"


Step = Annotated[
    WaitEstablished | StartTraffic | StopTraffic | FaultStep | ClearStep | Maintenance | WaitStep | Expect,
    Field(discriminator="do"),
]


def describe_step(step: Any) -> str:
    """One line for reports and timelines, e.g. ``fault ewr1 down``."""
    if isinstance(step, Expect):
        return step.describe()
    if isinstance(step, WaitEstablished):
        return f"wait until {step.session} established (timeout {step.timeout:g}s)"
    if isinstance(step, StartTraffic):
        return f"start traffic {step.src} -> {step.dst} at {step.rate_pps:g} pps"
    if isinstance(step, FaultStep):
        val = f" {step.value}" if step.value is not None else ""
        return f"fault {step.link} {step.kind}{val}"
    if isinstance(step, ClearStep):
        return f"clear faults on {step.link}"
    if isinstance(step, Maintenance):
        return f"{step.do} {step.link}"
    if isinstance(step, WaitStep):
        return f"wait {step.duration:g}s"
    return str(step.do).replace("_", " ")


class Scenario(Model):
    name: str | None = Field(default=None, description="Default: the file name without .yml")
    description: str = ""
    topology: Path = Field(description="Topology file, relative to this scenario file")
    overrides: Overrides = Field(default_factory=Overrides)
    seed: int = Field(default=1, description="Default RNG seed (the CLI's --seed wins)")
    sim: SimParams = Field(default_factory=SimParams)
    timeline: list[Step] = Field(min_length=1)
    end_after: Duration = Field(default=1.0, description="Keep recording this long after the last step")
