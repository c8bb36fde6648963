"""Topology model, loader, JSON schema and the resolved lab plan."""

from cnilab.sim.topology.load import ConfigError, load_topology
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.plan import LabPlan, build_plan

__all__ = ["ConfigError", "LabPlan", "Topology", "build_plan", "load_topology"]
