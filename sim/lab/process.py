"""Compatibility re-export: this module moved to :mod:`sim.runtime.process` (import it from there)."""

from sim.runtime.process import *  # noqa: F403
