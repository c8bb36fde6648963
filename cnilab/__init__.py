"""cnilab: a rehearsal lab for Cloudflare Network Interconnect (CNI).

The distribution installs one import namespace: ``cnilab.sim`` (the lab, the simulator and the
``cnilab`` CLI), ``cnilab.mock_api`` (the mock CNI API), ``cnilab.topologies`` and
``cnilab.containerlab`` (shipped data). In a checkout those are the folders ``sim/``, ``mock_api/``,
``topologies/`` and ``containerlab/`` beside this one (``setup.py`` maps them); generic names such as
``sim`` are never installed at the top level of site-packages.
"""

from __future__ import annotations

from pathlib import Path

_here = Path(__file__).resolve().parent
if not (_here / "sim").is_dir() and (_here.parent / "sim" / "__init__.py").is_file():
    # A checkout put on sys.path by hand (PYTHONPATH=CHECKOUT, no install): its folders are the
    # subpackages. Installed (wheel or editable), the packages are found where they were installed.
    __path__.append(str(_here.parent))

from cnilab.sim import __version__  # noqa: E402

__all__ = ["__version__"]
