"""/accounts/{account_id}/cni/interconnects: create (direct or gcp_partner), list, get, delete,
status and LOA. The server names interconnects; the name is what every URL uses."""

from __future__ import annotations

import re
import secrets
import uuid

from cnilab.mock_api.context import Ctx, QueryText, ctx, page_args
from cnilab.mock_api.errors import bad_request, conflict, not_found
from cnilab.mock_api.inventory import slot_by_id, slots
from cnilab.mock_api.loa import MAX_NAME, render_loa
from cnilab.mock_api.routers.render import interconnect_body
from cnilab.mock_api.schemas import InterconnectCreate
from cnilab.mock_api.status import Diagnosis, derive_status
from cnilab.mock_api.store import HasCnis, InterconnectRow, SlotTaken
from cnilab.mock_api.validation import reject_legacy
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/client/v4/accounts/{account_id}/cni/interconnects", tags=["Interconnects"])

# GCP pairing keys look like '<uuid>/<region>/<edge availability domain>'.
_PAIRING_RE = re.compile(r"^[0-9a-f-]{36}/([a-z]+-[a-z]+\d+)/[12]$")


def find(c: Ctx, account: str, icon: str) -> InterconnectRow:
    ic = c.store.get_interconnect(account, icon)
    if ic is None:  # also for other accounts' names: nothing leaks
        raise not_found(f"interconnect {icon!r} not found")
    return ic


def diagnose(c: Ctx, ic: InterconnectRow) -> Diagnosis:
    if ic.lab and ic.lab_link:
        obs = c.bridge.observe(ic.lab, ic.lab_link)
        if obs is None:  # lab gone: the port sees nothing, as before the cross-connect
            return derive_status(False, None, False, False)
        return derive_status(obs.cross_connect, obs.light_dbm, obs.swapped, obs.link_up)
    return derive_status(ic.cross_connect, ic.light_dbm, ic.swapped, ic.link_up)


@router.post("", summary="Create a new interconnect")
def create_interconnect(body: InterconnectCreate, account_id: str,
                        request: Request) -> JSONResponse:
    c = ctx(request)
    if body.account != account_id:
        raise bad_request(f"account: {body.account!r} does not match the account in the URL ({account_id})")
    token = secrets.token_hex(4)
    if body.type == "direct":
        if not body.slot_id:
            raise bad_request("slot_id: required for a direct interconnect (GET /slots?occupied=false lists free ones)")
        slot = slot_by_id(body.slot_id)
        if slot is None:
            raise bad_request(f"slot_id: {body.slot_id!r} is not a slot (GET /slots lists them)")
        if body.speed is not None and body.speed != slot.speed:
            raise bad_request(f"speed: {body.speed!r} does not match slot {slot.id} ({slot.speed})")
        row = InterconnectRow(name=f"{slot.site}-{token}", account=account_id, type="direct", slot_id=slot.id,
                              speed=slot.speed, vpr_id=str(uuid.uuid4()))
    elif body.type == "gcp_partner":
        if not body.pairing_key or body.bandwidth is None:
            raise bad_request("pairing_key and bandwidth are required for a gcp_partner interconnect")
        m = _PAIRING_RE.match(body.pairing_key)
        if not m:
            raise bad_request(f"pairing_key: {body.pairing_key!r} is not a GCP pairing key (<uuid>/<region>/<1|2>)")
        row = InterconnectRow(name=f"gcp-{m.group(1)}-{token}", account=account_id, type="gcp_partner",
                              region=m.group(1), speed=body.bandwidth, pairing_key=body.pairing_key,
                              vpr_id=str(uuid.uuid4()))
    else:
        raise bad_request(f"type: {body.type!r} is not an interconnect type (direct or gcp_partner)")
    if c.settings.lab and row.type == "direct":
        row.lab = c.settings.lab
    try:
        row = c.store.create_interconnect(row)
    except SlotTaken:
        raise conflict(f"slot_id: slot {body.slot_id} is already occupied") from None
    return JSONResponse(interconnect_body(row))


@router.get("", summary="List existing interconnects")
async def list_interconnects(account_id: str, request: Request, site: QueryText = None, type: QueryText = None,
                             cursor: int | None = None, limit: int | None = None) -> Response:
    c = ctx(request)
    reject_legacy("list", request.query_params)
    reject_legacy("slots", {k for k in request.query_params if k == "facility"})
    cur, lim = page_args(c, cursor, limit)
    site_slots = [s.id for s in slots() if s.site == site] if site is not None else None
    return c.page(c.interconnect_bodies, ("interconnects", account_id, site, type, cur, lim),
                  lambda: c.store.list_interconnects(account_id, site_slots, type, cur, lim))


@router.get("/{icon}", summary="Get information about an interconnect object")
async def get_interconnect(icon: str, account_id: str, request: Request) -> Response:
    c = ctx(request)
    return c.one(c.interconnect_bodies, c.store.interconnect_row(account_id, icon), f"interconnect {icon!r}")


@router.delete("/{icon}", summary="Delete an interconnect object")
def delete_interconnect(icon: str, account_id: str, request: Request) -> Response:
    c = ctx(request)
    find(c, account_id, icon)
    try:
        if not c.store.delete_interconnect(account_id, icon):
            raise not_found(f"interconnect {icon!r} not found")
    except HasCnis as exc:
        raise conflict(f"interconnect {icon!r} still hosts {exc.count} CNI object(s): delete them first") from None
    return Response(status_code=200)


@router.get("/{icon}/status", summary="Get the current status of an interconnect object")
def interconnect_status(icon: str, account_id: str, request: Request) -> JSONResponse:
    c = ctx(request)
    return JSONResponse(diagnose(c, find(c, account_id, icon)).api_body())


@router.get("/{icon}/loa", summary="Generate the Letter of Authorization (LOA) for a given interconnect",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def interconnect_loa(account_id: str, icon: str, request: Request, name: QueryText = None) -> Response:
    c = ctx(request)
    ic = find(c, account_id, icon)
    if name is not None and (not name.strip() or len(name) > MAX_NAME):
        raise bad_request(f"name: must be 1-{MAX_NAME} characters, got {len(name)}")
    if ic.type != "direct":
        raise bad_request(f"interconnect {icon!r} is {ic.type}: an LOA exists only for direct (physical) ones")
    slot = slot_by_id(ic.slot_id or "")
    assert slot is not None
    pdf = render_loa(account_name=name or c.account(account_id).name, account_id=account_id, interconnect=icon,
                     slot=slot)
    return Response(pdf, media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="LOA-{icon}.pdf"'})
