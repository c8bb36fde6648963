"""The rehearsal's report: one row per checklist step, the same for the console, ``--json`` and JUnit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cnilab.sim.facts import router_kind_names
from pydantic import BaseModel, ConfigDict, Field

LabRouterKind = Literal[router_kind_names(in_lab=True)]  # type: ignore[valid-type]
"""Router kinds a rehearsal can run (the registry's data, without ``external``)."""
StepStatus = Literal["pass", "warn", "fail", "skip", "not-run"]
"""pass; warn (passed, with findings to look at); fail; skip (does not apply here, with the reason);
not-run (depends on a step that failed, named in ``detail``)."""
Severity = Literal["fail", "warn", "info"]
"""fail fails the step; warn makes it WARN (the run still passes); info is context, shown with the checks."""
Suite = Literal["rehearse", "test"]
MssClampOverride = Literal["auto", "none"] | int


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunOptions(_Model):
    """What the user asked for; the CLI and tests build one of these, the runner does the rest."""

    topology: Path
    customer_config: Path | None = Field(default=None, description="Replaces the template router config")
    kind: LabRouterKind | None = Field(default=None,  # type: ignore[valid-type]
                                       description="Kind of customer_config (default: sniffed)")
    customer_dataplane: Path | None = Field(
        default=None, description="Your side of the dataplane (ip/nft/iptables lines); replaces "
                                  "customer.router.dataplane")
    mss_clamp: MssClampOverride | None = Field(
        default=None, description="Override customer.router.mss_clamp (the clamp lives outside the daemon)")
    lab: str | None = Field(default=None, description="Lab name (default: a unique rh-/ct- name)")
    api_timeout: float = 15.0
    bgp_timeout: float | None = Field(
        default=None, description="Seconds to wait for Established (default: from the plan's timers, "
                                  "cnilab.sim.edge.readiness.bring_up_budget)")


class Finding(_Model):
    """One thing an engineer must look at, said once: what was seen (cause) and what to change (fix).

    ``check`` is a stable id (``bgp.open-refused``, ``announce.leak``, ``router.timers``) so CI and
    tests can match findings without parsing prose; ``subject`` names what it concerns (sessions,
    prefixes, a config line)."""

    severity: Severity
    check: str
    subject: str = ""
    cause: str
    fix: str = ""

    def text(self) -> str:
        head = f"{self.subject}: " if self.subject else ""
        return head + self.cause + (f" -> {self.fix}" if self.fix else "")


class StepResult(_Model):
    """One checklist row. ``advice`` is what an engineer should change when the step failed."""

    index: str = Field(description="Checklist number: 1, 2, 5.1, ...")
    id: str
    title: str
    status: StepStatus
    seconds: float = 0.0
    detail: str = ""
    checks: list[str] = Field(default_factory=list, description="What was verified, one line each")
    advice: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list, description="Causes and fixes, each once (fail and warn)")
    provenance: str = Field(default="", description="Where the configuration this step exercised came from: "
                                                    "your config, or installed by cnilab on your behalf")


class Report(_Model):
    suite: Suite
    topology: str
    topology_path: str
    lab: str
    router_kind: str
    customer_config: str | None
    mss_clamp: str
    passed: bool
    seconds: float
    steps: list[StepResult]
    notes: list[str] = Field(default_factory=list)

    warnings: int = Field(default=0, description="Findings of severity warn (they do not fail the run)")

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "fail"), None)

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "fail"]

    def step(self, sid: str) -> StepResult:
        """The step with id ``sid`` (KeyError naming the ids there are)."""
        found = next((s for s in self.steps if s.id == sid), None)
        if found is None:
            raise KeyError(f"no step {sid!r} in this report (steps: {', '.join(s.id for s in self.steps)})")
        return found
