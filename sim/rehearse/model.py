"""The rehearsal's report: one row per checklist step, the same for the console, ``--json`` and JUnit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sim.facts import router_kind_names

LabRouterKind = Literal[router_kind_names(in_lab=True)]  # type: ignore[valid-type]
"""Router kinds a rehearsal can run (the registry's data, without ``external``)."""
StepStatus = Literal["pass", "fail", "skip", "not-run"]
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
    bgp_timeout: float = 45.0


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

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "fail"), None)
