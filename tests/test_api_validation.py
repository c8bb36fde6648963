"""Bad input gets a 4xx in Cloudflare's error shape and changes nothing; old seed names get a pointer."""

from __future__ import annotations

import httpx
import pytest
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.schema_check import validate_error
from cnilab.mock_api.testing import serve

ACC = DEV_ACCOUNT
V1_10G = next(s for s in slots() if s.dataplane == "v1" and s.speed == "10G")
V2_10G = next(s for s in slots() if s.dataplane == "v2" and s.speed == "10G")


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    with serve(load_settings(db=tmp_path_factory.mktemp("api") / "api.sqlite3")) as url, httpx.Client(
            base_url=f"{url}/client/v4/accounts/{ACC}/cni", headers={"Authorization": f"Bearer {DEV_TOKEN}"}) as c:
        yield c


@pytest.fixture(scope="module")
def world(http):
    """One v1 and one v2 interconnect with a CNI each, shared by the read-only checks below."""
    out = {}
    for tag, slot in (("v1", V1_10G), ("v2", V2_10G)):
        ic = http.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": slot.id}).json()
        cni = http.post("/cnis", json={"account": ACC, "interconnect": ic["name"],
                                       "magic": {"conduit_name": tag, "description": "", "mtu": 1400},
                                       "bgp": {"customer_asn": 65010, "extra_prefixes": []}}).json()
        out[tag] = (ic, cni)
    return out


def snapshot(http) -> tuple:
    return (http.get("/interconnects").json(), http.get("/cnis").json(), http.get("/settings").json(),
            http.get("/slots", params={"occupied": True}).json())


def expect(resp: httpx.Response, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    validate_error(body)
    assert fragment in body["errors"][0]["message"], body


def cni_body(ic: str, **over):
    body = {"account": ACC, "interconnect": ic, "magic": {"conduit_name": "x", "description": "", "mtu": 1400},
            "bgp": {"customer_asn": 65010, "extra_prefixes": []}}
    body.update(over)
    return body


@pytest.mark.parametrize(("asn", "why"), [(0, "reserved"), (23456, "reserved"), (64500, "reserved"),
                                          (65535, "reserved"), (65540, "reserved"), (4294967295, "reserved"),
                                          (4294967296, "not an AS number"), (-1, "not an AS number")])
def test_bad_asn_refused(http, world, asn, why):
    before = snapshot(http)
    ic = world["v1"][0]["name"]
    expect(http.post("/cnis", json=cni_body(ic, bgp={"customer_asn": asn, "extra_prefixes": []})), 400, why)
    expect(http.put("/settings", json={"default_asn": asn}), 400, why)
    assert snapshot(http) == before


@pytest.mark.parametrize("key", ["", "has?question", 'has"quote', "tab\there", "new\nline", "x" * 81])
def test_bad_md5_refused(http, world, key):
    before = snapshot(http)
    ic = world["v1"][0]["name"]
    expect(http.post("/cnis", json=cni_body(ic, bgp={"customer_asn": 65010, "extra_prefixes": [], "md5_key": key})),
           400, "bgp.md5_key")
    assert snapshot(http) == before


def test_good_md5_charset_accepted(http, world):
    key = "aZ09'!@#$%^&*()+[]{}<>/.,;:_-~`= \\|"
    _, cni = world["v1"]
    body = {**cni, "bgp": {"customer_asn": 65010, "extra_prefixes": [], "md5_key": key}}
    r = http.put(f"/cnis/{cni['id']}", json=body)
    assert r.status_code == 200 and r.json()["bgp"]["md5_key"] == key


@pytest.mark.parametrize(("p2p", "cust", "why"), [
    ("192.0.2.10/31", "192.0.2.12/31", "not in the same /31"),
    ("192.0.2.10/31", "192.0.2.10/31", "must differ"),
    ("192.0.2.10/30", "192.0.2.11/30", "must be a /31"),
    ("192.0.2.10", "192.0.2.11", "prefix length"),
    ("192.0.2.10/31", "2001:db8::1/127", "address families"),
    ("2001:db8::/127", "2001:db8::2/127", "not in the same /127"),
    ("banana/31", "192.0.2.11/31", "not an address"),
])
def test_bad_p2p_refused(http, world, p2p, cust, why):
    before = snapshot(http)
    _, cni = world["v1"]
    expect(http.put(f"/cnis/{cni['id']}", json={**cni, "p2p_ip": p2p, "cust_ip": cust}), 400, why)
    assert snapshot(http) == before


def test_v6_p2p_accepted(http, world):
    _, cni = world["v2"]
    r = http.put(f"/cnis/{cni['id']}", json={**cni, "p2p_ip": "2001:db8:12:3::7ac2:d64a/127",
                                             "cust_ip": "2001:db8:12:3::7ac2:d64b/127"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("tag", "mtu", "ok"), [("v1", 1476, True), ("v1", 1477, False), ("v2", 1500, True),
                                                ("v2", 1501, False), ("v2", 575, False)])
def test_mtu_limits_follow_dataplane(http, world, tag, mtu, ok):
    ic = world[tag][0]["name"]
    r = http.post("/cnis", json=cni_body(ic, magic={"conduit_name": "m", "description": "", "mtu": mtu}))
    if ok:
        assert r.status_code == 200, r.text
        assert http.delete(f"/cnis/{r.json()['id']}").status_code == 200
    else:
        expect(r, 400, "magic.mtu")


def test_slot_rules(http, world):
    before = snapshot(http)
    expect(http.post("/interconnects", json={"account": ACC, "type": "direct",
                                             "slot_id": "00000000-0000-0000-0000-000000000000"}), 400, "not a slot")
    free = next(s for s in slots() if s.speed == "100G")
    expect(http.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": free.id, "speed": "10G"}),
           400, "does not match slot")
    expect(http.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": V1_10G.id}),
           409, "already occupied")
    expect(http.post("/interconnects", json={"account": ACC, "type": "partner", "slot_id": free.id}), 400, "type")
    expect(http.post("/interconnects", json={"account": ACC, "type": "gcp_partner", "bandwidth": "1G",
                                             "pairing_key": "nope"}), 400, "pairing_key")
    expect(http.post("/interconnects", json={"account": "f" * 32, "type": "direct", "slot_id": free.id}),
           400, "does not match the account")
    assert snapshot(http) == before


def test_interconnect_must_exist_and_belong(http, world):
    before = snapshot(http)
    expect(http.post("/cnis", json=cni_body("ewr01-nothere")), 404, "not found")
    expect(http.get("/interconnects/ewr01-nothere"), 404, "not found")
    expect(http.get("/interconnects/ewr01-nothere/status"), 404, "not found")
    expect(http.get("/cnis/6f1c1e1e-0000-4000-8000-000000000000"), 404, "not found")
    expect(http.delete(f"/interconnects/{world['v1'][0]['name']}"), 409, "still hosts")
    assert snapshot(http) == before


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/cnis", {"cf_ip": "192.0.2.10/31", "cust_ip": "192.0.2.11/31"}, "cf_ip was renamed: use p2p_ip"),
    ("/cnis", {"bgp_asn": 65000}, "bgp_asn was renamed: use bgp.customer_asn"),
    ("/cnis", {"bgp_password": "x"}, "bgp_password was renamed: use bgp.md5_key"),
    ("/cnis", {"vlan": 100}, "facilities.yaml"),
    ("/interconnects", {"facility": "EWR1", "speed": "10G"}, "send slot_id"),
])
def test_legacy_field_names_answered_with_current_name(http, world, path, body, message):
    before = snapshot(http)
    expect(http.post(path, json={"account": ACC, **body}), 400, message)
    # also when the rest of the body is valid
    if path == "/cnis":
        expect(http.post(path, json={**cni_body(world["v1"][0]["name"]), **body}), 400, message)
    assert snapshot(http) == before


def test_legacy_query_names(http):
    expect(http.get("/slots", params={"facility": "EWR1"}), 400, "filter slots with site")
    expect(http.get("/interconnects", params={"page": 2}), 400, "cursor")


def test_malformed_requests(http, world):
    before = snapshot(http)
    expect(http.get("/slots", params={"cursor": "abc"}), 400, "cursor")
    expect(http.get("/slots", params={"occupied": "maybe"}), 400, "occupied")
    expect(http.post("/cnis", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON")
    expect(http.post("/cnis", json={"account": ACC, "interconnect": "x"}), 400, "magic")
    expect(http.get("/interconnects/x/loa", params={"name": "n" * 201}), 404, "not found")
    name = world["v1"][0]["name"]
    expect(http.get(f"/interconnects/{name}/loa", params={"name": "n" * 201}), 400, "1-200")
    r = http.put(f"/cnis/{world['v1'][1]['id']}", json={**world["v1"][1], "interconnect": world["v2"][0]["name"]})
    expect(r, 400, "cannot change")
    assert snapshot(http) == before


def test_unknown_route_is_7003(http):
    r = http.get("/nonsense")
    assert r.status_code == 404 and r.json()["errors"] == [{"code": 7003, "message": "No route for the URI"}]
    validate_error(r.json())
