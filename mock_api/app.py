"""``create_app(settings) -> FastAPI``: the whole mock, with no module-level state.

Error handling mirrors Cloudflare: every failure is the v4 failure envelope; unknown routes are
404 7003; request-shape errors are 400 naming the field and the value (or, for the seeds' old field
names, the field to use instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mock_api.config import ApiSettings
from mock_api.context import Ctx
from mock_api.errors import (
    INTERNAL,
    METHOD_NOT_ALLOWED,
    NO_ROUTE,
    CFError,
    bad_request,
    error_body,
    error_response,
)
from mock_api.gateway import Gateway, GatewayMiddleware
from mock_api.lab_bridge import EdgeBridge, LabBridge
from mock_api.routers import cnis, interconnects, lab, magic, settings, slots
from mock_api.store import Store
from mock_api.validation import LEGACY_FIELDS, reject_legacy

_LEGACY_BY_PATH = (("/cni/cnis", "cni"), ("/cni/interconnects", "interconnect"))


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"] if p not in ("body", "query", "path")]
    field = ".".join(loc) or "body"
    value = err.get("input")
    if err["type"] == "missing":
        return f"{field}: required field is missing"
    if err["type"] == "json_invalid":
        return "body: not valid JSON"
    return f"{field}: {err['msg'].removeprefix('Value error, ')} (got {value!r})"


def create_app(settings_: ApiSettings, bridge: LabBridge | None = None) -> FastAPI:
    """Build the app. ``bridge`` defaults to EdgeBridge (lazy: harmless when no lab is bound)."""
    store = Store(settings_.db)
    gateway = Gateway(settings_)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    app = FastAPI(title="cnilab mock Cloudflare CNI API", version="4.0.0-cnilab", lifespan=lifespan,
                  description="Cloudflare Network Interconnect API (/client/v4/accounts/{account_id}/cni/...) "
                              "plus lab-only controls under /lab/v1. See mock_api/README.md.")
    app.state.ctx = Ctx(settings=settings_, store=store, bridge=bridge or EdgeBridge())
    for r in (interconnects.router, cnis.router, slots.router, settings.router, lab.router, magic.router):
        app.include_router(r)

    @app.exception_handler(CFError)
    async def _cf(_: Request, exc: CFError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        path = request.url.path
        body = exc.body if isinstance(exc.body, dict) else {}
        try:
            for suffix, kind in _LEGACY_BY_PATH:
                if path.endswith(suffix) or (kind == "cni" and "/cni/cnis/" in path):
                    reject_legacy(kind, body)
            if isinstance(body, dict) and isinstance(body.get("bgp"), dict):
                reject_legacy("cni", {k for k in LEGACY_FIELDS["cni"] if k in body})
        except CFError as legacy:
            return error_response(legacy)
        return error_response(bad_request("; ".join(_describe(e) for e in exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return JSONResponse(error_body(NO_ROUTE, "No route for the URI"), status_code=404)
        if exc.status_code == 405:
            return JSONResponse(error_body(METHOD_NOT_ALLOWED, "Method not allowed for this endpoint"),
                                status_code=405)
        return JSONResponse(error_body(INTERNAL if exc.status_code >= 500 else 1001, str(exc.detail)),
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(INTERNAL, f"Internal server error: {type(exc).__name__}"), status_code=500)

    app.add_middleware(GatewayMiddleware, gateway=gateway)
    return app
