"""What the health-check daemon runs from (``magic.json`` in the edge node's dir) and what it reports
(``magic-status.json``). The lab hook, the CLI and the mock API write the config; the daemon
reloads it when it changes, so a priority or rate change applies to the running lab."""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from pathlib import Path

from cnilab.sim.magic.model import HealthCheck
from cnilab.sim.magic.steering import MagicRoute, NextHop
from pydantic import BaseModel, ConfigDict, Field

CONFIG_FILE = "magic.json"
STATUS_FILE = "magic-status.json"
TABLE = 300
"""Routing table (and ip-rule preference) on the edge that holds the steered Magic routes; the
rule for each customer prefix sits before ``main``, so BGP-learned routes do not steer Magic traffic."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HcTunnel(_M):
    name: str
    kind: str
    ifname: str = Field(description="Edge-side interface the probes go into (GRE device or TUN)")
    cf_inner: ipaddress.IPv4Address
    cust_inner: ipaddress.IPv4Address
    cf_outer: ipaddress.IPv4Address
    cust_outer: ipaddress.IPv4Address
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    mtu: int = 1476
    id: str | None = None


class HcConfig(_M):
    tunnels: list[HcTunnel]
    routes: list[MagicRoute]
    intervals: dict[str, float] = Field(default_factory=dict)
    legacy_dst: ipaddress.IPv4Address | None = None


class ProbeView(_M):
    t: float
    ok: bool
    attempt: int
    rtt_ms: float | None = None
    note: str = ""


class TransitionView(_M):
    t: float
    frm: str
    to: str
    reason: str


class TunnelStatus(_M):
    name: str
    kind: str
    ifname: str
    type: str
    direction: str
    rate: str
    enabled: bool
    interval_s: float
    priority: int | None = Field(description="Best (lowest) configured route priority through this tunnel")
    effective_priority: int | None
    state: str
    tunnel_state: float
    since: float
    sent: int = 0
    returned: int = 0
    failed: int = 0
    last: list[ProbeView] = Field(default_factory=list)
    transitions: list[TransitionView] = Field(default_factory=list)


class RouteChange(_M):
    t: float
    prefix: str
    tunnels: list[str]


class MagicStatus(_M):
    updated: float
    pid: int
    tunnels: list[TunnelStatus]
    routes: dict[str, list[NextHop]]
    route_changes: list[RouteChange] = Field(default_factory=list, description="When steering changed (last 50)")


def write_json_atomic(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


def save_config(path: Path, cfg: HcConfig) -> None:
    write_json_atomic(path, cfg.model_dump_json(indent=1))


def load_config(path: Path) -> HcConfig:
    return HcConfig.model_validate(json.loads(path.read_text()))
