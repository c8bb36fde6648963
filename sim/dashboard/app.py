"""The dashboard web app: static page, read API, live stream and guarded actions.

``create_app(lab_name, token, host=...)`` builds everything from arguments (no globals), so tests
and the CLI make as many independent apps as they like. Guarding rules:

* Bound to a loopback address (the default) a token is optional; when given, mutating requests
  need ``Authorization: Bearer <token>``.
* Bound to anything else, a token is required (refused otherwise) and *every* API request needs it,
  since the room's network can read the lab too.
* Mutating requests must be JSON (a cross-site form cannot post one without a CORS pre-flight this
  app never grants), and on loopback the ``Host`` header must be a loopback name, so a web page
  the trainer happens to visit cannot drive the lab through DNS rebinding.
* Mutating requests a browser marks as coming from another site (``Origin`` not this host, or
  ``Sec-Fetch-Site`` other than same-origin/none) are refused whatever else they carry: the guard
  must not rest on content-type rules alone.

The live stream is Server-Sent Events read with ``fetch`` (not ``EventSource``) so that the token
travels in a header and never lands in a URL or an access log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cnilab.sim.dashboard.actions import ActionError, ScenarioRunner, TrafficRunner
from cnilab.sim.dashboard.collector import Collector, dashboard_observer, fault_targets
from cnilab.sim.dashboard.models import FaultView, Meta, ScenarioRun, TrafficView
from cnilab.sim.dashboard.topoview import build_view
from cnilab.sim.lab.lab import Lab
from cnilab.sim.runtime import shipped
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0
STREAM_POLL_S = 0.05
LOOPBACK_NAMES = ("localhost", "ip6-localhost")


class DashboardConfigError(ValueError):
    """A dashboard that must not start as asked (e.g. exposed without a token)."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose a lab's controls to a network without a token."""
    if not is_loopback(host) and not token:
        raise DashboardConfigError(
            f"refusing to bind the dashboard to {host!r} without a token: anyone on that network could "
            "inject faults; pass --token (or let `cnilab dashboard` generate one)")
    if token is not None and len(token) < 8:
        raise DashboardConfigError("the dashboard token must be at least 8 characters")


class FaultRequest(BaseModel):
    target: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    value: str | None = Field(default=None, max_length=64)


class TrafficRequest(BaseModel):
    rate_pps: int = 200


class ScenarioRequest(BaseModel):
    file: str = Field(min_length=1, max_length=300)


def _host_of(header: str) -> str:
    """``Host`` header -> host name without port (IPv6 literals keep no brackets)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def cross_site_reason(headers: Any) -> str | None:
    """Why a mutating request looks cross-site (browsers send these headers; curl sends neither)."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site!r}: the dashboard's controls answer only its own page"
    origin = headers.get("origin")
    if origin is not None:
        netloc = origin.split("://", 1)[-1].rstrip("/")
        if origin == "null" or netloc.lower() != headers.get("host", "").lower():
            return f"Origin {origin!r} is not this dashboard: the controls answer only its own page"
    return None


def create_app(lab_name: str | None, token: str | None = None, *, host: str = "127.0.0.1",
               period: float = 0.25, repo_root: Path | None = None) -> FastAPI:
    """Build the dashboard of ``lab_name`` (None: the only running lab).

    Raises :class:`DashboardConfigError` for an unsafe bind and ``LabNotFound`` for a missing lab,
    before anything starts.
    """
    check_bind(host, token)
    exposed = not is_loopback(host)
    lab = Lab.attach(lab_name)
    view = build_view(lab.state)
    root = repo_root or shipped.topologies_dir().parent

    def check_host(request: Request) -> None:
        if exposed:
            return
        name = _host_of(request.headers.get("host", ""))
        if not is_loopback(name):
            raise HTTPException(403, f"Host {name!r} is not a loopback name; this dashboard is bound to {host}")

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong token: send Authorization: Bearer <token> "
                                     "(open the URL `cnilab dashboard` printed)",
                                headers={"WWW-Authenticate": "Bearer"})

    def guard_read(request: Request) -> None:
        check_host(request)
        if exposed:
            check_token(request)

    def guard_write(request: Request) -> None:
        check_host(request)
        reason = cross_site_reason(request.headers)
        if reason:
            raise HTTPException(403, reason)
        check_token(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method in ("POST", "PUT") and ctype != "application/json":
            raise HTTPException(415, "send the request body as application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        traffic = TrafficRunner(lab)
        scenarios = ScenarioRunner(root)

        def side_info() -> tuple[TrafficView, ScenarioRun]:
            return traffic.view(), scenarios.view()

        collector = Collector(dashboard_observer(lab, period), view, side_info=side_info)
        app.state.collector, app.state.traffic, app.state.scenarios = collector, traffic, scenarios
        app.state.stopping = asyncio.Event()
        await asyncio.to_thread(collector.start)  # netlink sockets open outside the event loop
        try:
            yield
        finally:
            app.state.stopping.set()
            traffic.stop()
            scenarios.stop()
            await asyncio.to_thread(collector.stop)

    app = FastAPI(title=f"cnilab dashboard: {lab.name}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ActionError)
    async def _action_error(_request: Request, exc: ActionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/meta", dependencies=[Depends(guard_read)])
    def meta(request: Request) -> Meta:
        return Meta(topology=view, fault_kinds=_fault_help(), fault_targets=fault_targets(view),
                    traffic_dst=request.app.state.traffic.dst, scenario=request.app.state.scenarios.info,
                    exposed=exposed)

    @app.get("/api/state", dependencies=[Depends(guard_read)])
    def state(request: Request) -> Response:
        body = request.app.state.collector.snapshot_json()
        if body is None:
            raise HTTPException(503, "the first sample is not ready yet")
        return Response(body, media_type="application/json")

    @app.get("/api/stream", dependencies=[Depends(guard_read)])
    async def stream(request: Request) -> StreamingResponse:
        collector: Collector = request.app.state.collector
        stopping: asyncio.Event = request.app.state.stopping

        async def events() -> AsyncIterator[str]:
            sent = -1
            last = time.monotonic()
            yield "retry: 1000\n\n"
            while not stopping.is_set():
                if collector.version != sent:
                    body = collector.snapshot_json()
                    if body is not None:
                        sent = collector.version
                        last = time.monotonic()
                        yield f"event: snapshot\ndata: {body}\n\n"
                elif time.monotonic() - last > KEEPALIVE_S:
                    last = time.monotonic()
                    yield ": keepalive\n\n"
                await asyncio.sleep(STREAM_POLL_S)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/faults", dependencies=[Depends(guard_write)])
    def add_fault(req: FaultRequest, request: Request) -> FaultView:
        from cnilab.sim.faults.apply import FaultError, apply_fault

        try:
            rec = apply_fault(lab, req.target, req.kind, req.value or None)
        except FaultError as exc:
            raise HTTPException(400, str(exc)) from None
        request.app.state.collector.note("action", "fault", f"dashboard: inject {req.kind} on {req.target}")
        return FaultView(target=rec.target, kind=rec.kind, value=rec.value, mechanism=rec.mechanism, since=rec.since)

    @app.delete("/api/faults", dependencies=[Depends(guard_write)])
    def del_faults(request: Request, target: str | None = None) -> dict[str, Any]:
        from cnilab.sim.faults.apply import FaultError, clear_faults

        try:
            gone = clear_faults(lab, target)
        except FaultError as exc:
            raise HTTPException(400, str(exc)) from None
        request.app.state.collector.note("action", "fault", f"dashboard: clear faults on {target or 'every link'}")
        return {"cleared": [f"{f.kind} on {f.target}" for f in gone]}

    @app.post("/api/traffic", dependencies=[Depends(guard_write)])
    def start_traffic(req: TrafficRequest, request: Request) -> TrafficView:
        tv = request.app.state.traffic.start(req.rate_pps)
        request.app.state.collector.note("action", "traffic", f"dashboard: UDP stream inet -> origin {tv.dst} "
                                                                f"at {req.rate_pps} pps started")
        return tv

    @app.delete("/api/traffic", dependencies=[Depends(guard_write)])
    def stop_traffic(request: Request) -> TrafficView:
        before = request.app.state.traffic.view()
        tv = request.app.state.traffic.stop()
        if before.running:
            request.app.state.collector.note(
                "action", "traffic", f"dashboard: stream stopped ({before.sent} sent, {before.lost} lost)")
        return tv

    @app.post("/api/scenario", dependencies=[Depends(guard_write)])
    def start_scenario(req: ScenarioRequest, request: Request) -> ScenarioRun:
        run = request.app.state.scenarios.start(req.file)
        request.app.state.collector.note("action", "scenario", f"dashboard: scenario {req.file} started "
                                                                 "(the emulator builds its own lab)")
        return run

    @app.delete("/api/scenario", dependencies=[Depends(guard_write)])
    def stop_scenario(request: Request) -> ScenarioRun:
        request.app.state.scenarios.stop()
        return request.app.state.scenarios.view()

    return app


def _fault_help() -> dict[str, str]:
    from cnilab.sim.faults.kinds import HELP

    return dict(HELP)
