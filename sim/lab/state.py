"""Compatibility re-export: the lab state file moved to :mod:`sim.state` (import it from there)."""

from sim.state import *  # noqa: F403
