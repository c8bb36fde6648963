"""Request bodies as the official SDK (cloudflare 5.9, ``client.network_interconnects``) sends them.

Strict on purpose: unknown keys are refused at every level (a typo like ``bgp.md5key`` used to be
dropped silently, leaving a session without MD5), integers must be JSON integers (``"1400"`` is not
one; the reference schema says ``integer``) and every string has a length limit (cnilab.mock_api.limits).
The app turns each refusal into a 400 naming the field, and for the seeds' old names the new one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cnilab.mock_api.limits import MAX_LEN, MAX_PREFIXES
from pydantic import BaseModel, ConfigDict, Field

Bandwidth = Literal["50M", "100M", "200M", "300M", "400M", "500M", "1G", "2G", "5G", "10G", "20G", "50G"]
BgpMode = Literal["dynamic_route_exchange", "advertise_only"]


def Text(field: str) -> type[str]:
    """``str`` limited to the documented length of ``field``."""
    return Annotated[str, Field(max_length=MAX_LEN[field])]  # type: ignore[return-value]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Magic(_Body):
    conduit_name: Text("magic.conduit_name")
    description: Text("magic.description")
    mtu: int


class Bgp(_Body):
    customer_asn: int
    extra_prefixes: Annotated[list[Text("bgp.extra_prefixes[]")], Field(max_length=MAX_PREFIXES)]
    md5_key: Text("bgp.md5_key") | None = None


class InterconnectCreate(_Body):
    """nsc_InterconnectCreate: Physical (slot_id, speed) or GcpPartner (bandwidth, pairing_key)."""

    account: Text("account")
    type: Text("type")
    slot_id: Text("slot_id") | None = None
    speed: Text("speed") | None = None
    bandwidth: Bandwidth | None = None
    pairing_key: Text("pairing_key") | None = None


class CniCreate(_Body):
    account: Text("account")
    interconnect: Text("interconnect")
    magic: Magic
    bgp: Bgp | None = None


class CniUpdate(_Body):
    """PUT takes a whole nsc_Cni, as the SDK's ``cnis.update`` sends it."""

    id: Text("id")
    account: Text("account")
    cust_ip: Text("cust_ip")
    interconnect: Text("interconnect")
    magic: Magic
    p2p_ip: Text("p2p_ip")
    bgp: Bgp | None = None
    bgp_mode: BgpMode | None = None


class SettingsRequest(_Body):
    default_asn: int | None = None


# -- lab-only controls (/lab/v1) -------------------------------------------------------------
class CrossConnect(_Body):
    made: bool = True


class Light(_Body):
    dbm: float | None = None


class Swap(_Body):
    swapped: bool = True


class LinkState(_Body):
    up: bool


class Bind(_Body):
    lab: Text("lab") | None = None
    link: Text("link") | None = None
