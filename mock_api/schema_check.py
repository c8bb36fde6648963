"""Validate response bodies against Cloudflare's CNI OpenAPI document (mock_api/reference/).

OpenAPI 3.0 is not JSON Schema: this resolves ``$ref`` inline, turns ``nullable`` into a null type
and folds in the ``x-later-additions`` (fields the newest SDKs have that the schema commit lacks),
so jsonschema can check the bodies the mock serves against the reference, not against itself.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

REFERENCE = Path(__file__).parent / "reference" / "cni-openapi.json"

_LATER = {
    "nsc_Interconnect_Physical_Body": "nsc_Interconnect_Physical_Body",
    "nsc_Interconnect_GcpPartner_Body": "nsc_Interconnect_GcpPartner_Body",
    "nsc_SlotInfo": "nsc_SlotInfo",
}


@functools.cache
def _doc() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


def _convert(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(n, schemas) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _convert(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
    out = {k: _convert(v, schemas) for k, v in node.items()
           if k not in ("discriminator", "x-provenance", "example", "format")}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _with_later_additions(schemas: dict[str, Any]) -> dict[str, Any]:
    schemas = copy.deepcopy(schemas)
    later = _doc()["x-later-additions"]
    for name in _LATER:
        for field, spec in later[name].items():
            prop = {k: v for k, v in spec.items() if k != "required"}
            target = schemas[name]
            parts = target.get("allOf") or [target]
            part = parts[-1]
            part.setdefault("properties", {})[field] = prop
            if spec.get("required"):
                part.setdefault("required", []).append(field)
    cni_key = next(k for k in later if k.startswith("nsc_Cni "))
    for field, spec in later[cni_key].items():
        schemas["nsc_Cni"]["properties"][field] = {k: v for k, v in spec.items() if k not in ("required",)}
    return schemas


@functools.cache
def schema(name: str) -> dict[str, Any]:
    schemas = _with_later_additions(_doc()["components"]["schemas"])
    return _convert(schemas[name], schemas)


def validate(name: str, body: Any) -> None:
    """Raise jsonschema.ValidationError if ``body`` is not a valid ``#/components/schemas/<name>``."""
    jsonschema.validate(body, schema(name), cls=jsonschema.Draft7Validator)


def error_envelope_schema() -> dict[str, Any]:
    env = _doc()["x-v4-common-envelope"]
    msgs = env["messages"]
    s = copy.deepcopy(env["api-response-common-failure"])
    s["properties"]["errors"] = {**msgs, "minItems": 1}
    s["properties"]["messages"] = msgs
    s["properties"]["result"] = {"type": "null"}
    return s


def validate_error(body: Any) -> None:
    jsonschema.validate(body, error_envelope_schema(), cls=jsonschema.Draft7Validator)
