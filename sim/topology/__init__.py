"""Topology model, loader, JSON schema and the resolved lab plan."""

from sim.topology.load import ConfigError, load_topology
from sim.topology.model import Topology
from sim.topology.plan import LabPlan, build_plan

__all__ = ["ConfigError", "LabPlan", "Topology", "build_plan", "load_topology"]
