"""Compatibility re-export: this module moved to :mod:`cnilab.sim.runtime.names` (import it from there)."""

from cnilab.sim.runtime.names import *  # noqa: F403
