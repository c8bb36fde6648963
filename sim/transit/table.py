"""The third parties' facts (ASN, the small internet table they send), read once from sim/data."""

from __future__ import annotations

import functools
import ipaddress
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field


class TableRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    as_path: list[int] = Field(description="As the party sends it: its own AS first, the origin last")


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asn: int
    description: str
    routes: list[TableRoute]


class ThirdParties(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transit: Party
    peer: Party


@functools.cache
def third_parties() -> ThirdParties:
    text = resources.files("cnilab.sim.data").joinpath("internet-table.yaml").read_text(encoding="utf-8")
    return ThirdParties.model_validate(yaml.safe_load(text))
