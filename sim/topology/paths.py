"""Where the shipped topologies and scenarios are, for commands given a bare name.

``cnilab up v1-gre`` and ``cnilab sim ha-failover-bfd`` work from any directory: a name that is not
a file here is looked up in ``$CNILAB_TOPOLOGIES`` and then among the topologies the package ships
(``cnilab.topologies``, read through importlib.resources).
"""

from __future__ import annotations

import os
from pathlib import Path

from cnilab.sim.runtime import shipped


def topologies_dir() -> Path:
    env = os.environ.get("CNILAB_TOPOLOGIES")
    return Path(env) if env else shipped.topologies_dir()


def default_topology() -> Path:
    return topologies_dir() / "v1-gre.yml"


def _resolve(arg: str | Path, subdirs: tuple[str, ...]) -> Path:
    p = Path(arg)
    if p.exists():
        return p
    for d in (topologies_dir() / s for s in subdirs):
        for cand in (d / p, d / f"{p}.yml"):
            if cand.is_file():
                return cand
    return p


def resolve_topology(arg: str | Path) -> Path:
    """A path as given if it exists; else ``NAME`` or ``NAME.yml`` among the shipped topologies."""
    return _resolve(arg, ("", "scenarios"))


def resolve_scenario(arg: str | Path) -> Path:
    """A path as given if it exists; else ``NAME`` or ``NAME.yml`` among the shipped scenarios."""
    return _resolve(arg, ("scenarios",))
