"""/accounts/{account_id}/magic/{cf_interconnects,gre_tunnels,routes}: Magic Transit / Magic WAN.

Shapes follow the official SDK (``client.magic_transit``): v4 success envelope; lists as
``{gre_tunnels: [...]}``, single objects as ``{gre_tunnel: {...}}``, updates as ``{modified: true,
modified_gre_tunnel: {...}}``, deletes as ``{deleted: true, deleted_gre_tunnel: {...}}``; create
returns the object. Reference: mock_api/reference/magic-sdk-schemas.json. ``health_check.target``
is a string unless the request carries ``x-magic-new-hc-target: true`` (then ``{saved,
effective}``). ``?validate_only=true`` validates without storing. With a bound lab
(``cnilab api --lab``) the lab's tunnels and routes are listed, and changes drive the lab.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cnilab.mock_api.context import Ctx, ctx
from cnilab.mock_api.errors import CFError, bad_request, conflict, not_found
from cnilab.mock_api.magic_lab import now_iso, push, seed
from cnilab.mock_api.magic_store import Kind, MagicStore
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(prefix="/client/v4/accounts/{account_id}/magic", tags=["Magic"])
_LOCK = threading.Lock()

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,15}$")
MIN_MTU = 576


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HcTarget(_Body):
    saved: str | None = None
    effective: str | None = None


class HealthCheckIn(_Body):
    enabled: bool | None = None
    rate: Literal["low", "mid", "high"] | None = None
    type: Literal["reply", "request"] | None = None
    direction: Literal["unidirectional", "bidirectional"] | None = None
    target: HcTarget | str | None = None
    source: str | None = None


class BgpIn(_Body):
    customer_asn: int | None = None
    as_no: int | None = None
    cloudflare_endpoint: str | None = None
    customer_endpoint: str | None = None
    md5_key: str | None = None
    extra_prefixes: list[str] | None = None
    export_filter_id: str | None = None
    import_filter_id: str | None = None


class _TunnelIn(_Body):
    """What a GRE tunnel and a CNI's interconnect are both configured with: they are both tunnels
    Cloudflare health-checks and steers over, so the update rules (:func:`_merged`) are one."""

    automatic_return_routing: bool | None = None
    bgp: BgpIn | None = None
    description: str | None = None
    health_check: HealthCheckIn | None = None
    interface_address6: str | None = None
    mtu: int | None = None


class GreIn(_TunnelIn):
    cloudflare_gre_endpoint: str
    customer_gre_endpoint: str
    interface_address: str
    name: str
    ttl: int | None = None


class InterconnectIn(_TunnelIn):
    gre: dict[str, str] | None = None
    interface_address: str | None = None
    name: str | None = None


class RouteIn(_Body):
    nexthop: str
    prefix: str
    priority: int = Field(ge=0)
    description: str | None = None
    scope: dict[str, Any] | None = None
    weight: int | None = Field(default=None, ge=0, le=256)


# -- helpers ------------------------------------------------------------------------------------
def _store(request: Request, c: Ctx) -> MagicStore:
    st = getattr(request.app.state, "magic_store", None)
    if st is None:
        with _LOCK:
            st = getattr(request.app.state, "magic_store", None)
            if st is None:
                st = MagicStore(c.settings.db)
                request.app.state.magic_store = st
    return st


def _ready(request: Request, c: Ctx, account: str) -> MagicStore:
    """The store, seeded once per account from the bound lab's tunnels and routes."""
    st = _store(request, c)
    lab = c.settings.lab
    if lab and not st.seeded(account, lab):
        for kind, objs in seed(lab).items():
            for o in objs:
                if st.get(account, kind, o["id"]) is None:  # type: ignore[arg-type]
                    st.put(account, kind, o)  # type: ignore[arg-type]
        st.mark_seeded(account, lab)
    return st


def _sync(c: Ctx, st: MagicStore, account: str) -> None:
    if not c.settings.lab:
        return
    tunnels = st.list(account, "cf_interconnect") + st.list(account, "gre_tunnel")
    try:
        push(c.settings.lab, tunnels, st.list(account, "route"))
    except (OSError, ValueError) as exc:
        raise CFError(502, 1005, f"the lab refused the change: {exc}") from None


def _write(st: MagicStore, account: str, kind: Kind, id_: str, obj: dict[str, Any] | None) -> None:
    if obj is None:
        st.delete(account, kind, id_)
    else:
        st.put(account, kind, obj)


def _commit(c: Ctx, st: MagicStore, account: str, kind: Kind, id_: str, new: dict[str, Any] | None) -> None:
    """Store ``new`` (None: delete) and push the account's tunnels and routes to the bound lab; when the
    lab refuses, put back what was stored before, so the API never shows what the lab does not run."""
    old = st.get(account, kind, id_)
    _write(st, account, kind, id_, new)
    try:
        _sync(c, st, account)
    except CFError:
        _write(st, account, kind, id_, old)
        raise


def ok(result: Any) -> JSONResponse:
    return JSONResponse({"success": True, "errors": [], "messages": [], "result": result})


def _new_target(request: Request) -> bool:
    return request.headers.get("x-magic-new-hc-target", "").lower() == "true"


def _validate_only(request: Request) -> bool:
    return request.query_params.get("validate_only", "").lower() == "true"


def _render(obj: dict[str, Any], request: Request, default_target: str) -> dict[str, Any]:
    out = dict(obj)
    hc = dict(out.get("health_check") or {})
    saved = hc.get("target") or ""
    hc["target"] = {"saved": saved, "effective": saved or default_target} if _new_target(request) else saved
    out["health_check"] = hc
    return {k: v for k, v in out.items() if v is not None}


def _iface(field: str, value: str) -> None:
    try:
        net = ipaddress.ip_interface(value)
    except ValueError:
        raise bad_request(f"{field}: {value!r} is not an IPv4 prefix such as 10.212.0.0/31") from None
    if net.version != 4 or net.network.prefixlen not in (30, 31):
        raise bad_request(f"{field}: {value} must be an IPv4 /31 (or /30): one address for each side of the tunnel")
    if not net.ip.is_private:
        raise bad_request(f"{field}: {value} is not in RFC 1918 private space (10/8, 172.16/12, 192.168/16)")


def _ip(field: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise bad_request(f"{field}: {value!r} is not an IP address") from None


def _name(value: str, taken: list[str]) -> None:
    if not NAME_RE.match(value):
        raise bad_request(f"name: {value!r} must be 1-15 letters, digits, '-' or '_' (no spaces)")
    if value in taken:
        raise conflict(f"name: a tunnel named {value!r} already exists")


def _mtu(value: int | None) -> None:
    if value is not None and value < MIN_MTU:
        raise bad_request(f"mtu: {value} is below the minimum of {MIN_MTU}")


def _hc(new: HealthCheckIn | None, old: dict[str, Any] | None) -> dict[str, Any]:
    base = {"enabled": True, "rate": "mid", "type": "reply", "direction": "unidirectional", "target": ""}
    base.update(old or {})
    if new is not None:
        d = new.model_dump(exclude_none=True)
        tgt = d.pop("target", None)
        if isinstance(tgt, dict):
            tgt = tgt.get("saved")
        if tgt:
            _ip("health_check.target", tgt)
        if tgt is not None:
            base["target"] = tgt
        base.update(d)
    return base


def _merged(body: _TunnelIn, base: dict[str, Any], ts: str) -> dict[str, Any]:
    """``base`` with the fields the body sets laid over it (the health check merged key by key, not
    replaced), stamped as modified at ``ts``."""
    o = {**base, **body.model_dump(exclude_none=True, exclude={"health_check", "bgp"})}
    if body.bgp is not None:
        o["bgp"] = body.bgp.model_dump(exclude_none=True)
    o["health_check"] = _hc(body.health_check, base.get("health_check"))
    o["modified_on"] = ts
    return o


def _names(st: MagicStore, account: str, skip: str | None = None) -> list[str]:
    return [o["name"] for k in ("cf_interconnect", "gre_tunnel") for o in st.list(account, k)  # type: ignore[misc]
            if o["id"] != skip]


def _get(st: MagicStore, account: str, kind: Kind, id_: str, label: str) -> dict[str, Any]:
    obj = st.get(account, kind, id_)
    if obj is None:
        raise not_found(f"{label} {id_!r} not found")
    return obj


@dataclass(frozen=True)
class _Objects:
    """One kind of Magic object as its list and detail endpoints show it."""

    kind: Kind
    path: str
    label: str
    """How a 404 names it."""
    one: str
    """Result key of the detail endpoint."""
    many: str
    """Result key of the list endpoint."""
    view: Callable[[dict[str, Any], Request], dict[str, Any]]


def _tunnels(kind: Kind, path: str, label: str, one: str, many: str,
             target: Callable[[dict[str, Any]], str]) -> _Objects:
    """A tunnel kind: shown with its health check's target, ``target`` giving the default one."""
    return _Objects(kind, path, label, one, many, lambda o, request: _render(o, request, target(o)))


def _list(objs: _Objects, request: Request, account: str) -> JSONResponse:
    st = _ready(request, ctx(request), account)
    return ok({objs.many: [objs.view(o, request) for o in st.list(account, objs.kind)]})


def _one(objs: _Objects, request: Request, account: str, id_: str) -> JSONResponse:
    o = _get(_ready(request, ctx(request), account), account, objs.kind, id_, objs.label)
    return ok({objs.one: objs.view(o, request)})


def _read_routes(objs: _Objects, list_summary: str, one_summary: str) -> None:
    """``GET <path>`` (the account's objects) and ``GET <path>/{object_id}`` (one of them)."""

    def list_objects(request: Request, account_id: str) -> JSONResponse:
        return _list(objs, request, account_id)

    def get_object(object_id: str, request: Request, account_id: str) -> JSONResponse:
        return _one(objs, request, account_id, object_id)

    router.add_api_route(objs.path, list_objects, methods=["GET"], summary=list_summary, name=f"list_{objs.many}")
    router.add_api_route(f"{objs.path}/{{object_id}}", get_object, methods=["GET"], summary=one_summary,
                         name=f"get_{objs.one}")


def _update(objs: _Objects, request: Request, account: str, id_: str,
            build: Callable[[MagicStore, dict[str, Any]], dict[str, Any]]) -> JSONResponse:
    """``PUT <path>/{id}``: ``build`` checks the body against the stored object and returns the merged
    one, which is committed (unless validate-only) and shown as ``modified_<one>``."""
    c = ctx(request)
    st = _ready(request, c, account)
    o = build(st, dict(_get(st, account, objs.kind, id_, objs.label)))
    if not _validate_only(request):
        _commit(c, st, account, objs.kind, id_, o)
    return ok({"modified": True, f"modified_{objs.one}": objs.view(o, request)})


def _delete(objs: _Objects, request: Request, account: str, id_: str, *, sync: bool,
            guard: Callable[[MagicStore, dict[str, Any]], None] | None = None) -> JSONResponse:
    """``DELETE <path>/{id}``: ``guard`` may refuse (an object still in use); with ``sync`` the bound lab
    is pushed the change (and the delete undone if it refuses), else only the store forgets it."""
    c = ctx(request)
    st = _ready(request, c, account)
    o = _get(st, account, objs.kind, id_, objs.label)
    if guard is not None:
        guard(st, o)
    if sync:
        _commit(c, st, account, objs.kind, id_, None)
    else:
        st.delete(account, objs.kind, id_)
    return ok({"deleted": True, f"deleted_{objs.one}": objs.view(o, request)})


# -- cf_interconnects ---------------------------------------------------------------------------
def _ic_target(o: dict[str, Any]) -> str:
    return str(ipaddress.ip_interface(o["interface_address"]).ip + 1) if o.get("interface_address") else ""


_IC = _tunnels("cf_interconnect", "/cf_interconnects", "interconnect", "interconnect", "interconnects", _ic_target)
_read_routes(_IC, "List interconnects", "List interconnect details")


@router.put("/cf_interconnects/{ic_id}", summary="Update interconnect")
def update_interconnect(ic_id: str, body: InterconnectIn, request: Request, account_id: str) -> JSONResponse:
    def build(st: MagicStore, old: dict[str, Any]) -> dict[str, Any]:
        if body.name is not None:
            _name(body.name, _names(st, account_id, skip=ic_id))
        if body.interface_address is not None:
            _iface("interface_address", body.interface_address)
        _mtu(body.mtu)
        return _merged(body, old, now_iso())

    return _update(_IC, request, account_id, ic_id, build)


# -- gre_tunnels --------------------------------------------------------------------------------
def _gre_target(o: dict[str, Any]) -> str:
    return o.get("customer_gre_endpoint", "")


_GRE = _tunnels("gre_tunnel", "/gre_tunnels", "GRE tunnel", "gre_tunnel", "gre_tunnels", _gre_target)


def _check_gre(body: GreIn, st: MagicStore, account: str, skip: str | None = None) -> None:
    _name(body.name, _names(st, account, skip))
    _ip("cloudflare_gre_endpoint", body.cloudflare_gre_endpoint)
    _ip("customer_gre_endpoint", body.customer_gre_endpoint)
    _iface("interface_address", body.interface_address)
    _mtu(body.mtu)
    if body.ttl is not None and not 1 <= body.ttl <= 255:
        raise bad_request(f"ttl: {body.ttl} must be 1-255")


def _gre_obj(body: GreIn, old: dict[str, Any] | None) -> dict[str, Any]:
    ts = now_iso()
    return _merged(body, old or {"id": uuid.uuid4().hex, "created_on": ts, "mtu": 1476, "ttl": 64}, ts)


@router.post("/gre_tunnels", summary="Create a GRE tunnel")
def create_gre(body: GreIn, request: Request, account_id: str) -> JSONResponse:
    c = ctx(request)
    st = _ready(request, c, account_id)
    _check_gre(body, st, account_id)
    o = _gre_obj(body, None)
    if not _validate_only(request):
        st.put(account_id, "gre_tunnel", o)
    return ok(_GRE.view(o, request))


_read_routes(_GRE, "List GRE tunnels", "List GRE tunnel details")


@router.put("/gre_tunnels/{tid}", summary="Update GRE tunnel")
def update_gre(tid: str, body: GreIn, request: Request, account_id: str) -> JSONResponse:
    def build(st: MagicStore, old: dict[str, Any]) -> dict[str, Any]:
        _check_gre(body, st, account_id, skip=tid)
        return _gre_obj(body, old)

    return _update(_GRE, request, account_id, tid, build)


@router.delete("/gre_tunnels/{tid}", summary="Delete GRE Tunnel")
def delete_gre(tid: str, request: Request, account_id: str) -> JSONResponse:
    def not_a_nexthop(st: MagicStore, o: dict[str, Any]) -> None:
        nexthop = str(ipaddress.ip_interface(o["interface_address"]).ip + 1)
        if any(r["nexthop"] == nexthop for r in st.list(account_id, "route")):
            raise conflict(f"GRE tunnel {o['name']!r} is the next hop of a route; delete or move the route first")

    return _delete(_GRE, request, account_id, tid, sync=False, guard=not_a_nexthop)


# -- routes -------------------------------------------------------------------------------------
def _check_route(body: RouteIn) -> None:
    try:
        net = ipaddress.ip_network(body.prefix)
    except ValueError:
        raise bad_request(f"prefix: {body.prefix!r} is not a network such as 198.51.100.0/24 (host bits "
                          "must be zero)") from None
    if net.version != 4:
        raise bad_request(f"prefix: {body.prefix} - static routes here are IPv4")
    _ip("nexthop", body.nexthop)


def _route_obj(body: RouteIn, old: dict[str, Any] | None) -> dict[str, Any]:
    ts = now_iso()
    o = {**(old or {"id": uuid.uuid4().hex, "created_on": ts}), **body.model_dump(exclude_none=True)}
    o["modified_on"] = ts
    return o


def _route_view(o: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if v is not None}


@router.post("/routes", summary="Create a Route")
def create_route(body: RouteIn, request: Request, account_id: str) -> JSONResponse:
    c = ctx(request)
    st = _ready(request, c, account_id)
    _check_route(body)
    o = _route_obj(body, None)
    if not _validate_only(request):
        _commit(c, st, account_id, "route", o["id"], o)
    return ok(_route_view(o))


_ROUTE = _Objects("route", "/routes", "route", "route", "routes", lambda o, _request: _route_view(o))
_read_routes(_ROUTE, "List Routes", "Route Details")


@router.put("/routes/{rid}", summary="Update Route")
def update_route(rid: str, body: RouteIn, request: Request, account_id: str) -> JSONResponse:
    def build(_st: MagicStore, old: dict[str, Any]) -> dict[str, Any]:
        _check_route(body)
        return _route_obj(body, old)

    return _update(_ROUTE, request, account_id, rid, build)


@router.delete("/routes/{rid}", summary="Delete Route")
def delete_route(rid: str, request: Request, account_id: str) -> JSONResponse:
    return _delete(_ROUTE, request, account_id, rid, sync=True)
