"""The report both executors produce, so a prediction and a measurement compare field by field.

No wall-clock time or host detail goes in: the same scenario and seed on the simulator must give a
byte-identical report, which is what makes a demo repeatable and a regression diffable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TransitionKind = Literal["session", "bfd", "route", "traffic", "link", "edge"]


class Base(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Transition(Base):
    """A state change: session ``ewr1/v4 cf`` -> Established, traffic -> ewr2, link ewr1 -> down."""

    t: float
    kind: TransitionKind
    subject: str
    state: str
    reason: str = ""


class LossBin(Base):
    t: float = Field(description="Bin start (s)")
    sent: int
    lost: int
    by_path: dict[str, int] = Field(default_factory=dict, description="Delivered packets per path")


class Series(Base):
    """What happened over the run: the state changes in order, and the loss histogram."""

    duration: float = Field(description="Scenario time covered (s)")
    transitions: list[Transition] = Field(default_factory=list)
    bin_s: float = Field(default=1.0, description="Width of each loss bin (s)")
    bins: list[LossBin] = Field(default_factory=list)


class TrafficStats(Base):
    """What the traffic flow saw so far; the emulator fills the same fields from its probe."""

    running: bool = False
    src: str = ""
    dst: str = ""
    rate_pps: float = 0.0
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    last_path: str | None = Field(default=None, description="Path of the latest delivered packet")
    first_on: dict[str, float] = Field(default_factory=dict, description="Path -> first delivery time")
    loss_window_s: float = Field(default=0.0, description="Longest run of lost packets x packet interval")


class ProbeResult(Base):
    passed: bool
    detail: str


StepStatus = Literal["pass", "fail", "done"]


class StepResult(Base):
    index: int
    do: str
    description: str
    start: float
    end: float
    status: StepStatus
    reason: str = ""
    measured: float | None = Field(default=None, description="Seconds from step start until the condition held")
    limit: float | None = Field(default=None, description="The physical bound (s): the scenario's within/max_window")
    slack: float | None = Field(default=None, description="Executor slack added to the limit (s): 0 on the "
                                                           "simulator, measured poll/exec latency on the emulator")

    @property
    def ratio(self) -> float | None:
        """measured / limit: how close to the physics this run came (> 1 means inside the slack only)."""
        if self.measured is None or not self.limit:
            return None
        return round(self.measured / self.limit, 3)


class Report(Base):
    scenario: str
    description: str = ""
    topology: str
    executor: Literal["sim", "emu"]
    seed: int
    passed: bool
    duration: float
    steps: list[StepResult]
    series: Series
    parameters: dict[str, str] = Field(default_factory=dict, description="Timers and overrides in effect")
    notes: list[str] = Field(default_factory=list)

    @property
    def expectations(self) -> list[StepResult]:
        return [s for s in self.steps if s.do == "expect"]

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "fail"]
