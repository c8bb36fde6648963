"""The incident pack file and the result of replaying it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    topology: Path = Field(description="Topology file, relative to this file")
    kind: str = Field(description="A registered incident kind (cnilab.sim.incidents.kinds)")
    params: dict[str, Any] = Field(default_factory=dict)
    correct: str = Field(description="What a correct config does (printed with the verdict)")
    simulate: Path | None = Field(default=None, description="Scenario for `cnilab sim` modelling the same event")


class IncidentResult(BaseModel):
    incident: str
    kind: str
    topology: str
    lab: str
    router_kind: str
    config: str | None
    passed: bool
    correct: str
    cause: str | None = Field(default=None, description="Why the config did not behave correctly")
    fix: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    measured: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
