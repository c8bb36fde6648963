"""Faults injected on links and nodes: one registry of kinds (sim.faults.kinds) for every front end.

The package itself only exposes the kinds, which sit low (topology and scenario models use them);
applying faults to a running lab is :mod:`sim.faults.apply`, above the lab state file.
"""

from sim.faults.kinds import HELP, KINDS, FaultError, FaultSpec, parse_fault

__all__ = ["HELP", "KINDS", "FaultError", "FaultSpec", "parse_fault"]
