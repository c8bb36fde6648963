"""The ``magic:`` section of a topology: Magic tunnels, their health checks and static routes.

Defaults follow Cloudflare's API (type reply, rate mid) except the direction: the lab's tunnels
default to bidirectional (probe and answer both inside the tunnel), the case where the customer's
router must route the probe back into the tunnel, which is what the rehearsal teaches.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from cnilab.sim.magic.facts import Direction, HcType, Rate
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthCheck(_M):
    enabled: bool = True
    type: HcType = "reply"
    direction: Direction = "bidirectional"
    rate: Rate = "mid"
    target: ipaddress.IPv4Address | None = Field(
        default=None, description="request type: where the echo goes after decapsulation; legacy: 172.64.240.253")
    legacy: bool = Field(default=False, description="Legacy bidirectional: target in 172.64.240.252/30 + PBR back")


class MagicTunnel(_M):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,10}$")]
    kind: Literal["cni", "gre"] = Field(description="cni: GRE over an interconnect; gre: GRE over the internet")
    interconnect: str | None = Field(default=None, description="cni: the interconnect whose GRE tunnel this is")
    priority: int = Field(default=100, ge=0, description="Magic route priority (lower wins)")
    weight: int | None = Field(default=None, ge=1, le=255)
    health_check: HealthCheck = Field(default_factory=HealthCheck)

    @model_validator(mode="after")
    def _ic(self) -> MagicTunnel:
        if self.kind == "cni" and not self.interconnect:
            raise ValueError(f"tunnel {self.name}: kind cni needs interconnect")
        if self.kind == "gre" and self.interconnect:
            raise ValueError(f"tunnel {self.name}: kind gre runs over the internet, not interconnect "
                             f"{self.interconnect}")
        return self


class CustomerReturn(_M):
    """How the customer's router treats health-check probes (what a rehearsal gets right or wrong)."""

    accept_local: bool = Field(default=True, description="Linux: accept packets sourced from its own address "
                                                         "(a reply-style probe is); off drops them as martians")
    rp_filter: Literal[0, 1, 2] = Field(default=0, description="rp_filter on the tunnel interfaces")
    firewall_drop_icmp: bool = Field(default=False, description="nftables drops ICMP arriving on the tunnels")


class MagicSpec(_M):
    tunnels: list[MagicTunnel] = Field(min_length=1)
    routes: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="Prefixes given a static route per tunnel (default: customer prefixes)")
    intervals: dict[Rate, float] | None = Field(
        default=None, description="Lab override of the (unpublished) probe interval per rate, seconds")
    dsr: bool = Field(default=True, description="Origin egress leaves through the customer's transit (DSR)")
    customer: CustomerReturn = Field(default_factory=CustomerReturn)
    cloud_router: bool = Field(default=False, description="GCP: the customer router is a Cloud Router whose BGP "
                                                          "routes Cloudflare ignores (only static routes forward)")
    vlan_attachment_mtu: int | None = Field(default=None, ge=576, le=9000,
                                            description="GCP: the VLAN attachment's MTU on the customer side (must "
                                                        "match the interconnect's)")

    @model_validator(mode="after")
    def _unique(self) -> MagicSpec:
        names = [t.name for t in self.tunnels]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"tunnel name {sorted(dup)[0]!r} is used twice")
        return self
