"""Compatibility re-export: this module moved to :mod:`cnilab.sim.runtime.paths` (import it from there)."""

from cnilab.sim.runtime.paths import *  # noqa: F403
