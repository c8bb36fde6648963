"""API bodies built from store rows: exactly the fields the SDK's response types parse."""

from __future__ import annotations

from typing import Any

from mock_api.inventory import SlotDef, slot_by_id
from mock_api.store import CniRow, InterconnectRow


def interconnect_body(ic: InterconnectRow) -> dict[str, Any]:
    body: dict[str, Any] = {"account": ic.account, "name": ic.name, "type": ic.type,
                            "virtual_port_reservation_id": ic.vpr_id}
    if ic.owner:
        body["owner"] = ic.owner
    if ic.type == "direct":
        slot = slot_by_id(ic.slot_id or "")
        assert slot is not None, f"interconnect {ic.name} refers to unknown slot {ic.slot_id}"
        body.update(facility={"name": slot.facility_name, "address": list(slot.address)}, site=slot.site,
                    slot_id=slot.id, speed=ic.speed or slot.speed, ccr_device_name=slot.ccr_device_name)
    else:
        body["region"] = ic.region
        if ic.speed:
            body["speed"] = ic.speed
    return body


def slot_body(slot: SlotDef, occupant: str | None, caller: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": slot.id, "facility": {"name": slot.facility_name, "address": list(slot.address)},
                            "occupied": occupant is not None, "site": slot.site, "speed": slot.speed,
                            "ccr_device_name": slot.ccr_device_name}
    if occupant == caller:  # never reveal another account's tag
        body["account"] = caller
    return body


def cni_body(c: CniRow) -> dict[str, Any]:
    body: dict[str, Any] = {"id": c.id, "account": c.account, "interconnect": c.interconnect, "p2p_ip": c.p2p_ip,
                            "cust_ip": c.cust_ip,
                            "magic": {"conduit_name": c.conduit_name, "description": c.description, "mtu": c.mtu}}
    if c.bgp is not None:
        body["bgp"] = c.bgp
    if c.bgp_mode is not None:
        body["bgp_mode"] = c.bgp_mode
    return body
