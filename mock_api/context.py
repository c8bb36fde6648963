"""Per-app context the routers share (store, settings, bridge); hung on ``app.state``, not global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Query, Request

from mock_api.config import Account, ApiSettings
from mock_api.errors import bad_request
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


def ctx(request: Request) -> Ctx:
    """The app's context. Handlers call this instead of using ``Depends``: FastAPI's dependency
    machinery cost ~0.2 ms per request (issue 16). Which account a credential may act on is
    checked once, by the gateway (mock_api.gateway), before any handler runs."""
    return request.app.state.ctx


def page_args(ctx_: Ctx, cursor: int | None, limit: int | None) -> tuple[int, int]:
    if cursor is not None and not 0 <= cursor <= MAX_CURSOR:
        raise bad_request(f"cursor: {cursor} is out of range: pass the integer `next` of the previous page "
                          f"(0..{MAX_CURSOR}, int32 as the reference schema says)")
    if limit is not None and limit < 0:
        raise bad_request(f"limit: {limit} must be >= 0")
    lim = ctx_.settings.default_page_size if not limit else min(limit, ctx_.settings.max_page_size)
    return cursor or 0, lim
