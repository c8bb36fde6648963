"""Auth and gateway behaviour, as curl sees it: raw httpx calls, Cloudflare's codes and headers."""

from __future__ import annotations

import httpx
import pytest
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_EMAIL, DEV_KEY, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.schema_check import validate_error
from cnilab.mock_api.testing import serve

OTHER = "b" * 32


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    settings = load_settings(db=tmp_path_factory.mktemp("auth") / "api.sqlite3", accounts=[
        {"id": DEV_ACCOUNT, "tokens": [DEV_TOKEN], "api_keys": [{"email": DEV_EMAIL, "key": DEV_KEY}]},
        {"id": OTHER, "name": "Other Co", "tokens": ["other-token"]}],
        rate_limit={"quota": 1000, "window_s": 300})
    with serve(settings) as u:
        yield u


def err(r: httpx.Response) -> tuple[int, int, str]:
    validate_error(r.json())
    e = r.json()["errors"][0]
    return r.status_code, e["code"], e["message"]


def path(acc: str, rest: str = "slots") -> str:
    return f"/client/v4/accounts/{acc}/cni/{rest}"


def test_missing_headers_is_9106(url):
    r = httpx.get(url + path(DEV_ACCOUNT))
    assert err(r) == (400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
    assert err(httpx.get(url + "/client/v4/no/such/route"))[1] == 9106  # auth before routing, as Cloudflare


def test_bad_token_and_bad_key(url):
    assert err(httpx.get(url + path(DEV_ACCOUNT), headers={"Authorization": "Bearer nope"})) == (
        403, 9109, "Invalid access token")
    r = httpx.get(url + path(DEV_ACCOUNT), headers={"Authorization": "Basic abc"})
    assert err(r)[:2] == (400, 6003) and r.json()["errors"][0]["error_chain"][0]["code"] == 6111
    r = httpx.get(url + path(DEV_ACCOUNT), headers={"X-Auth-Email": DEV_EMAIL, "X-Auth-Key": "wrong"})
    assert err(r)[:2] == (403, 9103)
    r = httpx.get(url + path(DEV_ACCOUNT), headers={"X-Auth-Email": DEV_EMAIL, "X-Auth-Key": DEV_KEY})
    assert r.status_code == 200 and r.json()["items"]


def test_other_accounts_data_is_invisible(url):
    mine = {"Authorization": f"Bearer {DEV_TOKEN}"}
    theirs = {"Authorization": "Bearer other-token"}
    slot = slots()[0]
    r = httpx.post(url + path(OTHER, "interconnects"), headers=theirs,
                   json={"account": OTHER, "type": "direct", "slot_id": slot.id})
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    # a valid token on someone else's account: 10000, no data
    for rest in ("interconnects", f"interconnects/{name}", "settings"):
        assert err(httpx.get(url + path(OTHER, rest), headers=mine))[:2] == (401, 10000)
    # their interconnect's name under my account: not found, same as a name that never existed
    assert httpx.get(url + path(DEV_ACCOUNT, f"interconnects/{name}"), headers=mine).status_code == 404
    assert httpx.get(url + f"/lab/v1/interconnects/{name}", headers=mine).status_code == 404
    assert httpx.get(url + path(DEV_ACCOUNT, "interconnects"), headers=mine).json()["items"] == []
    # the shared slot shows occupied but not by whom
    s = httpx.get(url + path(DEV_ACCOUNT, f"slots/{slot.id}"), headers=mine).json()
    assert s["occupied"] is True and "account" not in s
    assert httpx.get(url + path(OTHER, f"slots/{slot.id}"), headers=theirs).json()["account"] == OTHER


def test_ratelimit_headers(url):
    h = {"Authorization": f"Bearer {DEV_TOKEN}"}
    a = httpx.get(url + path(DEV_ACCOUNT), headers=h)
    b = httpx.get(url + path(DEV_ACCOUNT), headers=h)
    assert a.headers["ratelimit-policy"] == '"default";q=1000;w=300'
    ra = int(a.headers["ratelimit"].split("r=")[1].split(";")[0])
    rb = int(b.headers["ratelimit"].split("r=")[1].split(";")[0])
    assert rb == ra - 1


def test_rate_limit_enforced_and_chaos(tmp_path):
    settings = load_settings(db=tmp_path / "rl.sqlite3", rate_limit={"quota": 3, "window_s": 60})
    h = {"Authorization": f"Bearer {DEV_TOKEN}"}
    with serve(settings) as u:
        codes = [httpx.get(u + path(DEV_ACCOUNT, "settings"), headers=h) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        # 971 is the gateway's own code, below the 1000 minimum the CNI schema sets for service errors
        body = codes[-1].json()
        assert body["success"] is False and body["result"] is None and body["messages"] == []
        assert body["errors"][0]["code"] == 971 and 0 < int(codes[-1].headers["retry-after"]) <= 60
    chaos = load_settings(db=tmp_path / "chaos.sqlite3", chaos={"seed": 7, "rate_429": 0.3, "rate_5xx": 0.3},
                          rate_limit={"quota": 10_000})
    runs = []
    for _ in range(2):
        with serve(chaos) as u:
            runs.append([httpx.get(u + path(DEV_ACCOUNT, "settings"), headers=h).status_code for _ in range(30)])
    assert runs[0] == runs[1], "chaos must be reproducible from its seed"
    assert {200, 429} <= set(runs[0]) and set(runs[0]) & {500, 502, 503}
