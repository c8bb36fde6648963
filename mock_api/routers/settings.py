"""/accounts/{account_id}/cni/settings: the account's default ASN (Cloudflare's fallback until set)."""

from __future__ import annotations

from cnilab.mock_api.context import ctx
from cnilab.mock_api.schemas import SettingsRequest
from cnilab.mock_api.validation import check_asn
from cnilab.sim.facts import load_facts
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/client/v4/accounts/{account_id}/cni/settings", tags=["Settings"])


def _fallback() -> int:
    return int(load_facts().bgp["customer_asn_fallback"]["value"])


@router.get("", summary="Get the current settings for the active account")
async def get_settings(account_id: str, request: Request) -> JSONResponse:
    c = ctx(request)
    asn = c.store.get_default_asn(account_id)
    return JSONResponse({"default_asn": asn if asn is not None else _fallback()})


@router.put("", summary="Update the current settings for the active account")
def put_settings(body: SettingsRequest, account_id: str,
                 request: Request) -> JSONResponse:
    c = ctx(request)
    asn = body.default_asn if body.default_asn is not None else _fallback()
    if body.default_asn is not None:
        check_asn("default_asn", asn)
    c.store.put_default_asn(account_id, asn)
    return JSONResponse({"default_asn": asn})
