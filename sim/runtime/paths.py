"""Where lab state lives.

State is kept under ``/run/cnilab`` (tmpfs: a reboot forgets labs whose namespaces it also
forgot). ``CNILAB_STATE_DIR`` moves it, which tests use to keep parallel runs apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnilab.sim.runtime.names import validate_lab_name

NS_PREFIX = "cnilab-"


def state_root() -> Path:
    return Path(os.environ.get("CNILAB_STATE_DIR", "/run/cnilab"))


def lab_dir(lab: str) -> Path:
    """State directory of ``lab``; the name is validated so no input can point outside the root."""
    return state_root() / "labs" / validate_lab_name(lab)


def ns_name(lab: str, node: str) -> str:
    """Namespace of ``node`` in ``lab``: prefixed so labs coexist and orphans are recognisable."""
    return f"{NS_PREFIX}{lab}-{node}"
