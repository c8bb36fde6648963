"""The two OpenAPI documents the mock serves.

``/openapi.json`` is Cloudflare's reference contract for ``/client/v4`` (mock_api/reference, taken
from cloudflare/api-schemas) with only what this mock adds: the error responses it really sends, each
with the v4 failure envelope as body, and a ``servers`` entry pointing at the mock. Clients and
fuzzers therefore test against Cloudflare's contract, not against a description of the mock.
``/lab/v1/openapi.json`` describes the lab-only controls, which no Cloudflare client should see.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from cnilab.mock_api.limits import MAX_BODY_BYTES, MAX_CURSOR, MAX_LEN
from cnilab.mock_api.schema_check import REFERENCE
from fastapi.openapi.utils import get_openapi

FAILURE = "cnilab_v4_failure"
_REF = {"$ref": f"#/components/schemas/{FAILURE}"}

# Answered by the gateway for every operation.
_GATEWAY = {
    "400": "Bad request: missing or malformed credentials (9106, 6003), or a field refused (1001, 1002)",
    "401": "Authentication error: the credential is valid but not for this account (10000)",
    "403": "Invalid access token (9109) or unknown X-Auth-Email/X-Auth-Key (9103)",
    "404": "No route for the URI (7003), or the object does not exist (1003)",
    "405": "Method not allowed for this endpoint (7001); the Allow header lists the methods",
    "429": "Rate limited (971); see Retry-After",
    "500": "Internal server error (1000)",
}
# Answered when the operation takes a body.
_WITH_BODY = {
    "413": f"Request body larger than {MAX_BODY_BYTES} bytes",
    "415": "Request body not sent as application/json",
}
_CONFLICT = "Conflict (1004): slot taken, /31 in use, interconnect still hosts CNIs, or pool exhausted"
_LAB = "The bound lab refused the change; nothing was applied (1005)"


def _failure_schema(doc: dict[str, Any]) -> dict[str, Any]:
    env = doc["x-v4-common-envelope"]
    message = copy.deepcopy(env["messages"]["items"])
    message["properties"]["code"] = {"type": "integer"}  # gateway codes (971, 6003...) are below 1000
    message["properties"]["error_chain"] = {"type": "array", "items": copy.deepcopy(message)}
    return {
        "type": "object",
        "description": "Cloudflare's v4 failure envelope (x-v4-common-envelope), as every error of the mock",
        "required": ["success", "errors", "messages", "result"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "errors": {"type": "array", "minItems": 1, "items": message},
            "messages": {"type": "array", "items": message},
            "result": {"nullable": True, "enum": [None]},
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _REF}}}


@functools.cache
def _client_document_text() -> str:
    doc = json.loads(REFERENCE.read_text())
    doc["servers"] = [{"url": "/client/v4", "description": "this cnilab mock"}]
    doc["components"]["schemas"][FAILURE] = _failure_schema(doc)
    limits = ", ".join(f"{k} {v}" for k, v in MAX_LEN.items())
    doc["info"]["description"] = (
        "Cloudflare's reference CNI contract as served by cnilab's mock. cnilab adds only the error responses "
        f"it sends (all in the v4 failure envelope). Limits it enforces: body {MAX_BODY_BYTES} bytes, cursor "
        f"0..{MAX_CURSOR}, string lengths (characters): {limits}; unknown keys are refused.")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            extra = dict(_GATEWAY)
            if "requestBody" in op:
                extra |= _WITH_BODY
            if method in ("post", "put", "delete") and not path.endswith("/settings"):
                extra["409"] = _CONFLICT
                extra["502"] = _LAB
            for status, text in extra.items():
                old = responses.get(status, {})
                responses[status] = _error(old.get("description") or text)
            for status, resp in responses.items():
                if status.startswith(("4", "5")) and "content" not in resp:
                    resp["content"] = {"application/json": {"schema": _REF}}
    return json.dumps(doc)


def client_document() -> dict[str, Any]:
    """A fresh copy each call (callers may modify it)."""
    return json.loads(_client_document_text())


def lab_document() -> dict[str, Any]:
    from cnilab.mock_api.routers import lab

    doc = get_openapi(title="cnilab lab controls", version="1", routes=lab.router.routes,
                      description="Lab-only controls (not part of Cloudflare's API): the physical side of an "
                                  "interconnect and binding to a running lab. Same credentials as /client/v4.")
    doc.setdefault("components", {}).setdefault("schemas", {})[FAILURE] = _failure_schema(
        json.loads(REFERENCE.read_text()))
    for item in doc["paths"].values():
        for op in item.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's default; this app answers 400 in the v4 envelope
            extra = dict(_GATEWAY) | {"409": _CONFLICT, "502": _LAB}
            if "requestBody" in op:
                extra |= _WITH_BODY
            for status, text in extra.items():
                responses[status] = _error(text)
    for unused in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(unused, None)
    return doc
