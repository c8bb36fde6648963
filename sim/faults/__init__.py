"""Faults injected on links and nodes: one registry of kinds (sim.faults.kinds) for every front end.

The package itself only exposes the kinds, which sit low (topology and scenario models use them);
applying faults to a running lab is :mod:`sim.faults.apply`, above the lab state file.
"""

from sim.faults.kinds import HELP, KINDS, FaultError, FaultSpec, parse_fault

__all__ = ["HELP", "KINDS", "FaultError", "FaultSpec", "parse_fault"]


def __getattr__(name: str) -> object:
    """``from sim.faults import apply_fault`` keeps working; the import is deferred because
    applying faults sits above the lab state file, while the kinds sit below the topology model."""
    if name in ("apply_fault", "clear_faults", "active_faults"):
        from sim.faults import apply

        return getattr(apply, name)
    raise AttributeError(f"module 'sim.faults' has no attribute {name!r}")
