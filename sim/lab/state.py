"""Compatibility re-export: the lab state file moved to :mod:`cnilab.sim.state` (import it from there)."""

from cnilab.sim.state import *  # noqa: F403
