"""/lab/v1: controls a real CNI API does not have, for rehearsing the physical side.

Make the cross-connect, set the received light level, swap the fibres, take the link down, or bind
an API interconnect to a running lab's interconnect link (whose faults then decide the status).
Outside /client/v4 on purpose: no Cloudflare client will ever call these by accident.
"""

from __future__ import annotations

from typing import Any

from cnilab.mock_api.context import Ctx, ctx
from cnilab.mock_api.errors import CFError, bad_request, conflict, not_found
from cnilab.mock_api.lab_bridge import BridgeError
from cnilab.mock_api.routers.cnis import sync_lab, sync_or_undo
from cnilab.mock_api.routers.interconnects import diagnose
from cnilab.mock_api.schemas import Bind, CrossConnect, Light, LinkState, Swap
from cnilab.mock_api.store import InterconnectRow
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/lab/v1/interconnects/{icon}", tags=["Lab controls"])


def _owned(request: Request, c: Ctx, icon: str) -> InterconnectRow:
    ic = c.store.interconnect_by_name(icon)
    if ic is None or ic.account not in request.state.identity.accounts:
        raise not_found(f"interconnect {icon!r} not found")
    return ic


def _manual(request: Request, c: Ctx, icon: str) -> InterconnectRow:
    ic = _owned(request, c, icon)
    if ic.lab and ic.lab_link:
        raise conflict(f"interconnect {icon!r} is bound to lab {ic.lab!r} link {ic.lab_link!r}: its status comes "
                       "from the lab; inject faults there (cnilab fault ...) or unbind first")
    return ic


def view(c: Ctx, ic: InterconnectRow) -> dict[str, Any]:
    d = diagnose(c, ic)
    return {"name": ic.name, "state": d.state, "reason": d.reason, "reason_id": d.reason_id,
            "cross_connect": ic.cross_connect, "light_dbm": ic.light_dbm, "swapped": ic.swapped,
            "link_up": ic.link_up, "lab": ic.lab, "lab_link": ic.lab_link}


@router.get("", summary="Physical state and full diagnosis (including Pending reasons)")
def lab_view(icon: str, request: Request) -> JSONResponse:
    c = ctx(request)
    return JSONResponse(view(c, _owned(request, c, icon)))


def _set(request: Request, icon: str, **physical: Any) -> JSONResponse:
    """Change the physical side of an unbound interconnect and answer with the new diagnosis."""
    c = ctx(request)
    _manual(request, c, icon)
    ic = c.store.update_interconnect(icon, **physical)
    assert ic
    return JSONResponse(view(c, ic))


def _plausible_dbm(dbm: float | None) -> float | None:
    if dbm is not None and not -60.0 <= dbm <= 10.0:
        raise bad_request(f"dbm: {dbm} is not a plausible receive level (-60..10 dBm)")
    return dbm


@router.post("/cross-connect", summary="Make (or remove) the cross-connect")
def cross_connect(icon: str, body: CrossConnect, request: Request) -> JSONResponse:
    return _set(request, icon, cross_connect=body.made)


@router.post("/light", summary="Set the received light level in dBm (null: no light)")
def light(icon: str, body: Light, request: Request) -> JSONResponse:
    return _set(request, icon, light_dbm=_plausible_dbm(body.dbm))


@router.post("/swap", summary="Swap (or un-swap) RX and TX fibres")
def swap(icon: str, body: Swap, request: Request) -> JSONResponse:
    return _set(request, icon, swapped=body.swapped)


@router.post("/link", summary="Set the link's operational state")
def link(icon: str, body: LinkState, request: Request) -> JSONResponse:
    return _set(request, icon, link_up=body.up)


def _running_links(c: Ctx, lab: str) -> list[str]:
    """The interconnect links of running lab ``lab``; a bad name and a lab that is not up are both a
    400 on ``lab``."""
    try:
        # One rule for lab names (cnilab.sim.runtime.names), and a state path that stays inside the state
        # root once symlinks are resolved: the bridge refuses anything else with a ValueError.
        links = c.bridge.interconnects(lab)
    except ValueError as exc:
        why = str(exc)
    else:
        if links is not None:
            return links
        why = f"no lab named {lab!r} is running (see `cnilab status`)"
    raise bad_request(f"lab: {why}")


@router.post("/bind", summary="Bind to a running lab's interconnect; its CNIs then drive the edge peer")
def bind(icon: str, body: Bind, request: Request) -> JSONResponse:
    c = ctx(request)
    ic = _owned(request, c, icon)
    lab = body.lab or c.settings.lab
    if not lab:
        raise bad_request("lab: required (or start the server with --lab LAB)")
    links = _running_links(c, lab)
    link_name = body.link or (links[0] if len(links) == 1 else None)
    if link_name not in links:
        raise bad_request(f"link: {body.link!r} is not an interconnect of lab {lab!r} (choose one of {links})")
    taken = [o.name for o in c.store.interconnects_in_lab(lab) if o.lab_link == link_name and o.name != icon]
    if taken:
        raise conflict(f"lab {lab!r} link {link_name!r} is already bound to interconnect {taken[0]!r}")
    old = (ic.lab, ic.lab_link)
    ic = c.store.update_interconnect(icon, lab=lab, lab_link=link_name)
    assert ic
    sync_or_undo(c, lab, lambda: c.store.update_interconnect(icon, lab=old[0], lab_link=old[1]))
    return JSONResponse(view(c, ic))


@router.delete("/bind", summary="Unbind from the lab (the lab's own sessions come back)")
def unbind(icon: str, request: Request) -> JSONResponse:
    c = ctx(request)
    ic = _owned(request, c, icon)
    lab = ic.lab if ic.lab_link else None
    ic = c.store.update_interconnect(icon, lab_link=None)
    assert ic
    if lab:
        try:
            sync_lab(c, lab)
        except (BridgeError, OSError) as exc:
            raise CFError(502, 1005, f"unbound, but the lab could not be updated: {exc}") from None
    return JSONResponse(view(c, ic))
