"""Faults injected on links and nodes: one registry of kinds (cnilab.sim.faults.kinds) for every front end.

The package itself only exposes the kinds, which sit low (topology and scenario models use them);
applying faults to a running lab is :mod:`cnilab.sim.faults.apply`, above the lab state file.
"""

from cnilab.sim.faults.kinds import HELP, KINDS, FaultError, FaultSpec, parse_fault

__all__ = ["HELP", "KINDS", "FaultError", "FaultSpec", "parse_fault"]


def __getattr__(name: str) -> object:
    """``from cnilab.sim.faults import apply_fault`` keeps working; the import is deferred because
    applying faults sits above the lab state file, while the kinds sit below the topology model."""
    if name in ("apply_fault", "clear_faults", "active_faults"):
        from cnilab.sim.faults import apply

        return getattr(apply, name)
    raise AttributeError(f"module 'cnilab.sim.faults' has no attribute {name!r}")
