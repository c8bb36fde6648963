"""Load topology YAML with errors that name the file, the field and the value.

An engineer on a call reads the error once; it has to say exactly where to look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.paths import resolve_topology
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """Bad user input, already phrased for a human: file, field, value, why."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems) if len(problems) == 1 else
                         f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(part, str) and isinstance(data, dict) and part not in data:
            continue  # a tagged-union tag (e.g. `fault` in timeline.1.fault.kind) is not a key in the YAML
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def describe_validation_error(err: ValidationError, data: Any) -> list[str]:
    """Turn pydantic's errors into 'field: value: why' lines."""
    problems = []
    for e in err.errors():
        loc = _user_loc(e["loc"], data)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            problems.append(f"{_loc(loc)}: unknown field (check the spelling; see `cnilab schema`)")
            continue
        if e["type"] == "union_tag_invalid":  # say the value as repr: '\r' or ' ' must stay visible
            ctx = e.get("ctx") or {}
            field = str(ctx.get("discriminator", "")).strip("'")
            problems.append(f"{_loc((*loc, field) if field else loc)} = {ctx.get('tag')!r}: not one of "
                            f"{ctx.get('expected_tags')}")
            continue
        if e["type"] == "missing":
            problems.append(f"{_loc(loc)}: required field is missing")
            continue
        value = _value_at(data, loc)
        if value is None:
            shown = " = null" if _present(data, loc) else ""
        elif isinstance(value, dict | list):
            shown = ""  # a whole mapping is noise; the message names the part that is wrong
        else:
            text = repr(value)
            shown = f" = {text if len(text) <= 80 else text[:77] + '...'}"
        line = f"{_loc(loc)}{shown}: {msg}"
        if line not in problems:  # a union reports once per member type; say it once
            problems.append(line)
    return problems


_INTERNAL = ("function-", "lax-or-strict", "json-or-python", "is-instance", "chain[", "union[", "nullable[")


def _user_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The path as the user wrote it: pydantic's validator and union-member steps removed
    (``prefixes[0].lax-or-strict[...]`` -> ``prefixes[0]``; ``value.float`` -> ``value``)."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(part, str) and (part.startswith(_INTERNAL) or "[" in part):
            continue
        if node is not None and not isinstance(node, dict | list):
            break  # past a scalar: the rest names union members, not fields
        out.append(part)
        try:
            node = node[part] if isinstance(node, dict | list) else None
        except (KeyError, IndexError, TypeError):
            node = node if isinstance(part, str) and isinstance(node, dict) else None
    return tuple(out)


def _present(data: Any, loc: tuple[Any, ...]) -> bool:
    """Whether the last key of ``loc`` is written (as null) rather than missing."""
    parent = _value_at(data, loc[:-1]) if loc else None
    if isinstance(parent, list):
        return isinstance(loc[-1], int) and 0 <= loc[-1] < len(parent)
    return bool(loc) and isinstance(parent, dict) and loc[-1] in parent


def read_config_text(path: Path, what: str = "file") -> str:
    """The text at ``path``; a file that cannot be read is a :class:`ConfigError` that names it and says why."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read {what}: {exc.strerror}"]) from exc


def load_model(path: Path | str, model: type[M]) -> M:
    """Read YAML at ``path`` into ``model``; every failure becomes a :class:`ConfigError`."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError(path, ["expected a mapping at the top level"])
    try:
        obj = model.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(path, describe_validation_error(exc, data)) from exc
    return obj


def load_topology(path: Path | str) -> Topology:
    """Load and validate a topology; relative router config paths resolve against the file.

    A bare name (``v1-gre``) that is not a file here is looked up among the shipped topologies.
    """
    path = resolve_topology(path)
    topo = load_model(path, Topology)
    router = topo.customer.router
    if router.config is not None and not router.config.is_absolute():
        router.config = (Path(path).parent / router.config).resolve()
    if router.config is not None and not router.config.is_file():
        raise ConfigError(path, [f"customer.router.config = '{router.config}': file not found"])
    if isinstance(router.dataplane, Path):
        if not router.dataplane.is_absolute():
            router.dataplane = (Path(path).parent / router.dataplane).resolve()
        check_dataplane(router.dataplane)
    return topo


def check_dataplane(spec: Path) -> None:
    """Parse the customer's dataplane file now, so a bad line is refused before any lab exists."""
    from cnilab.sim.dataplane.declared import DataplaneSyntaxError, load_dataplane

    try:
        load_dataplane(spec)
    except DataplaneSyntaxError as exc:
        where = f"line {exc.line}: {exc.text!r}: " if exc.line else ""
        raise ConfigError(exc.path, [f"customer.router.dataplane: {where}{exc.why}"]) from None
