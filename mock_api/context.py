"""Per-app context the routers share (store, settings, bridge); hung on ``app.state``, not global."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mock_api.config import Account, ApiSettings
from mock_api.errors import AUTH_ERROR, CFError
from mock_api.lab_bridge import LabBridge
from mock_api.store import Store


@dataclass
class Ctx:
    settings: ApiSettings
    store: Store
    bridge: LabBridge

    def account(self, account_id: str) -> Account:
        return next(a for a in self.settings.accounts if a.id == account_id)


def ctx(request: Request) -> Ctx:
    return request.app.state.ctx


def account_id_dep(account_id: str, request: Request) -> str:
    """The path's account must be one the credential belongs to; otherwise no data, 401 10000."""
    ident = getattr(request.state, "identity", None)
    if ident is None or account_id not in ident.accounts:
        raise CFError(401, AUTH_ERROR, "Authentication error")
    return account_id


def page_args(ctx_: Ctx, cursor: int | None, limit: int | None) -> tuple[int, int]:
    from mock_api.errors import bad_request

    if cursor is not None and cursor < 0:
        raise bad_request(f"cursor: {cursor} must be a non-negative integer (the `next` of the previous page)")
    if limit is not None and limit < 0:
        raise bad_request(f"limit: {limit} must be >= 0")
    lim = ctx_.settings.default_page_size if not limit else min(limit, ctx_.settings.max_page_size)
    return cursor or 0, lim
