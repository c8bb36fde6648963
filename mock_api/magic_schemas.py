"""Reference schemas of the Magic endpoints, pinned in ``mock_api/reference/magic-sdk-schemas.json``.

Cloudflare's OpenAPI document (cloudflare/api-schemas) is too large to vendor and its Magic part
is what the official SDK is generated from, so the pinned reference is the JSON Schema of the
official SDK's response types (``cloudflare`` 5.9.0, ``cloudflare.types.magic_transit``), produced
by :func:`generate`. A test checks the pinned file against the installed SDK when the versions
match. :func:`validate` checks a response's ``result`` against it and refuses any field the
reference does not define (so a typo in the mock cannot pass as "extra").
"""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path
from typing import Any

import jsonschema

REFERENCE = Path(__file__).parent / "reference" / "magic-sdk-schemas.json"
SDK_VERSION = "5.9.0"
TYPES = {
    "cf_interconnect_list": "cf_interconnect_list_response.CfInterconnectListResponse",
    "cf_interconnect_get": "cf_interconnect_get_response.CfInterconnectGetResponse",
    "cf_interconnect_update": "cf_interconnect_update_response.CfInterconnectUpdateResponse",
    "gre_tunnel_create": "gre_tunnel_create_response.GRETunnelCreateResponse",
    "gre_tunnel_list": "gre_tunnel_list_response.GRETunnelListResponse",
    "gre_tunnel_get": "gre_tunnel_get_response.GRETunnelGetResponse",
    "gre_tunnel_update": "gre_tunnel_update_response.GRETunnelUpdateResponse",
    "gre_tunnel_delete": "gre_tunnel_delete_response.GRETunnelDeleteResponse",
    "route_create": "route_create_response.RouteCreateResponse",
    "route_list": "route_list_response.RouteListResponse",
    "route_get": "route_get_response.RouteGetResponse",
    "route_update": "route_update_response.RouteUpdateResponse",
    "route_delete": "route_delete_response.RouteDeleteResponse",
}


def generate() -> dict[str, Any]:
    """The reference document from the installed SDK (run when pinning a new SDK version)."""
    import cloudflare

    out: dict[str, Any] = {
        "x-source": {
            "package": "cloudflare (PyPI), github.com/cloudflare/cloudflare-python",
            "version": cloudflare.__version__,
            "how": "pydantic model_json_schema() of cloudflare.types.magic_transit.<module>.<Type>; the SDK is "
                   "generated from Cloudflare's OpenAPI document (cloudflare/api-schemas) by Stainless",
            "envelope": "every success is the v4 envelope {success, errors, messages, result}; the SDK unwraps result",
        },
        "schemas": {},
    }
    for name, dotted in TYPES.items():
        mod, cls = dotted.rsplit(".", 1)
        model = getattr(importlib.import_module(f"cloudflare.types.magic_transit.{mod}"), cls)
        out["schemas"][name] = {"x-sdk-type": f"cloudflare.types.magic_transit.{dotted}",
                                **model.model_json_schema(mode="serialization")}
    return out


@functools.cache
def _doc() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


def _closed(node: Any) -> Any:
    """additionalProperties: false on every object schema (in place on a copy)."""
    if isinstance(node, dict):
        node = {k: _closed(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(x) for x in node]
    return node


def validate(name: str, body: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` is a v4 success whose result matches ``name``."""
    assert body.get("success") is True and body.get("errors") == [], body
    schema = _closed(_doc()["schemas"][name])
    jsonschema.validate(body["result"], schema)
