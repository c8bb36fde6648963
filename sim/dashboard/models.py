"""What the dashboard sends to the page: one static view of the lab, and live snapshots.

The static part (topology, fault kinds, scenarios) is fetched once; the live snapshot is pushed on
every change. Both are pydantic models so the page, the tests and ``/api/state`` agree on field
names, and an edge-driver field the dashboard does not know simply passes through in ``sessions``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class InterconnectView(BaseModel):
    """The labels a trainer wants on an interconnect line."""

    name: str
    site: str | None = None
    dataplane: str | None = None
    service: str | None = None
    gre: bool = False
    vlan: int | None = None
    mtu: int
    path_mtu: dict[str, int] = Field(default_factory=dict)
    bfd: str | None = Field(default=None, description="e.g. 300x3 when BFD is on")


class NodeView(BaseModel):
    name: str
    role: str


class EndView(BaseModel):
    node: str
    iface: str = Field(description="kernel interface name")


class LinkView(BaseModel):
    name: str
    role: str
    a: EndView
    b: EndView
    mtu: int
    interconnect: InterconnectView | None = None
    path: str | None = Field(default=None, description="traffic path label measured on this link, if any")


class PathView(BaseModel):
    """A path traffic from the internet can take to the customer, measured on one edge interface."""

    label: str
    iface: str


class TopologyView(BaseModel):
    lab: str
    topology: str
    description: str | None = None
    nodes: list[NodeView]
    links: list[LinkView]
    paths: list[PathView]


class ScenarioInfo(BaseModel):
    available: bool
    reason: str | None = None
    files: list[str] = Field(default_factory=list)


class Meta(BaseModel):
    """Static information the page needs once: drawing, fault kinds and targets, scenarios."""

    topology: TopologyView
    fault_kinds: dict[str, str]
    fault_targets: list[str]
    traffic_dst: str | None
    scenario: ScenarioInfo
    exposed: bool = Field(description="bound to a non-loopback address (reads need the token too)")


class EndState(BaseModel):
    node: str
    iface: str
    present: bool = True
    admin_up: bool = False
    carrier: bool = False
    operstate: str = "UNKNOWN"


class LinkState(BaseModel):
    name: str
    up: bool
    ends: list[EndState]
    faults: list[str] = Field(default_factory=list, description="kind[=value] of active faults on it")


class FaultView(BaseModel):
    target: str
    kind: str
    value: Any = None
    mechanism: str
    since: float


class EdgeView(BaseModel):
    reachable: bool
    error: str | None = None
    sessions: list[dict[str, Any]] = Field(default_factory=list)
    bfd: list[dict[str, Any]] = Field(default_factory=list)


class PathRate(BaseModel):
    label: str
    iface: str
    pps: float = 0.0
    bps: float = 0.0
    history: list[float] = Field(default_factory=list, description="pps, oldest first, one per sample")


class TimelineEntry(BaseModel):
    seq: int
    time: float
    source: Literal["edge", "fault", "link", "action", "dashboard", "magic"]
    kind: str
    text: str
    session: str | None = None
    severity: Literal["info", "good", "bad", "minor"] = "info"


class TrafficView(BaseModel):
    running: bool = False
    rate_pps: int = 0
    dst: str | None = None
    sent: int = 0
    received: int = 0
    lost: int = 0
    error: str | None = None


class ScenarioRun(BaseModel):
    file: str | None = None
    running: bool = False
    started: float | None = None
    finished: float | None = None
    passed: bool | None = None
    summary: str | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)


class Snapshot(BaseModel):
    lab: str
    version: int
    time: float
    lab_status: str
    lab_error: str | None = None
    links: list[LinkState]
    faults: list[FaultView]
    edge: EdgeView
    rates: list[PathRate]
    timeline: list[TimelineEntry]
    traffic: TrafficView
    scenario: ScenarioRun
    sample_period_s: float
    tunnels: list[dict[str, Any]] = Field(default_factory=list, description="Magic tunnels (cnilab.sim.magic), if any")
