"""Compatibility re-export: this module moved to :mod:`cnilab.sim.runtime.process` (import it from there)."""

from cnilab.sim.runtime.process import *  # noqa: F403
