"""Where the shipped topologies and scenarios are, for commands given a bare name.

``cnilab up v1-gre`` should work from any directory: a name without a path is looked up in
``$CNILAB_TOPOLOGIES`` and then in the ``topologies/`` directory of this checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import sim


def topologies_dir() -> Path:
    env = os.environ.get("CNILAB_TOPOLOGIES")
    return Path(env) if env else Path(sim.__file__).resolve().parent.parent / "topologies"


def default_topology() -> Path:
    return topologies_dir() / "v1-gre.yml"


def resolve_topology(arg: str | Path) -> Path:
    """A path as given if it exists; else ``NAME`` or ``NAME.yml`` among the shipped topologies."""
    p = Path(arg)
    if p.exists():
        return p
    for cand in (topologies_dir() / p, topologies_dir() / f"{p}.yml", topologies_dir() / "scenarios" / f"{p}.yml"):
        if cand.exists():
            return cand
    return p
