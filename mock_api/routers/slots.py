"""/accounts/{account_id}/cni/slots: the port inventory (from sim/data/facilities.yaml) and who
occupies what. Slots are shared by all accounts; only the caller's own occupancy names an account."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from mock_api.context import Ctx, QueryText, account_id_dep, ctx, page_args
from mock_api.errors import not_found
from mock_api.inventory import slot_by_id, slots
from mock_api.routers.render import dumps, slot_body
from mock_api.validation import reject_legacy

router = APIRouter(prefix="/client/v4/accounts/{account_id}/cni/slots", tags=["Slots"])


@router.get("", summary="Retrieve a list of all slots matching the specified parameters")
async def list_slots(request: Request, address_contains: QueryText = None, site: QueryText = None,
                     speed: QueryText = None, occupied: bool | None = None, cursor: int | None = None,
                     limit: int | None = None, account_id: str = Depends(account_id_dep),
                     c: Ctx = Depends(ctx)) -> Response:
    reject_legacy("list", request.query_params)
    reject_legacy("slots", request.query_params)
    cur, lim = page_args(c, cursor, limit)
    taken = c.store.occupied_slots()
    out = []
    for i, s in enumerate(slots()):
        if i < cur:
            continue
        if site is not None and s.site != site:
            continue
        if speed is not None and s.speed != speed:
            continue
        if occupied is not None and (s.id in taken) != occupied:
            continue
        if address_contains is not None and address_contains.lower() not in " ".join(s.address).lower():
            continue
        out.append((i, s))
        if len(out) > lim:
            break
    nxt = out[lim - 1][0] + 1 if len(out) > lim else None
    items = ",".join([_slot_text(i, taken.get(s.id), account_id) for i, s in out[:lim]])
    return Response(f'{{"items":[{items}],"next":{dumps(nxt)}}}', media_type="application/json")


@functools.lru_cache(maxsize=4096)
def _slot_text(index: int, occupant: str | None, caller: str) -> str:
    """JSON of slot ``index``; the inventory is fixed, so (slot, occupant, caller) decides the body."""
    return dumps(slot_body(slots()[index], occupant, caller))


@router.get("/{slot}", summary="Get information about the specified slot")
async def get_slot(slot: str, account_id: str = Depends(account_id_dep), c: Ctx = Depends(ctx)) -> JSONResponse:
    s = slot_by_id(slot)
    if s is None:
        raise not_found(f"slot {slot!r} not found")
    return JSONResponse(slot_body(s, c.store.occupied_slots().get(s.id), account_id))
