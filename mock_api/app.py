"""``create_app(settings) -> FastAPI``: the whole mock, with no module-level state.

Error handling mirrors Cloudflare: every failure is the v4 failure envelope; unknown routes are
404 7003; a wrong method is 405 7001 with ``Allow``; request-shape errors are 400 naming the field
and the value (or, for the seeds' old field names, the field to use instead). Nothing is changed
by a refused request: every check runs before the store is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from cnilab.mock_api.config import ApiSettings
from cnilab.mock_api.context import Ctx
from cnilab.mock_api.errors import INTERNAL, METHOD_NOT_ALLOWED, NO_ROUTE, CFError, error_body, error_response
from cnilab.mock_api.gateway import Gateway, GatewayMiddleware
from cnilab.mock_api.guards import RequestGuard
from cnilab.mock_api.lab_bridge import EdgeBridge, LabBridge
from cnilab.mock_api.openapi import client_document, lab_document
from cnilab.mock_api.refusals import refusal
from cnilab.mock_api.routers import cnis, interconnects, lab, magic, settings, slots
from cnilab.mock_api.store import Store
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(app: FastAPI, scope: dict) -> str:
    """The ``Allow`` header of a 405: every method some route fully matches on this path."""
    probe = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "headers": []}
    return ", ".join(m for m in _METHODS
                     if any(r.matches({**probe, "method": m})[0] == Match.FULL for r in app.router.routes))


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
                  openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.ctx = Ctx(settings=settings_, store=store, bridge=bridge or EdgeBridge())
    for r in (interconnects.router, cnis.router, slots.router, settings.router, lab.router, magic.router):
        app.include_router(r)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_client() -> JSONResponse:
        """Cloudflare's reference contract for /client/v4, with the error responses this mock sends."""
        return JSONResponse(client_document())

    @app.get("/lab/v1/openapi.json", include_in_schema=False)
    async def openapi_lab() -> JSONResponse:
        return JSONResponse(lab_document())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="cnilab mock CNI API")

    @app.exception_handler(CFError)
    async def _cf(_: Request, exc: CFError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        return error_response(refusal(list(exc.errors()), getattr(route, "endpoint", None)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return JSONResponse(error_body(NO_ROUTE, "No route for the URI"), status_code=404)
        if exc.status_code == 405:
            return JSONResponse(error_body(METHOD_NOT_ALLOWED, "Method not allowed for this endpoint"),
                                status_code=405, headers={"Allow": _allowed_methods(app, request.scope)})
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: cannot be parsed as JSON (nested too deeply?)"  # e.g. RecursionError in json
        return JSONResponse(error_body(INTERNAL if exc.status_code >= 500 else 1001, detail),
                            status_code=exc.status_code)

    app.add_middleware(GatewayMiddleware, gateway=gateway)
    app.add_middleware(RequestGuard)
    return app
