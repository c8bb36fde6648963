"""Per-app context the routers share (store, settings, bridge); hung on ``app.state``, not global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from cnilab.mock_api.config import Account, ApiSettings
from cnilab.mock_api.errors import bad_request, not_found
from cnilab.mock_api.lab_bridge import LabBridge
from cnilab.mock_api.limits import MAX_CURSOR, MAX_LEN
from cnilab.mock_api.routers.render import BodyCache, PageCache, cni_cache, interconnect_cache
from cnilab.mock_api.store import Page, Store
from fastapi import Query, Request, Response

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

    def one(self, bodies: BodyCache, row: Any, what: str) -> Response:
        """A stored row's cached body, or the API's 404 naming ``what``."""
        if row is None:
            raise not_found(f"{what} not found")
        return bodies.response(row)

    def page(self, bodies: BodyCache, key: tuple[Any, ...], fetch: Callable[[], Page]) -> Response:
        """A list page through the page cache, keyed on the store's version so any write misses it."""
        return self.pages.get_or_make((*key, *self.store.version()), lambda: bodies.page_text(fetch()))


def ctx(request: Request) -> Ctx:
    """The app's context. Handlers call this instead of using ``Depends``: FastAPI's dependency
    machinery cost ~0.2 ms per request (issue 16). Which account a credential may act on is
    checked once, by the gateway (cnilab.mock_api.gateway), before any handler runs."""
    return request.app.state.ctx


def page_args(ctx_: Ctx, cursor: int | None, limit: int | None) -> tuple[int, int]:
    if cursor is not None and not 0 <= cursor <= MAX_CURSOR:
        raise bad_request(f"cursor: {cursor} is out of range: pass the integer `next` of the previous page "
                          f"(0..{MAX_CURSOR}, int32 as the reference schema says)")
    if limit is not None and limit < 0:
        raise bad_request(f"limit: {limit} must be >= 0")
    lim = ctx_.settings.default_page_size if not limit else min(limit, ctx_.settings.max_page_size)
    return cursor or 0, lim
