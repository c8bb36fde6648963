"""Turn a request FastAPI/pydantic refused into one Cloudflare-style 400 that says what to change.

Each problem names the field by its dotted path and the value (shortened: a refused 100 MB string
is not echoed back). An unknown key names the key and, when it is one of the seeds' old names, the
current one (code 1002), or else the closest field that exists at that level ("did you mean ...").
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from cnilab.mock_api.errors import RENAMED_FIELD, CFError, bad_request
from cnilab.mock_api.validation import LEGACY_FIELDS
from pydantic import BaseModel

# Which table of old names applies to a body, by the body model's name.
_LEGACY_KIND = {"CniCreate": "cni", "CniUpdate": "cni", "InterconnectCreate": "interconnect"}
_JSON_TYPE = {"int_type": "a JSON integer", "int_from_float": "a JSON integer", "string_type": "a JSON string",
              "bool_type": "true or false", "float_type": "a JSON number", "list_type": "a JSON array",
              "model_type": "a JSON object", "dict_type": "a JSON object", "model_attributes_type": "a JSON object"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation such as ``Bgp | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            out += _models_in(arg)
    return out


def _model_at(model: type[BaseModel] | None, path: list[Any]) -> type[BaseModel] | None:
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        found = _models_in(field.annotation) if field else []
        model = found[0] if found else None
    return model


def body_model(endpoint: Any) -> type[BaseModel] | None:
    """The model of a route's ``body`` parameter (every router names it so)."""
    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # an endpoint with unresolvable hints just gets no suggestions
        return None
    found = _models_in(hints.get("body"))
    return found[0] if found else None


def _unknown_key(loc: list[Any], model: type[BaseModel] | None) -> CFError | str:
    *parent, key = loc
    key = str(key)
    where = ".".join(str(p) for p in loc)
    kind = _LEGACY_KIND.get(model.__name__) if model else None
    if kind and key in LEGACY_FIELDS[kind]:
        return CFError(400, RENAMED_FIELD, LEGACY_FIELDS[kind][key] + (f" (at {where})" if parent else ""))
    here = _model_at(model, parent)
    hint = ""
    if here is not None:
        close = difflib.get_close_matches(key, list(here.model_fields), n=1, cutoff=0.6)
        prefix = ".".join(str(p) for p in parent)
        if close:
            hint = f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
        else:
            hint = f"; the fields here are {', '.join(here.model_fields)}"
    return f"{where}: unknown field{hint}"


def describe(err: dict[str, Any], model: type[BaseModel] | None) -> CFError | str:
    """One pydantic error as text, or a CFError that should answer on its own (an old field name)."""
    section = err["loc"][0] if err["loc"] else "body"
    loc = [p for p in err["loc"][1:]] if section in ("body", "query", "path", "header") else list(err["loc"])
    field = ".".join(str(p) for p in loc) or ("body" if section == "body" else section)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc, model)
    if kind == "missing":
        return f"{field}: required field is missing"
    if kind == "json_invalid":
        return "body: not valid JSON"
    if kind in ("string_too_long", "too_long"):
        limit = (err.get("ctx") or {}).get("max_length")
        size = len(value) if hasattr(value, "__len__") else "?"
        unit = "characters" if kind == "string_too_long" else "entries"
        return f"{field}: {size} {unit}; the limit is {limit}"
    if kind in _JSON_TYPE:
        what = "a string" if isinstance(value, str) else type(value).__name__
        if value is None:
            what = "null"
        return f"{field}: must be {_JSON_TYPE[kind]}, not {what} (got {_short(value)})"
    return f"{field}: {err['msg'].removeprefix('Value error, ')} (got {_short(value)})"


def refusal(errors: list[dict[str, Any]], endpoint: Any) -> CFError:
    """The single answer for a refused request: an old-name pointer first, else every problem."""
    model = body_model(endpoint) if endpoint is not None else None
    texts: list[str] = []
    for err in errors:
        d = describe(err, model)
        if isinstance(d, CFError):
            return d
        if d not in texts:
            texts.append(d)
    return bad_request("; ".join(texts))
