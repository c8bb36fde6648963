"""Compatibility re-export: this module moved to :mod:`sim.runtime.names` (import it from there)."""

from sim.runtime.names import *  # noqa: F403
