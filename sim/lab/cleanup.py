"""Compatibility re-export: this module moved to :mod:`cnilab.sim.runtime.cleanup` (import it from there)."""

from cnilab.sim.runtime.cleanup import *  # noqa: F403
