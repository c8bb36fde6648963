"""Findings of the fuzz and abuse run (issue 13.3), each one refused the way Cloudflare answers:
a 4xx in the v4 failure envelope that says what to change, and nothing stored."""

from __future__ import annotations

import json
import threading
from http.client import HTTPConnection
from urllib.parse import urlsplit

import httpx
import pytest
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_EMAIL, DEV_KEY, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.limits import MAX_BODY_BYTES, MAX_LEN
from cnilab.mock_api.schema_check import validate_error
from cnilab.mock_api.store import CniRow, InterconnectGone, Store
from cnilab.mock_api.testing import serve

ACC = DEV_ACCOUNT
H = {"Authorization": f"Bearer {DEV_TOKEN}"}
BASE = f"/client/v4/accounts/{ACC}/cni"
V1_10G = [s for s in slots() if s.dataplane == "v1" and s.speed == "10G"]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with serve(load_settings(db=tmp_path_factory.mktemp("abuse") / "api.sqlite3")) as u:
        yield u


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url + BASE, headers=H) as c:
        yield c


@pytest.fixture(scope="module")
def world(http):
    """One interconnect with two CNIs."""
    ic = http.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": V1_10G[0].id}).json()
    cnis = [http.post("/cnis", json=cni_body(ic["name"], f"c{i}")).json() for i in range(2)]
    return ic, cnis


def cni_body(ic: str, conduit: str = "x", **over):
    body = {"account": ACC, "interconnect": ic, "magic": {"conduit_name": conduit, "description": "", "mtu": 1400},
            "bgp": {"customer_asn": 65010, "extra_prefixes": [], "md5_key": "s3cret"}}
    body.update(over)
    return body


def snapshot(http) -> tuple:
    return (http.get("/interconnects").json(), http.get("/cnis").json(), http.get("/settings").json())


def expect(resp: httpx.Response, status: int, fragment: str, code: int | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    validate_error(body)
    assert fragment in body["errors"][0]["message"], body
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    return body


# -- size limits ------------------------------------------------------------------------------------
def test_body_over_the_limit_is_413(http, world):
    before = snapshot(http)
    huge = cni_body(world[0]["name"], conduit="x" * (MAX_BODY_BYTES + 10))
    expect(http.post("/cnis", json=huge), 413, f"limit is {MAX_BODY_BYTES}")

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        data = json.dumps(huge).encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    expect(http.post("/cnis", content=chunks(), headers={"content-type": "application/json"}), 413, "limit")
    assert snapshot(http) == before


@pytest.mark.parametrize(("field", "body_of"), [
    ("magic.conduit_name", lambda ic, n: cni_body(ic, conduit="c" * n)),
    ("magic.description", lambda ic, n: cni_body(ic, magic={"conduit_name": "c", "description": "d" * n,
                                                            "mtu": 1400})),
    ("bgp.extra_prefixes[]", lambda ic, n: cni_body(ic, bgp={"customer_asn": 65010,
                                                             "extra_prefixes": ["1" * n]})),
    ("interconnect", lambda ic, n: cni_body("i" * n)),
])
def test_every_string_has_a_documented_limit(http, world, field, body_of):
    before = snapshot(http)
    limit = MAX_LEN[field]
    body = expect(http.post("/cnis", json=body_of(world[0]["name"], limit + 1)), 400,
                  f"{limit + 1} characters; the limit is {limit}")
    assert "c" * 100 not in body["errors"][0]["message"]  # the refused value is not echoed back whole
    assert snapshot(http) == before


def test_long_query_strings_refused(http):
    expect(http.get("/cnis", params={"tunnel_id": "t" * (MAX_LEN["query"] + 1)}), 400, "tunnel_id")


# -- cursor -----------------------------------------------------------------------------------------
def test_cursor_overflow_is_400_and_keeps_the_connection(url):
    """Above 2^63-1 SQLite overflowed (500) and the server dropped the keep-alive connection."""
    u = urlsplit(url)
    conn = HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        for path in ("interconnects", "cnis", "slots"):
            for cursor in (2**63, 2**64 + 5, 2**31):
                conn.request("GET", f"{BASE}/{path}?cursor={cursor}", headers=H)
                sock = conn.sock
                r = conn.getresponse()
                body = json.loads(r.read())
                assert r.status == 400, body
                validate_error(body)
                assert "cursor" in body["errors"][0]["message"]
                conn.request("GET", f"{BASE}/{path}?cursor=0", headers=H)
                assert conn.sock is sock, "the server closed the keep-alive connection"
                r = conn.getresponse()
                assert r.status == 200
                r.read()
    finally:
        conn.close()


# -- races and conflicts ----------------------------------------------------------------------------
def test_create_on_a_deleted_interconnect_is_gone_not_integrity_error(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    try:
        row = CniRow(id="x", account=ACC, interconnect="ewr01-deleted", p2p_ip="", cust_ip="", conduit_name="c",
                     description="", mtu=1400, tunnel_id="t")
        with pytest.raises(InterconnectGone):
            store.create_cni(row, "192.0.2.0/24")
    finally:
        store.close()


def test_delete_racing_a_create_answers_404(tmp_path, monkeypatch):
    """The interconnect is deleted after the create looked it up but before it writes: 404, no CNI."""
    import cnilab.mock_api.routers.cnis as cnis_router

    with serve(load_settings(db=tmp_path / "api.sqlite3")) as u, httpx.Client(base_url=u + BASE, headers=H) as c:
        name = c.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": V1_10G[1].id}
                      ).json()["name"]
        real = cnis_router.check_mtu

        def delete_meanwhile(mtu, dataplane):
            real(mtu, dataplane)
            assert httpx.delete(f"{u}{BASE}/interconnects/{name}", headers=H).status_code == 200

        monkeypatch.setattr(cnis_router, "check_mtu", delete_meanwhile)
        expect(c.post("/cnis", json=cni_body(name)), 404, "not found", code=1003)
        monkeypatch.undo()
        assert c.get("/cnis").json()["items"] == []


def test_concurrent_creates_and_deletes_never_500(tmp_path):
    with serve(load_settings(db=tmp_path / "api.sqlite3")) as u:
        statuses: list[int] = []
        for _ in range(3):
            with httpx.Client(base_url=u + BASE, headers=H) as c:
                name = c.post("/interconnects", json={"account": ACC, "type": "direct",
                                                      "slot_id": V1_10G[2].id}).json()["name"]

            def create(name=name):
                with httpx.Client(base_url=u + BASE, headers=H) as cc:
                    statuses.append(cc.post("/cnis", json=cni_body(name)).status_code)

            threads = [threading.Thread(target=create) for _ in range(8)]
            for t in threads:
                t.start()
            statuses.append(httpx.delete(f"{u}{BASE}/interconnects/{name}", headers=H).status_code)
            for t in threads:
                t.join()
            with httpx.Client(base_url=u + BASE, headers=H) as c:
                for cni in c.get("/cnis").json()["items"]:
                    assert c.delete(f"/cnis/{cni['id']}").status_code == 200
                c.delete(f"/interconnects/{name}")
        assert set(statuses) <= {200, 404, 409}, statuses


def test_put_cannot_take_another_cnis_point_to_point(http, world):
    before = snapshot(http)
    a, b = world[1]
    for p2p, cust in ((a["p2p_ip"], a["cust_ip"]), (a["cust_ip"], a["p2p_ip"])):  # same /31, either end
        expect(http.put(f"/cnis/{b['id']}", json={**b, "p2p_ip": p2p, "cust_ip": cust}), 409,
               "already used by CNI", code=1004)
    assert snapshot(http) == before
    assert http.put(f"/cnis/{b['id']}", json=b).status_code == 200  # its own /31 is fine


# -- unknown keys and strict types ------------------------------------------------------------------
@pytest.mark.parametrize(("over", "status_code", "fragment"), [
    ({"bgp": {"customer_asn": 65010, "extra_prefixes": [], "bgp_password": "x"}}, 1002,
     "bgp_password was renamed: use bgp.md5_key"),
    ({"bgp": {"customer_asn": 65010, "extra_prefixes": [], "md5key": "x"}}, 1001,
     "bgp.md5key: unknown field; did you mean bgp.md5_key?"),
    ({"magic": {"conduit_name": "c", "description": "", "mtu": 1400, "mut": 1}}, 1001, "magic.mut: unknown field"),
    ({"colour": "blue"}, 1001, "colour: unknown field"),
])
def test_unknown_keys_refused_at_every_level(http, world, over, status_code, fragment):
    before = snapshot(http)
    expect(http.post("/cnis", json=cni_body(world[0]["name"], **over)), 400, fragment, code=status_code)
    cni = world[1][0]
    expect(http.put(f"/cnis/{cni['id']}", json={**cni, **over}), 400, fragment, code=status_code)
    assert snapshot(http) == before


def test_unknown_keys_on_other_bodies(http, world):
    before = snapshot(http)
    expect(http.post("/interconnects", json={"account": ACC, "type": "direct", "slot_id": V1_10G[3].id,
                                             "sped": "10G"}), 400, "did you mean speed?")
    expect(http.put("/settings", json={"default_asn": 65010, "asn": 1}), 400, "asn: unknown field")
    r = httpx.post(str(http.base_url).split("/client/")[0] + f"/lab/v1/interconnects/{world[0]['name']}/link",
                   json={"up": True, "down": False}, headers=H)
    expect(r, 400, "down: unknown field")
    assert snapshot(http) == before


@pytest.mark.parametrize(("over", "fragment"), [
    ({"magic": {"conduit_name": "c", "description": "", "mtu": "1400"}},
     "magic.mtu: must be a JSON integer, not a string"),
    ({"magic": {"conduit_name": "c", "description": "", "mtu": 1400.5}},
     "magic.mtu: must be a JSON integer, not float"),
    ({"bgp": {"customer_asn": "65000", "extra_prefixes": []}},
     "bgp.customer_asn: must be a JSON integer, not a string"),
    ({"bgp": {"customer_asn": True, "extra_prefixes": []}}, "bgp.customer_asn: must be a JSON integer, not bool"),
    ({"magic": {"conduit_name": 7, "description": "", "mtu": 1400}}, "magic.conduit_name: must be a JSON string"),
])
def test_integers_and_strings_are_strict(http, world, over, fragment):
    before = snapshot(http)
    expect(http.post("/cnis", json=cni_body(world[0]["name"], **over)), 400, fragment)
    expect(http.put("/settings", json={"default_asn": "65000"}), 400,
           "default_asn: must be a JSON integer, not a string")
    assert snapshot(http) == before


# -- HTTP details -----------------------------------------------------------------------------------
def test_405_has_allow(http):
    r = http.delete("/cnis")
    expect(r, 405, "Method not allowed", code=7001)
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}
    r = http.patch("/settings", json={})
    expect(r, 405, "Method not allowed")
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "PUT"}


def test_trailing_slash_answers_the_route(http, world):
    r = http.get("/cnis/")
    assert r.status_code == 200 and r.json() == http.get("/cnis").json()
    r = http.get(f"/interconnects/{world[0]['name']}/")
    assert r.status_code == 200 and r.json()["name"] == world[0]["name"]
    r = http.get("/nothing-here/")
    expect(r, 404, "No route for the URI", code=7003)


def test_body_must_be_json(http, world):
    before = snapshot(http)
    text = json.dumps(cni_body(world[0]["name"]))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": ctype} if ctype else {}
        expect(http.post("/cnis", content=text, headers=headers), 415, "must be sent as application/json")
    assert snapshot(http) == before


@pytest.mark.parametrize(("content", "fragment"), [
    (b"null", "body: must be a JSON object, not null"),
    (b"[]", "body: must be a JSON object, not list"),
    (b"{not json", "body: not valid JSON"),
    (b"[" * 20000 + b"]" * 20000, "nested too deeply"),
    (b'{"account": "\\ud800"}', "account"),
])
def test_malformed_bodies_are_400(http, world, content, fragment):
    before = snapshot(http)
    expect(http.post("/cnis", content=content, headers={"content-type": "application/json"}), 400, fragment)
    assert snapshot(http) == before


def test_rate_limit_counts_per_user_across_token_and_key(tmp_path):
    settings = load_settings(db=tmp_path / "rl.sqlite3", rate_limit={"quota": 3, "window_s": 60})
    key = {"X-Auth-Email": DEV_EMAIL, "X-Auth-Key": DEV_KEY}
    with serve(settings) as u:
        codes = [httpx.get(f"{u}{BASE}/settings", headers=h).status_code for h in (H, key, H, key)]
    assert codes == [200, 200, 200, 429]


class _CrashingBridge:
    """A lab bridge with a bug: any crash must still be a 500 envelope on a live connection."""

    def observe(self, lab, link):
        raise ZeroDivisionError("bug")

    def plan_addresses(self, lab, link, family=4):
        return None

    def sync(self, lab, bound, cnis):
        return []


def test_a_crash_is_a_500_envelope_and_keeps_the_connection(tmp_path):
    db = tmp_path / "api.sqlite3"
    with serve(load_settings(db=db), _CrashingBridge()) as u:
        name = httpx.post(u + BASE + "/interconnects", headers=H,
                          json={"account": ACC, "type": "direct", "slot_id": V1_10G[3].id}).json()["name"]
        store = Store(db)
        try:
            store.update_interconnect(name, lab="some-lab", lab_link="ewr1")
        finally:
            store.close()
        host = urlsplit(u)
        conn = HTTPConnection(host.hostname, host.port, timeout=30)
        try:
            conn.request("GET", f"{BASE}/interconnects/{name}/status", headers=H)
            sock = conn.sock
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 500
            validate_error(body)
            assert body["errors"][0] == {"code": 1000, "message": "Internal server error: ZeroDivisionError"}
            conn.request("GET", f"{BASE}/interconnects/{name}", headers=H)
            assert conn.sock is sock
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["name"] == name
        finally:
            conn.close()
