"""JSON Schema of the topology file, generated from the pydantic model so the two cannot drift.

Editors use it (the shipped topologies point at it with a ``yaml-language-server`` comment) and
``cnilab schema --check`` / a test fail when the committed copy is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnilab.sim.runtime import shipped
from cnilab.sim.topology.model import Topology

SCHEMA_PATH = shipped.schema_path("topology")


def topology_schema() -> dict[str, Any]:
    schema = Topology.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cnilab.invalid/topology.schema.json",
        **schema,
        "title": "cnilab topology",
    }


def render() -> str:
    return json.dumps(topology_schema(), indent=2, sort_keys=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def schema_is_current(path: Path = SCHEMA_PATH) -> bool:
    try:
        return path.read_text(encoding="utf-8") == render()
    except FileNotFoundError:
        return False
