"""API bodies built from store rows: exactly the fields the SDK's response types parse.

Lists are the hot path (issue 16), so their bodies are served from :class:`BodyCache`: the JSON
text of each item keyed by the whole stored row, so a changed row can never be served stale, and a
list response is the cached texts joined. The bodies themselves come only from the functions here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cnilab.mock_api.inventory import SlotDef, slot_by_id
from cnilab.mock_api.store import CniRow, InterconnectRow, Page, cni_from_row, interconnect_from_row
from fastapi import Response


def dumps(body: Any) -> str:
    """JSON text exactly as Starlette's JSONResponse writes it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class BodyCache:
    """Rendered JSON text per stored row (key: the row's values); bounded, per app."""

    def __init__(self, render: Callable[[Any], dict[str, Any]], limit: int = 50_000) -> None:
        self._render = render
        self._limit = limit
        self._texts: dict[tuple[Any, ...], str] = {}

    def text(self, row: Any) -> str:
        key = tuple(row)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= self._limit:
                self._texts.clear()
            text = self._texts[key] = dumps(self._render(row))
        return text

    def response(self, row: Any) -> Response:
        """One object's body, from the cache."""
        return Response(self.text(row).encode(), media_type="application/json")

    def page_text(self, page: Page) -> str:
        """``{"items": [...], "next": n}`` from cached item texts."""
        items = ",".join([self.text(r) for r in page.items])
        return f'{{"items":[{items}],"next":{dumps(page.next)}}}'


class PageCache:
    """Whole list responses, keyed by the query and the store's version (``Store.version``).

    A repeated list with no write in between (the common case for a polling client) is answered
    without touching SQLite; any commit, by this process or another, changes the key.
    """

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._bodies: dict[tuple[Any, ...], bytes] = {}

    def get_or_make(self, key: tuple[Any, ...], make: Callable[[], str]) -> Response:
        body = self._bodies.get(key)
        if body is None:
            body = make().encode()
            if self._bytes + len(body) > self._max_bytes:  # bounded memory: start over
                self._bodies.clear()
                self._bytes = 0
            self._bodies[key] = body
            self._bytes += len(body)
        return Response(body, media_type="application/json")


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


def cni_cache() -> BodyCache:
    return BodyCache(lambda row: cni_body(cni_from_row(row)))


def interconnect_cache() -> BodyCache:
    return BodyCache(lambda row: interconnect_body(interconnect_from_row(row)))
