"""Compatibility re-export: this module moved to :mod:`cnilab.sim.runtime.nsenter` (import it from there)."""

from cnilab.sim.runtime.nsenter import *  # noqa: F403
