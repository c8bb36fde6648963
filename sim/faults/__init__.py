"""Faults injected on links and nodes: carrier, loss, delay, rate, blackhole, protocol drops, optics."""

from sim.faults.apply import active_faults, apply_fault, clear_faults
from sim.faults.spec import HELP, KINDS, FaultError, FaultSpec, parse_fault

__all__ = ["HELP", "KINDS", "FaultError", "FaultSpec", "active_faults", "apply_fault", "clear_faults", "parse_fault"]
