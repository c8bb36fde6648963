"""Compatibility re-export: this module moved to :mod:`sim.runtime.cleanup` (import it from there)."""

from sim.runtime.cleanup import *  # noqa: F403
