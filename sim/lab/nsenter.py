"""Compatibility re-export: this module moved to :mod:`sim.runtime.nsenter` (import it from there)."""

from sim.runtime.nsenter import *  # noqa: F403
