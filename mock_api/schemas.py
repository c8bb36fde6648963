"""Request bodies as the official SDK (cloudflare 5.9, ``client.network_interconnects``) sends them.

Models allow extra keys so the routers can answer the seeds' old field names with a pointer to the
new one instead of a generic 'extra field' error; unknown keys are otherwise ignored, like the API.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Bandwidth = Literal["50M", "100M", "200M", "300M", "400M", "500M", "1G", "2G", "5G", "10G", "20G", "50G"]
BgpMode = Literal["dynamic_route_exchange", "advertise_only"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class Magic(BaseModel):
    conduit_name: str
    description: str
    mtu: int


class Bgp(BaseModel):
    customer_asn: int
    extra_prefixes: list[str]
    md5_key: str | None = None


class InterconnectCreate(_Body):
    """nsc_InterconnectCreate: Physical (slot_id, speed) or GcpPartner (bandwidth, pairing_key)."""

    account: str
    type: str
    slot_id: str | None = None
    speed: str | None = None
    bandwidth: Bandwidth | None = None
    pairing_key: str | None = None


class CniCreate(_Body):
    account: str
    interconnect: str
    magic: Magic
    bgp: Bgp | None = None


class CniUpdate(_Body):
    """PUT takes a whole nsc_Cni, as the SDK's ``cnis.update`` sends it."""

    id: str
    account: str
    cust_ip: str
    interconnect: str
    magic: Magic
    p2p_ip: str
    bgp: Bgp | None = None
    bgp_mode: BgpMode | None = None


class SettingsRequest(_Body):
    default_asn: int | None = None


# -- lab-only controls (/lab/v1) -------------------------------------------------------------
class CrossConnect(BaseModel):
    made: bool = True


class Light(BaseModel):
    dbm: float | None = None


class Swap(BaseModel):
    swapped: bool = True


class LinkState(BaseModel):
    up: bool


class Bind(BaseModel):
    lab: str | None = None
    link: str | None = None
