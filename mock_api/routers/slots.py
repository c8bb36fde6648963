"""/accounts/{account_id}/cni/slots: the port inventory (from sim/data/facilities.yaml) and who
occupies what. Slots are shared by all accounts; only the caller's own occupancy names an account."""

from __future__ import annotations

import functools
from typing import NamedTuple

from cnilab.mock_api.context import Ctx, QueryText, ctx, page_args
from cnilab.mock_api.errors import not_found
from cnilab.mock_api.inventory import slot_by_id, slots
from cnilab.mock_api.routers.render import dumps, slot_body
from cnilab.mock_api.validation import reject_legacy
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/client/v4/accounts/{account_id}/cni/slots", tags=["Slots"])


@router.get("", summary="Retrieve a list of all slots matching the specified parameters")
async def list_slots(account_id: str, request: Request, address_contains: QueryText = None, site: QueryText = None,
                     speed: QueryText = None, occupied: bool | None = None, cursor: int | None = None,
                     limit: int | None = None) -> Response:
    c = ctx(request)
    reject_legacy("list", request.query_params)
    reject_legacy("slots", request.query_params)
    cur, lim = page_args(c, cursor, limit)
    query = _SlotQuery(address_contains, site, speed, occupied, cur, lim)
    return c.pages.get_or_make(("slots", account_id, query, *c.store.version()),
                               lambda: _slot_page(c, query, account_id))


class _SlotQuery(NamedTuple):
    address_contains: str | None
    site: str | None
    speed: str | None
    occupied: bool | None
    cursor: int
    limit: int


def _slot_page(c: Ctx, q: _SlotQuery, account_id: str) -> str:
    taken = c.store.occupied_slots()
    out = []
    for i, s in enumerate(slots()):
        if i < q.cursor:
            continue
        if q.site is not None and s.site != q.site:
            continue
        if q.speed is not None and s.speed != q.speed:
            continue
        if q.occupied is not None and (s.id in taken) != q.occupied:
            continue
        if q.address_contains is not None and q.address_contains.lower() not in " ".join(s.address).lower():
            continue
        out.append((i, s))
        if len(out) > q.limit:
            break
    nxt = out[q.limit - 1][0] + 1 if len(out) > q.limit else None
    items = ",".join([_slot_text(i, taken.get(s.id), account_id) for i, s in out[:q.limit]])
    return f'{{"items":[{items}],"next":{dumps(nxt)}}}'


@functools.lru_cache(maxsize=4096)
def _slot_text(index: int, occupant: str | None, caller: str) -> str:
    """JSON of slot ``index``; the inventory is fixed, so (slot, occupant, caller) decides the body."""
    return dumps(slot_body(slots()[index], occupant, caller))


@router.get("/{slot}", summary="Get information about the specified slot")
async def get_slot(slot: str, account_id: str, request: Request) -> JSONResponse:
    c = ctx(request)
    s = slot_by_id(slot)
    if s is None:
        raise not_found(f"slot {slot!r} not found")
    return JSONResponse(slot_body(s, c.store.occupied_slots().get(s.id), account_id))
