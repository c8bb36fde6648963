"""The Magic endpoints with the official SDK's ``sdk.magic_transit`` resources, unmodified; every
body checked against the pinned reference (the SDK's own response schemas, no extra fields)."""

from __future__ import annotations

import json

import httpx
import pytest

cloudflare = pytest.importorskip("cloudflare", reason="official SDK (dev dependency) not installed")

from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN  # noqa: E402
from cnilab.mock_api.magic_schemas import REFERENCE, SDK_VERSION, generate, validate  # noqa: E402

ACC = DEV_ACCOUNT
H = {"Authorization": f"Bearer {DEV_TOKEN}"}


def raw(api, method, path, **kw) -> httpx.Response:
    return httpx.request(method, f"{api}/client/v4/accounts/{ACC}/magic/{path}", headers={**H, **kw.pop("headers", {})},
                         **kw)


def test_pinned_reference_is_the_installed_sdk():
    if cloudflare.__version__ != SDK_VERSION:
        pytest.skip(f"pinned from cloudflare {SDK_VERSION}, installed {cloudflare.__version__}")
    assert json.loads(REFERENCE.read_text()) == json.loads(json.dumps(generate(), sort_keys=True))


def test_gre_tunnels_round_trip_with_the_sdk(sdk, api):
    gre = sdk.magic_transit.gre_tunnels
    t = gre.create(account_id=ACC, name="inet_2", cloudflare_gre_endpoint="203.0.113.3",
                   customer_gre_endpoint="203.0.113.1", interface_address="10.213.0.2/31",
                   health_check={"rate": "high", "type": "request"})
    assert t.name == "inet_2" and t.health_check.rate == "high" and t.health_check.type == "request"
    assert t.mtu == 1476 and t.ttl == 64 and t.health_check.enabled is True
    got = gre.get(t.id, account_id=ACC).gre_tunnel
    assert got.interface_address == "10.213.0.2/31" and got.health_check.target == ""
    validate("gre_tunnel_get", raw(api, "GET", f"gre_tunnels/{t.id}").json())
    new = raw(api, "GET", f"gre_tunnels/{t.id}", headers={"x-magic-new-hc-target": "true"}).json()
    validate("gre_tunnel_get", new)
    assert new["result"]["gre_tunnel"]["health_check"]["target"] == {"saved": "", "effective": "203.0.113.1"}
    assert [x.id for x in gre.list(account_id=ACC).gre_tunnels] == [t.id]
    validate("gre_tunnel_list", raw(api, "GET", "gre_tunnels").json())
    up = gre.update(t.id, account_id=ACC, name="inet_2", cloudflare_gre_endpoint="203.0.113.3",
                    customer_gre_endpoint="203.0.113.1", interface_address="10.213.0.2/31",
                    health_check={"rate": "low"})
    assert up.modified and up.modified_gre_tunnel.health_check.rate == "low"
    assert up.modified_gre_tunnel.health_check.type == "request", "an update keeps what it does not name"
    gone = gre.delete(t.id, account_id=ACC)
    assert gone.deleted and gone.deleted_gre_tunnel.id == t.id
    assert gre.list(account_id=ACC).gre_tunnels == []


def test_a_gre_tunnel_that_is_a_route_nexthop_is_not_deleted(sdk, api):
    gre, routes = sdk.magic_transit.gre_tunnels, sdk.magic_transit.routes
    t = gre.create(account_id=ACC, name="inet_3", cloudflare_gre_endpoint="203.0.113.3",
                   customer_gre_endpoint="203.0.113.1", interface_address="10.214.0.0/31")
    r = routes.create(account_id=ACC, prefix="198.51.100.0/24", nexthop="10.214.0.1", priority=100)
    with pytest.raises(cloudflare.ConflictError, match="next hop of a route"):
        gre.delete(t.id, account_id=ACC)
    assert [x.id for x in gre.list(account_id=ACC).gre_tunnels] == [t.id]
    assert routes.delete(r.id, account_id=ACC).deleted_route.id == r.id
    assert gre.delete(t.id, account_id=ACC).deleted
    with pytest.raises(cloudflare.NotFoundError):
        routes.delete(r.id, account_id=ACC)


def test_routes_round_trip_with_the_sdk(sdk, api):
    routes = sdk.magic_transit.routes
    r = routes.create(account_id=ACC, prefix="198.51.100.0/24", nexthop="10.212.0.1", priority=100, weight=10)
    assert (r.prefix, r.nexthop, r.priority, r.weight) == ("198.51.100.0/24", "10.212.0.1", 100, 10)
    body = raw(api, "POST", "routes", json={"prefix": "198.51.100.0/24", "nexthop": "10.213.0.1", "priority": 200})
    validate("route_create", body.json())
    assert len(routes.list(account_id=ACC).routes) == 2
    validate("route_list", raw(api, "GET", "routes").json())
    assert routes.get(r.id, account_id=ACC).route.priority == 100
    up = routes.update(r.id, account_id=ACC, prefix="198.51.100.0/24", nexthop="10.212.0.1", priority=50)
    assert up.modified and up.modified_route.priority == 50
    validate("route_get", raw(api, "GET", f"routes/{r.id}").json())
    assert routes.delete(r.id, account_id=ACC).deleted


def test_cf_interconnects_without_a_lab_is_an_empty_list(sdk, api):
    assert sdk.magic_transit.cf_interconnects.list(account_id=ACC).interconnects == []
    validate("cf_interconnect_list", raw(api, "GET", "cf_interconnects").json())
    with pytest.raises(cloudflare.NotFoundError):
        sdk.magic_transit.cf_interconnects.get("nope", account_id=ACC)


@pytest.mark.parametrize(("path", "body", "needle"), [
    ("gre_tunnels", {"name": "has space", "cloudflare_gre_endpoint": "203.0.113.3",
                     "customer_gre_endpoint": "203.0.113.1", "interface_address": "10.0.0.0/31"}, "name"),
    ("gre_tunnels", {"name": "t1", "cloudflare_gre_endpoint": "203.0.113.3", "customer_gre_endpoint": "203.0.113.1",
                     "interface_address": "10.0.0.0/29"}, "interface_address"),
    ("gre_tunnels", {"name": "t1", "cloudflare_gre_endpoint": "203.0.113.3", "customer_gre_endpoint": "203.0.113.1",
                     "interface_address": "8.8.8.0/31"}, "RFC 1918"),
    ("gre_tunnels", {"name": "t1", "cloudflare_gre_endpoint": "203.0.113.3", "customer_gre_endpoint": "203.0.113.1",
                     "interface_address": "10.0.0.0/31", "mtu": 500}, "mtu"),
    ("gre_tunnels", {"name": "t1", "cloudflare_gre_endpoint": "203.0.113.3", "customer_gre_endpoint": "203.0.113.1",
                     "interface_address": "10.0.0.0/31", "health_check": {"rate": "fast"}}, "health_check.rate"),
    ("routes", {"prefix": "198.51.100.1/24", "nexthop": "10.0.0.1", "priority": 1}, "prefix"),
    ("routes", {"prefix": "198.51.100.0/24", "nexthop": "10.0.0.1"}, "priority"),
])
def test_bad_input_is_a_400_naming_the_field(api, path, body, needle):
    r = raw(api, "POST", path, json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["success"] is False and needle in err["errors"][0]["message"], err


def test_validate_only_stores_nothing(api):
    r = raw(api, "POST", "routes", params={"validate_only": "true"},
            json={"prefix": "198.51.100.0/24", "nexthop": "10.0.0.1", "priority": 1})
    assert r.status_code == 200
    assert raw(api, "GET", "routes").json()["result"]["routes"] == []
