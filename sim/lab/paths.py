"""Compatibility re-export: this module moved to :mod:`sim.runtime.paths` (import it from there)."""

from sim.runtime.paths import *  # noqa: F403
