"""/accounts/{account_id}/cni/cnis: the BGP/Magic configuration riding an interconnect.

Creating, updating or deleting one changes the edge peer's sessions in a bound lab. If the lab
refuses, the change is undone, so the API never reports a session the lab does not have.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable

from cnilab.mock_api.context import Ctx, QueryText, ctx, page_args
from cnilab.mock_api.errors import CFError, bad_request, conflict, not_found
from cnilab.mock_api.inventory import slot_by_id
from cnilab.mock_api.lab_bridge import BridgeError
from cnilab.mock_api.routers.interconnects import find
from cnilab.mock_api.routers.render import cni_body
from cnilab.mock_api.schemas import Bgp, CniCreate, CniUpdate
from cnilab.mock_api.store import CniRow, InterconnectGone, InterconnectRow, P2pTaken, PoolExhausted
from cnilab.mock_api.validation import check_asn, check_md5, check_mtu, check_p2p, check_prefixes, reject_legacy
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/client/v4/accounts/{account_id}/cni/cnis", tags=["CNIs"])


def _dataplane(ic: InterconnectRow) -> str:
    slot = slot_by_id(ic.slot_id or "")
    return slot.dataplane if slot else "v2"  # partner interconnects carry no GRE


def _check_bgp(bgp: Bgp | None) -> None:
    if bgp is None:
        return
    check_asn("bgp.customer_asn", bgp.customer_asn)
    check_md5("bgp.md5_key", bgp.md5_key)
    check_prefixes(bgp.extra_prefixes)


def sync_lab(c: Ctx, lab: str | None) -> None:
    """Push the full session set of ``lab`` to its edge peer (no-op when unbound)."""
    if not lab:
        return
    bound = [ic for ic in c.store.interconnects_in_lab(lab) if ic.lab_link]
    c.bridge.sync(lab, bound, c.store.cnis_on([ic.name for ic in bound]))


def _lab_of(ic: InterconnectRow) -> str | None:
    return ic.lab if ic.lab and ic.lab_link else None


def sync_or_undo(c: Ctx, lab: str | None, undo: Callable[[], object]) -> None:
    """:func:`sync_lab`; when the lab refuses, run ``undo`` (put the store back as it was) and answer
    502, so the API never reports a session the lab does not have."""
    try:
        sync_lab(c, lab)
    except (BridgeError, OSError) as exc:
        undo()
        raise CFError(502, 1005, f"the lab refused the change, nothing was applied: {exc}") from None


@router.post("", summary="Create a new CNI object")
def create_cni(body: CniCreate, account_id: str, request: Request) -> JSONResponse:
    c = ctx(request)
    if body.account != account_id:
        raise bad_request(f"account: {body.account!r} does not match the account in the URL ({account_id})")
    ic = find(c, account_id, body.interconnect)
    check_mtu(body.magic.mtu, _dataplane(ic))
    _check_bgp(body.bgp)
    lab = _lab_of(ic)
    preferred = c.bridge.plan_addresses(lab, ic.lab_link or "") if lab else None
    row = CniRow(id=str(uuid.uuid4()), account=account_id, interconnect=ic.name, p2p_ip="", cust_ip="",
                 conduit_name=body.magic.conduit_name, description=body.magic.description, mtu=body.magic.mtu,
                 bgp=body.bgp.model_dump() if body.bgp else None,
                 bgp_mode="dynamic_route_exchange" if body.bgp else "advertise_only", tunnel_id=str(uuid.uuid4()))
    try:
        row = c.store.create_cni(row, c.settings.p2p_pool, preferred)
    except PoolExhausted:
        raise conflict(f"no free point-to-point /31 left in the pool {c.settings.p2p_pool} (config p2p_pool)") from None
    except InterconnectGone:
        raise not_found(f"interconnect {ic.name!r} not found (deleted while this CNI was being created)") from None
    sync_or_undo(c, lab, lambda: c.store.delete_cni(account_id, row.id))
    return JSONResponse(cni_body(row))


@router.get("", summary="List existing CNI objects")
async def list_cnis(account_id: str, request: Request, slot: QueryText = None, tunnel_id: QueryText = None,
                    cursor: int | None = None, limit: int | None = None) -> Response:
    c = ctx(request)
    reject_legacy("list", request.query_params)
    cur, lim = page_args(c, cursor, limit)
    return c.page(c.cni_bodies, ("cnis", account_id, slot, tunnel_id, cur, lim),
                  lambda: c.store.list_cnis(account_id, slot, tunnel_id, cur, lim))


def _find_cni(c: Ctx, account: str, cni: str) -> CniRow:
    row = c.store.get_cni(account, cni)
    if row is None:
        raise not_found(f"CNI {cni!r} not found")
    return row


@router.get("/{cni}", summary="Get information about a CNI object")
async def get_cni(cni: str, account_id: str, request: Request) -> Response:
    c = ctx(request)
    return c.one(c.cni_bodies, c.store.cni_row(account_id, cni), f"CNI {cni!r}")


@router.put("/{cni}", summary="Modify stored information about a CNI object")
def update_cni(cni: str, body: CniUpdate, account_id: str,
               request: Request) -> JSONResponse:
    c = ctx(request)
    old = _find_cni(c, account_id, cni)
    if body.id != cni:
        raise bad_request(f"id: {body.id!r} does not match the CNI in the URL ({cni})")
    if body.account != account_id:
        raise bad_request(f"account: {body.account!r} does not match the account in the URL ({account_id})")
    if body.interconnect != old.interconnect:
        raise bad_request(f"interconnect: {body.interconnect!r} cannot change (this CNI is on {old.interconnect!r}; "
                          "create a new CNI instead)")
    check_p2p(body.p2p_ip, body.cust_ip)
    ic = find(c, account_id, old.interconnect)
    check_mtu(body.magic.mtu, _dataplane(ic))
    _check_bgp(body.bgp)
    p2p = ipaddress.ip_interface(body.p2p_ip)
    cust = ipaddress.ip_interface(body.cust_ip)
    new = old.model_copy(update={
        "p2p_ip": f"{p2p.ip}/{p2p.network.prefixlen}", "cust_ip": f"{cust.ip}/{cust.network.prefixlen}",
        "conduit_name": body.magic.conduit_name, "description": body.magic.description, "mtu": body.magic.mtu,
        "bgp": body.bgp.model_dump() if body.bgp else None,
        "bgp_mode": body.bgp_mode or ("dynamic_route_exchange" if body.bgp else "advertise_only")})
    try:
        saved = c.store.update_cni(new)
    except P2pTaken as exc:
        raise conflict(f"p2p_ip: {exc.network} is already used by CNI {exc.cni}") from None
    if saved is None:
        raise not_found(f"CNI {cni!r} not found")
    sync_or_undo(c, _lab_of(ic), lambda: c.store.update_cni(old))
    return JSONResponse(cni_body(saved))


@router.delete("/{cni}", summary="Delete a specified CNI object")
def delete_cni(cni: str, account_id: str, request: Request) -> Response:
    c = ctx(request)
    old = c.store.delete_cni(account_id, cni)
    if old is None:
        raise not_found(f"CNI {cni!r} not found")
    ic = c.store.interconnect_by_name(old.interconnect)
    sync_or_undo(c, _lab_of(ic) if ic else None,
                 lambda: c.store.create_cni(old, c.settings.p2p_pool, (old.p2p_ip, old.cust_ip)))
    return Response(status_code=200)
