"""Per-app context the routers share (store, settings, bridge); hung on ``app.state``, not global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Query, Request

from mock_api.config import Account, ApiSettings
from mock_api.errors import AUTH_ERROR, CFError, bad_request
from mock_api.lab_bridge import LabBridge
from mock_api.limits import MAX_CURSOR, MAX_LEN
from mock_api.routers.render import BodyCache, PageCache, cni_cache, interconnect_cache
from mock_api.store import Store

# Every string query parameter (slot, tunnel_id, site, type, speed, address_contains, name).
QueryText = Annotated[str | None, Query(max_length=MAX_LEN["query"])]


@dataclass
class Ctx:
    settings: ApiSettings
    store: Store
    bridge: LabBridge
    cni_bodies: BodyCache = field(default_factory=cni_cache)
    interconnect_bodies: BodyCache = field(default_factory=interconnect_cache)
    pages: PageCache = field(default_factory=PageCache)

    def account(self, account_id: str) -> Account:
        return next(a for a in self.settings.accounts if a.id == account_id)


# Dependencies are ``async def`` on purpose: FastAPI runs a sync one in its thread pool, which on
# every request cost a thread hop and GIL contention (issue 16).
async def ctx(request: Request) -> Ctx:
    return request.app.state.ctx


async def account_id_dep(account_id: str, request: Request) -> str:
    """The path's account must be one the credential belongs to; otherwise no data, 401 10000."""
    ident = getattr(request.state, "identity", None)
    if ident is None or account_id not in ident.accounts:
        raise CFError(401, AUTH_ERROR, "Authentication error")
    return account_id


def page_args(ctx_: Ctx, cursor: int | None, limit: int | None) -> tuple[int, int]:
    if cursor is not None and not 0 <= cursor <= MAX_CURSOR:
        raise bad_request(f"cursor: {cursor} is out of range: pass the integer `next` of the previous page "
                          f"(0..{MAX_CURSOR}, int32 as the reference schema says)")
    if limit is not None and limit < 0:
        raise bad_request(f"limit: {limit} must be >= 0")
    lim = ctx_.settings.default_page_size if not limit else min(limit, ctx_.settings.max_page_size)
    return cursor or 0, lim
