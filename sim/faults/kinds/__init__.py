"""The fault kinds (one class each) and their registry; see base.py for the contract.

Kinds are listed (help texts, schema enums) in the order they register: carrier faults, silent
filters, then shaping.
"""

from typing import Literal

from cnilab.sim.faults.kinds import carrier, filters, shaping  # noqa: F401 - registers the kinds
from cnilab.sim.faults.kinds.base import (
    EVERYTHING,
    REGISTRY,
    FaultKind,
    FaultSpec,
    SimEffect,
    Traffic,
    fault_kind,
    parse_fault,
)
from cnilab.sim.faults.mechanisms import FaultError

KINDS: tuple[str, ...] = tuple(REGISTRY)
FaultKindName = Literal[KINDS]  # type: ignore[valid-type]
"""The kind names as a Literal for pydantic models: schema enums follow the registry."""
HELP: dict[str, str] = {k: REGISTRY[k].help for k in KINDS}
EXAMPLES: str = ", ".join(REGISTRY[k].example or "" for k in KINDS if REGISTRY[k].example)

__all__ = ["EVERYTHING", "EXAMPLES", "HELP", "KINDS", "REGISTRY", "FaultError", "FaultKind", "FaultKindName",
           "FaultSpec", "SimEffect", "Traffic", "fault_kind", "parse_fault"]
