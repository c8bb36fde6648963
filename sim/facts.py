"""The one place CNI facts are read from.

Every MTU, MSS, state name, prefix rule and timer lives in ``sim/data/cni.yaml`` with a citation;
the API, the emulator, the probes and the simulator all call :func:`load_facts` instead of writing a
number down, so a correction to the data file corrects every part at once.
"""

from __future__ import annotations

import functools
import ipaddress
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["cf_to_customer", "customer_to_cf"]
DIRECTIONS: tuple[Direction, Direction] = ("cf_to_customer", "customer_to_cf")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Cited(_Frozen):
    value: int | float | str
    source: str


class Header(_Frozen):
    bytes: int
    source: str


class Rate(_Frozen):
    value: int
    per: Literal["gre_tunnel", "cni"]
    source: str


class Profile(_Frozen):
    """A dataplane profile; MTUs are derived from ``encap`` and checked against ``documented_mtu``."""

    id: str = ""
    title: str
    source: str
    default: bool = False
    gre: bool
    vlan: Literal["single", "none"]
    bfd: bool
    lacp: bool
    ecmp: bool
    encap: dict[Direction, list[str]]
    documented_mtu: dict[Direction, int]
    magic_rate_mbps: Rate


class Reserve(_Frozen):
    bytes: int
    source: str


class Service(_Frozen):
    title: str
    source: str = ""
    mss_clamp: int | None = None
    backhaul_encap: list[str] = Field(default_factory=list)
    unattributed_reserve: Reserve | None = None
    documented_mss_clamp: int | None = None


class MssMistake(_Frozen):
    value: int
    why: str


class Facts(_Frozen):
    """Typed view of ``cni.yaml``; methods do the arithmetic the data file only declares."""

    headers: dict[str, Header]
    physical_mtu: Cited
    profiles: dict[str, Profile]
    services: dict[str, Service]
    mss_mistakes: list[MssMistake]
    addressing: dict
    prefix_rules: dict
    bgp: dict
    bfd: dict
    optics: dict
    states: dict
    timelines: dict

    # -- derivations -----------------------------------------------------------------------
    def overhead(self, stack: list[str]) -> int:
        """Bytes an encapsulation stack adds, e.g. ``["gre", "ipv4"]`` -> 24."""
        return sum(self.headers[layer].bytes for layer in stack)

    def path_mtu(self, profile: str, direction: Direction) -> int:
        """IP MTU an inner packet sees on an interconnect of ``profile`` in ``direction``."""
        return int(self.physical_mtu.value) - self.overhead(self.profiles[profile].encap[direction])

    def mss_for_mtu(self, mtu: int, family: int = 4) -> int:
        """Largest TCP MSS a path of ``mtu`` carries without fragmenting (no TCP options)."""
        ip = self.headers["ipv4" if family == 4 else "ipv6"].bytes
        return mtu - ip - self.headers["tcp"].bytes

    def required_mss(self, profile: str, service: str = "peering") -> int:
        """The MSS the customer router must clamp to for this profile and service.

        For Magic Transit the backhaul stack decides; otherwise the smaller of the two path MTUs.
        """
        svc = self.services[service]
        if svc.backhaul_encap:
            reserve = svc.unattributed_reserve.bytes if svc.unattributed_reserve else 0
            mtu = int(self.physical_mtu.value) - self.overhead(svc.backhaul_encap) - reserve
            return self.mss_for_mtu(mtu)
        return self.mss_for_mtu(min(self.path_mtu(profile, d) for d in DIRECTIONS))

    def default_profile(self) -> str:
        return next(pid for pid, p in self.profiles.items() if p.default)

    @property
    def cloudflare_asn(self) -> int:
        return int(self.bgp["cloudflare_asn"]["value"])

    @property
    def min_rx_dbm(self) -> float:
        return float(self.optics["min_rx_dbm"]["value"])

    def max_prefixlen(self, family: int) -> int:
        key = "ipv4_max_prefixlen" if family == 4 else "ipv6_max_prefixlen"
        return int(self.prefix_rules[key]["value"])


def _read_text(name: str) -> str:
    return resources.files("cnilab.sim.data").joinpath(name).read_text(encoding="utf-8")


def _prefix_lines(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    lines = (ln.split("#", 1)[0].strip() for ln in _read_text(name).splitlines())
    return tuple(ipaddress.ip_network(ln) for ln in lines if ln)


@functools.cache
def load_facts() -> Facts:
    """Parse ``cni.yaml`` once; the result is immutable, so sharing it is safe."""
    raw = yaml.safe_load(_read_text("cni.yaml"))
    raw["profiles"] = {pid: {**p, "id": pid} for pid, p in raw["profiles"].items()}
    return Facts.model_validate(raw)


@functools.cache
def cloudflare_ranges() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Cloudflare's published ranges (15 IPv4, 7 IPv6) that the edge advertises."""
    return _prefix_lines("cloudflare-ranges.txt")


@functools.cache
def bogons() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _prefix_lines("bogons.txt")


class Slot(_Frozen):
    port: str
    speed: Literal["10G", "100G"]
    dataplane: str


class Facility(_Frozen):
    site: str
    code: str
    name: str
    address: list[str]
    slots: list[Slot]


@functools.cache
def facilities() -> tuple[Facility, ...]:
    raw = yaml.safe_load(_read_text("facilities.yaml"))
    return tuple(Facility.model_validate(f) for f in raw["facilities"])


def facility_by_code(code: str) -> Facility | None:
    """Find a facility by its code (``EWR1``) or site (``ewr01``), case-insensitive."""
    code = code.lower()
    return next((f for f in facilities() if code in (f.code.lower(), f.site.lower())), None)


class RouterKindInfo(_Frozen):
    """One customer router kind as data (``sim/data/router-kinds.yaml``); the code lives in ``module``."""

    name: str = ""
    title: str
    module: str | None = Field(default=None, description="Python module of the CustomerRouter subclass")
    class_: str | None = Field(default=None, alias="class")
    default: bool = False
    validator: str | None = Field(default=None, description="The daemon's own parser, as a command line")
    cli: list[str] = Field(default_factory=list, description="The daemon's CLI programs (cnilab exec maps them)")
    bfd: bool = Field(description="Whether the daemon can run BFD at all")
    binaries: list[str] = Field(default_factory=list)
    image: str | None = None
    sniff: list[str] = Field(default_factory=list, description="Multiline regexes only this kind's syntax has")
    config_name: str | None = Field(default=None, description="File name of the config the daemon reads in its dir")
    template: str | None = Field(default=None, description="The config template (sim/routers/templates) for a plan")
    phrases: dict[str, str] = Field(
        default_factory=dict,
        description="The daemon's own syntax for each fix the cross-checks suggest (str.format with peer, asn, "
                    "local_as, wrong, tx, rx, mult, hold, keepalive); keys: neighbor, remote_as, local_as, export, "
                    "bfd_on, bfd_off, bfd_timers, timers, reconnect. A missing key falls back to words")
    commands: dict[str, str] = Field(
        default_factory=dict,
        description="Which of the daemon's commands each reading comes from (neighbors, bfd, config, exported, "
                    "policy): a finding's evidence names it, so an engineer can run it on the real router")


@functools.cache
def router_kinds() -> dict[str, RouterKindInfo]:
    """Every customer router kind by name, in file order (the first is listed first in help)."""
    raw = yaml.safe_load(_read_text("router-kinds.yaml"))["kinds"]
    return {name: RouterKindInfo.model_validate({**v, "name": name}) for name, v in raw.items()}


def router_kind_names(*, in_lab: bool = False) -> tuple[str, ...]:
    """Kind names for CLI choices, schema enums and Literals; ``in_lab``: only kinds cnilab can run."""
    return tuple(n for n, k in router_kinds().items() if k.module or not in_lab)


def default_router_kind() -> str:
    return next(n for n, k in router_kinds().items() if k.default)
