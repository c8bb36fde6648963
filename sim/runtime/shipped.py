"""Files cnilab ships beside its code: topologies, scenarios, schemas, containerlab exports and images.

They are package data of the ``cnilab`` distribution (``cnilab.topologies``, ``cnilab.containerlab``),
found through :mod:`importlib.resources`, so an installed wheel run from any directory reads the same
files as a checkout, and no module needs to know where a repository is. The folders at the root of
a checkout are those packages (``setup.py`` maps them), so writing a schema from a checkout writes
the file that is committed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

TOPOLOGIES = "cnilab.topologies"
CONTAINERLAB = "cnilab.containerlab"


class NotOnDisk(RuntimeError):
    """The package is installed somewhere that is not a directory (a zip): cnilab needs real files."""


def shipped_dir(package: str) -> Path:
    """The directory of a data package; a real path, since daemons and tools are given file names."""
    root = resources.files(package)
    if not isinstance(root, Path):
        raise NotOnDisk(f"{package} is not installed as files on disk ({root!r}); install cnilab unzipped")
    return root


def topologies_dir() -> Path:
    """The shipped topologies (``*.yml``), with ``scenarios/``, ``incidents/``, ``schema/`` below."""
    return shipped_dir(TOPOLOGIES)


def schema_path(name: str) -> Path:
    """``topologies/schema/<name>.schema.json``: the JSON schemas editors and the loaders use."""
    return topologies_dir() / "schema" / f"{name}.schema.json"


def containerlab_dir() -> Path:
    """The containerlab schema, the committed exports and the image build files."""
    return shipped_dir(CONTAINERLAB)


def code_dirs() -> list[Path]:
    """The directories the ``cnilab`` packages are imported from (one in a wheel; the checkout's
    folders in an editable install): what a container needs mounted to run this interpreter's code."""
    import cnilab

    return [Path(p).resolve() for p in cnilab.__path__]


def source_tree() -> Path | None:
    """The source checkout the running code is loaded from (editable install or PYTHONPATH), or None
    for a wheel. Only building the edge container image needs it: the image installs from source."""
    import cnilab

    return cnilab.CHECKOUT
