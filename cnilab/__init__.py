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
CHECKOUT: Path | None = None
"""The source checkout these modules are loaded from (an editable install, or PYTHONPATH=CHECKOUT
without an install); None when cnilab was installed from a wheel. Building the edge container
image needs it: the image installs cnilab from source."""
if not (_here / "sim").is_dir() and (_here.parent / "sim" / "__init__.py").is_file():
    # the checkout's folders are the subpackages, also when nothing is installed
    CHECKOUT = _here.parent
    __path__.append(str(CHECKOUT))

from cnilab.sim import __version__  # noqa: E402

__all__ = ["__version__"]
