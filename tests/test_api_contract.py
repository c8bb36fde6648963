"""The served contracts, and a bounded schemathesis run against Cloudflare's reference OpenAPI.

``/openapi.json`` must be the reference document (mock_api/reference) plus only the error
responses the mock sends; ``/lab/v1/openapi.json`` holds the lab controls apart. The fuzz run uses
a fixed seed and example budget so it is repeatable and short, and requires zero 5xx and zero
responses (success or error) that break the served schema.
"""

from __future__ import annotations

import json

import httpx
import pytest
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.openapi import FAILURE
from cnilab.mock_api.schema_check import REFERENCE
from cnilab.mock_api.testing import serve

H = {"Authorization": f"Bearer {DEV_TOKEN}"}
SEED = 20261201
EXAMPLES = 25  # per operation: 15 operations, ~375 requests


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with serve(load_settings(db=tmp_path_factory.mktemp("contract") / "api.sqlite3",
                             rate_limit={"quota": 1_000_000})) as u:
        yield u


def test_client_document_is_the_reference_plus_errors(url):
    served = httpx.get(f"{url}/openapi.json").json()
    ref = json.loads(REFERENCE.read_text())
    assert served["paths"].keys() == ref["paths"].keys()
    assert served["servers"] == [{"url": "/client/v4", "description": "this cnilab mock"}]
    assert {k: v for k, v in served["components"]["schemas"].items() if k != FAILURE} == ref["components"]["schemas"]
    for path, item in ref["paths"].items():
        for method, op in item.items():
            mine = served["paths"][path][method]
            # everything but the responses is Cloudflare's, verbatim
            assert {k: v for k, v in mine.items() if k != "responses"} == {k: v for k, v in op.items()
                                                                          if k != "responses"}
            assert mine["responses"]["200"] == op["responses"]["200"]
            for status, resp in mine["responses"].items():
                if status.startswith(("4", "5")):
                    assert resp["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{FAILURE}"}
            assert {"400", "401", "403", "404", "405", "429", "500"} <= mine["responses"].keys()
            if "requestBody" in op:
                assert {"413", "415"} <= mine["responses"].keys()
    assert not any(p.startswith("/lab") for p in served["paths"])


def test_lab_document_is_separate(url):
    r = httpx.get(f"{url}/lab/v1/openapi.json")  # public, like /openapi.json
    assert r.status_code == 200
    doc = r.json()
    assert doc["paths"] and all(p.startswith("/lab/v1/interconnects/{icon}") for p in doc["paths"])
    assert "/lab/v1/interconnects/{icon}/bind" in doc["paths"]
    for item in doc["paths"].values():
        for op in item.values():
            assert "422" not in op["responses"]  # never sent: refusals are 400 in the v4 envelope
            assert "400" in op["responses"]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_5xx_and_no_schema_breaks(url, mode):
    """Positive: schema-valid requests. Negative: requests that break the schema (out-of-range
    cursors, wrong types, missing fields): all must be refused cleanly, never 5xx."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (dev dependency) not installed")
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    base = f"{url}/client/v4"
    api = f"{base}/accounts/{DEV_ACCOUNT}/cni"
    # real objects, so generated requests reach past "not found" some of the time
    slot = slots()[0 if mode == "positive" else 1]
    ic = httpx.post(f"{api}/interconnects", headers=H,
                    json={"account": DEV_ACCOUNT, "type": "direct", "slot_id": slot.id}).json()
    cni = httpx.post(f"{api}/cnis", headers=H, json={
        "account": DEV_ACCOUNT, "interconnect": ic["name"],
        "magic": {"conduit_name": "fuzz", "description": "", "mtu": 1400},
        "bgp": {"customer_asn": 65010, "extra_prefixes": []}}).json()
    real = {"account_id": DEV_ACCOUNT, "icon": ic["name"], "cni": cni["id"], "slot": slot.id}

    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) == 15
    seen: dict[int, int] = {}
    def fuzz(op):
        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode(mode)), data=st.data())
        def run(case, data):
            for name in case.path_parameters or {}:
                # the account is always the caller's (others' are a plain 401); ids are real half the time
                if name == "account_id" or data.draw(st.booleans(), label=f"real {name}"):
                    case.path_parameters[name] = real[name]
            response = case.call(base_url=base, headers=H, timeout=30)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            case.validate_response(response, checks=checks)

        run()

    for op in ops:
        fuzz(op)
    print("schemathesis statuses:", dict(sorted(seen.items())))
    assert not any(s >= 500 for s in seen), seen
    assert sum(seen.values()) >= len(ops) * 5, seen
    assert seen.get(200, 0) > 0 if mode == "positive" else seen.get(400, 0) > 0, seen
