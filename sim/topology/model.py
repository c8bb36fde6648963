"""The topology a user writes: interconnects, the customer router, test hosts, faults.

The model only says *what* the lab is; :mod:`cnilab.sim.topology.plan` turns it into nodes, interfaces
and addresses. Validation here is everything that can be decided from the file alone, so bad input
is refused before a single namespace exists.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from cnilab.sim.bgp.rov import Rpki
from cnilab.sim.dataplane.declared import DataplaneBlock
from cnilab.sim.facts import default_router_kind, facility_by_code, load_facts, router_kind_names, router_kinds
from cnilab.sim.faults.kinds import EXAMPLES, FaultKindName, parse_fault
from cnilab.sim.magic.model import MagicSpec
from cnilab.sim.runtime.names import LAB_NAME_PATTERN
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,10}$")]
"""Short names: they become interface names (15-char kernel limit with prefixes)."""

IPv4If = ipaddress.IPv4Interface
IPv6If = ipaddress.IPv6Interface
Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_p2p(p2p: P2P4 | P2P6, key: str) -> None:
    """Both ends in the same /31 (/127) and different: the seeds' point-to-point addressing."""
    want = int(load_facts().addressing[key]["value"])
    for side in ("cloudflare", "customer"):
        plen = getattr(p2p, side).network.prefixlen
        if plen != want:
            raise ValueError(f"{side} address {getattr(p2p, side)} is a /{plen}; CNI links are /{want}")
    if p2p.cloudflare.network != p2p.customer.network:
        raise ValueError(f"{p2p.cloudflare} and {p2p.customer} are not in the same /{want}")
    if p2p.cloudflare.ip == p2p.customer.ip:
        raise ValueError(f"cloudflare and customer both use {p2p.cloudflare.ip}")


class P2P4(Model):
    """IPv4 point-to-point addressing of one interconnect (a /31, seed 002)."""

    cloudflare: IPv4If
    customer: IPv4If

    @model_validator(mode="after")
    def _same_31(self) -> P2P4:
        _check_p2p(self, "p2p_v4_prefixlen")
        return self


class P2P6(Model):
    """IPv6 point-to-point addressing (a /127, seed 002)."""

    cloudflare: IPv6If
    customer: IPv6If

    @model_validator(mode="after")
    def _same_127(self) -> P2P6:
        _check_p2p(self, "p2p_v6_prefixlen")
        return self


class Bgp(Model):
    md5: str | None = Field(default=None, description="TCP MD5 key (RFC 2385), shared by both sides")
    hold_time: int = Field(default=90, description="Seconds; 0 or >= 3 (RFC 4271)")
    keepalive: int | None = Field(default=None, description="Seconds; default hold_time / 3")
    passive: bool = Field(default=True, description="Cloudflare's side waits for the customer to connect")
    local_pref: int = Field(default=100, description="Customer's local-pref for routes learned here")
    customer_md5: str | None = Field(
        default=None, description="Key the customer router uses, when rehearsing a mismatch (default: md5)"
    )
    max_prefix: int | None = Field(
        default=None, ge=1, description="Cloudflare's limit on prefixes received from the customer on each session "
                                        "of this interconnect: over it the edge sends Cease 6/1 (default: none)")

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, v: int) -> int:
        if v != 0 and v < int(load_facts().bgp["min_hold_time"]["value"]):
            raise ValueError(f"hold time {v}s is not allowed: RFC 4271 requires 0 or at least 3 seconds")
        return v

    @field_validator("keepalive")
    @classmethod
    def _keepalive(cls, v: int | None, info: ValidationInfo) -> int | None:
        # RFC 4271 4.4: keepalives are sent well inside the hold time; at >= hold the session drops
        # between two keepalives (hold 0 disables both, so any keepalive is moot there). A field
        # validator, so the error names the field and its value (interconnects[0].bgp.keepalive = 9).
        hold = info.data.get("hold_time")
        if v is not None and hold and v >= hold:
            raise ValueError(f"keepalive {v}s >= hold_time {hold}s: the session would expire between two "
                             f"keepalives; use at most hold_time / 3 ({hold // 3}s)")
        return v

    @property
    def keepalive_s(self) -> int:
        return self.keepalive if self.keepalive is not None else self.hold_time // 3


class Bfd(Model):
    enabled: bool = False
    tx_ms: int = Field(default=300, ge=10, le=60000)
    rx_ms: int = Field(default=300, ge=10, le=60000)
    multiplier: int = Field(default=3, ge=1, le=255)


FaultKind = FaultKindName


class Fault(Model):
    """A fault present from the start of the lab (the same kinds `cnilab fault` injects)."""

    kind: FaultKind
    value: str | float | None = Field(default=None, description=f"With its unit where it has one: {EXAMPLES}")

    @model_validator(mode="after")
    def _value(self) -> Fault:
        parse_fault(self.kind, self.value)  # FaultError is a ValueError: pydantic names the field
        return self


class Interconnect(Model):
    name: Name
    site: str = Field(description="Facility code (EWR1) or site (ewr01) from sim/data/facilities.yaml")
    dataplane: str = Field(default_factory=lambda: load_facts().default_profile())
    service: Literal["peering", "magic-transit"] = "peering"
    speed: Literal["10G", "100G"] = "10G"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    ipv4: P2P4
    ipv6: P2P6 | None = None
    gre: P2P4 | None = Field(default=None, description="GRE tunnel inner /31 (v1 only; default derived)")
    gre6: P2P6 | None = Field(default=None, description="GRE tunnel inner IPv6 /127 (v1 with ipv6; default derived)")
    bgp: Bgp = Field(default_factory=Bgp)
    bfd: Bfd = Field(default_factory=Bfd)
    priority: int = Field(
        default=100, description="Cloudflare's preference among equal routes (higher wins), lab-side fact"
    )
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        fac = facility_by_code(v)
        if fac is None:
            raise ValueError(f"unknown site {v!r}; known sites are listed in sim/data/facilities.yaml")
        return fac.code

    @field_validator("dataplane")
    @classmethod
    def _dataplane(cls, v: str) -> str:
        profiles = load_facts().profiles
        if v not in profiles:
            raise ValueError(f"unknown dataplane {v!r}; choose one of {', '.join(profiles)}")
        return v

    @model_validator(mode="after")
    def _profile_rules(self) -> Interconnect:
        prof = load_facts().profiles[self.dataplane]
        if self.vlan is not None and prof.vlan == "none":
            raise ValueError(f"vlan {self.vlan} on dataplane {self.dataplane}: {self.dataplane} has no 802.1Q")
        if self.bfd.enabled and not prof.bfd:
            raise ValueError(f"bfd on dataplane {self.dataplane}: BFD is not supported on {self.dataplane}")
        if (self.gre is not None or self.gre6 is not None) and not prof.gre:
            raise ValueError(f"gre on dataplane {self.dataplane}: {self.dataplane} has no GRE")
        return self


RouterKind = Literal[router_kind_names()]  # type: ignore[valid-type]
"""Customer router kinds, from ``sim/data/router-kinds.yaml`` (the registry's data), never retyped."""


class CustomerRouter(Model):
    kind: RouterKind = Field(default=default_router_kind(),  # type: ignore[valid-type]
                             description="; ".join(f"{n}: {k.title}" for n, k in router_kinds().items()))
    config: Path | None = Field(default=None, description="Your own router config; default: rendered template")
    mss_clamp: int | Literal["auto"] | None = Field(
        default="auto", description="MSS clamp cnilab installs for a template router ('auto' = what the profile "
                                    "needs); with your own config, 'auto' installs nothing: declare the clamp in "
                                    "`dataplane`")
    dataplane: DataplaneBlock | Path | None = Field(
        default=None, description="Your side of the dataplane (GRE tunnel, MSS clamp): a file of ip/nft/iptables "
                                  "lines, or a block with `tunnels` and `mss_clamp`. cnilab then builds only "
                                  "Cloudflare's side")


class Customer(Model):
    asn: int = Field(ge=1, le=4294967295)
    prefixes: list[Prefix] = Field(min_length=1, description="Prefixes the customer announces (the allow-list)")
    announce_extra: list[Prefix] = Field(
        default_factory=list, description="Announced but not on the allow-list (rehearse a refusal)"
    )
    router: CustomerRouter = Field(default_factory=CustomerRouter)

    @field_validator("asn")
    @classmethod
    def _asn(cls, v: int) -> int:
        if v in (0, 23456, 65535, 4294967295) or 64496 <= v <= 64511 or 65536 <= v <= 65551:
            raise ValueError(f"ASN {v} is reserved (RFC 7300, RFC 5398, RFC 6793) and cannot peer")
        if v == load_facts().cloudflare_asn:
            raise ValueError(f"ASN {v} is Cloudflare's own; the customer needs its own ASN")
        return v


class Cloudflare(Model):
    extra_prefixes: list[Prefix] = Field(default_factory=list)
    scale_routes: int = Field(default=0, ge=0, le=200000, description="Extra more-specifics for scale tests")


class Host(Model):
    ipv4: IPv4If
    ipv6: IPv6If | None = None


class Hosts(Model):
    internet: Host = Field(
        default_factory=lambda: Host(ipv4="104.16.0.10/24", ipv6="2606:4700:10::10/64"),
        description="Test host behind Cloudflare (inside a Cloudflare range)",
    )
    origin: Host | None = Field(default=None, description="Origin behind the customer; default: first prefix .10")


class Topology(Model):
    name: Annotated[str, StringConstraints(pattern=LAB_NAME_PATTERN)]
    description: str = ""
    customer: Customer
    interconnects: list[Interconnect] = Field(min_length=1)
    internet_backup: bool = Field(default=False, description="Add a transit path as the backup (seed 003)")
    peer: bool = Field(default=False, description="Add a settlement-free peer (AS64501, BGP only) that records "
                                                  "what the customer announces to it: leaks toward it fail")
    cloudflare: Cloudflare = Field(default_factory=Cloudflare)
    hosts: Hosts = Field(default_factory=Hosts)
    rpki: Rpki | None = Field(default=None, description="The customer's ROAs: the edge validates origins (RFC 6811)")
    magic: MagicSpec | None = Field(default=None, description="Magic Transit/WAN tunnels, health checks, routes")

    @model_validator(mode="after")
    def _cross_checks(self) -> Topology:
        for i, t in enumerate(self.magic.tunnels if self.magic else []):
            if t.kind == "cni" and t.interconnect not in {ic.name for ic in self.interconnects}:
                raise ValueError(f"magic.tunnels[{i}].interconnect: no interconnect {t.interconnect!r}")
            if t.kind == "gre" and not self.internet_backup:
                raise ValueError(f"magic.tunnels[{i}]: a gre tunnel over the internet needs internet_backup: true")
        seen: dict[str, str] = {}
        for i, ic in enumerate(self.interconnects):
            where = f"interconnects[{i}]"
            if ic.name in seen:
                raise ValueError(f"{where}.name {ic.name!r} is used twice")
            seen[ic.name] = where
        nets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        for i, ic in enumerate(self.interconnects):
            nets.append((f"interconnects[{i}].ipv4", ic.ipv4.cloudflare.network))
            if ic.ipv6:
                nets.append((f"interconnects[{i}].ipv6", ic.ipv6.cloudflare.network))
            if ic.gre:
                nets.append((f"interconnects[{i}].gre", ic.gre.cloudflare.network))
        nets.append(("hosts.internet.ipv4", self.hosts.internet.ipv4.network))
        if self.hosts.origin:
            nets.append(("hosts.origin.ipv4", self.hosts.origin.ipv4.network))
        for a in range(len(nets)):
            for b in range(a + 1, len(nets)):
                (fa, na), (fb, nb) = nets[a], nets[b]
                if na.version == nb.version and na.overlaps(nb):
                    raise ValueError(f"{fb} {nb} overlaps {fa} {na}")
        return self
