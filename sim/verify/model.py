"""The observation of one converged lab, and the verdict of comparing two.

Field names are stable: the JSON of an observation is what a pipeline keeps as the main branch's
baseline (``cnilab test --record``) and what ``--baseline-observation`` reads back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Severity = Literal["fail", "warn"]
NeighborKind = Literal["cloudflare", "transit", "peer"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Route(_Model):
    """One prefix the customer announces to a neighbor, as the receiving side saw it."""

    prefix: str
    as_path: list[int] = Field(default_factory=list)
    med: int | None = None
    communities: list[str] = Field(default_factory=list)
    accepted: bool | None = Field(default=None, description="Cloudflare's import policy (None: not Cloudflare)")
    reason: str | None = None
    best: bool | None = Field(default=None, description="Cloudflare's best path for the prefix goes here")
    rov: str | None = Field(default=None, description="Origin validation at the edge: valid/invalid/not-found")


class SessionObs(_Model):
    key: str = Field(description="ewr1/v4, transit")
    state: str
    peer_asn: int | None = None
    hold_time: int | None = None
    keepalive: int | None = None
    md5: bool | None = None
    last_notification: str | None = None


class BfdObs(_Model):
    peer: str
    state: str
    detection_ms: int | None = None


class Neighbor(_Model):
    name: str = Field(description="Interconnect name (ewr1) or third party (transit, peer)")
    kind: NeighborKind
    sessions: list[SessionObs] = Field(default_factory=list)
    routes: dict[str, Route] = Field(default_factory=dict, description="prefix -> route")


class ProbeObs(_Model):
    name: str = Field(description="mtu cf_to_customer, mss inet->origin, ...")
    value: int | None
    expected: int | None = None
    ok: bool


class FailoverDirection(_Model):
    direction: str = Field(description="cf_to_customer (the edge's choice) or customer_to_cf (the router's)")
    path_before: str | None
    path_after: str | None
    moved: bool
    first_packet_ms: float | None = Field(description="First packet on the new path, after the fault")
    loss_window_ms: float
    lost: int
    within_expected: bool = Field(description="Moved, with loss within twice the detection time plus slack")


class FailoverObs(_Model):
    """The interconnect carrying traffic pulled (blackhole) under a live stream, both directions."""

    link: str
    fault: str
    mechanism: str = Field(description="BFD detection, BGP hold timer or carrier loss")
    expected_ms: int
    bound_ms: int
    directions: list[FailoverDirection]
    ok: bool


class Finding(_Model):
    """A verdict on the config itself, whatever the baseline: a leak (fail), no max-prefix (warn)."""

    severity: Severity
    check: str = Field(description="leak, max-prefix, ...")
    subject: str
    text: str
    fix: dict[str, str] = Field(default_factory=dict, description="daemon -> config lines that fix it")


class MaxPrefixObs(_Model):
    session: str
    limit: int | None
    table: int = Field(description="Prefixes Cloudflare announces on this session in the lab")
    published: int = Field(description="Cloudflare's published ranges of this family")
    verdict: Literal["ok", "absent", "too-low", "unknown"]


class Observation(_Model):
    schema_version: int = SCHEMA_VERSION
    label: str = Field(description="baseline / candidate / recorded")
    topology: str
    router_kind: str
    config: str | None
    config_sha256: str | None = None
    lab: str
    converged: bool
    convergence_s: float = Field(description="Lab up to converged (positive checks held)")
    hold_window_s: float = Field(description="How long the converged state was held for the negative checks")
    neighbors: dict[str, Neighbor] = Field(default_factory=dict)
    installed: dict[str, list[str]] = Field(default_factory=dict, description="ipv4/ipv6 -> prefixes in the "
                                                                             "customer's kernel from BGP")
    bfd: list[BfdObs] = Field(default_factory=list)
    probes: list[ProbeObs] = Field(default_factory=list)
    failover: FailoverObs | None = Field(default=None, description="None: not measured (see notes)")
    max_prefix: list[MaxPrefixObs] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="What could not be observed here, and why")
    evidence: dict[str, str] = Field(default_factory=dict, description="check -> raw daemon output")
    seconds: float = 0.0


class Difference(_Model):
    """One change from baseline to candidate; ``text`` is the sentence an --expect file declares."""

    area: Literal["route", "session", "bfd", "installed", "probe", "failover", "finding", "max-prefix",
                  "convergence"]
    text: str
    declared: bool = False


class Verdict(_Model):
    passed: bool
    exit_code: int
    differences: list[Difference]
    undeclared: list[str]
    unobserved: list[str] = Field(description="Declared in --expect but not seen")
    failures: list[Finding] = Field(description="Candidate findings of severity fail")
    warnings: list[Finding]
    baseline: Observation
    candidate: Observation
    seconds: float = 0.0
