"""The backends, as data: what each is called, what it does, where its class lives, whether it builds.

A backend's class is imported only when a lab uses it (the docker one needs the Docker SDK and a
container engine, which a netns lab never touches), so the registry names each by ``module:Class``
rather than importing them all to collect a decorator's registrations. CLI help and choices, the
orchestrator's choice of class and its "attach only" handling all read this table.

Adding a backend: a module with a :class:`~cnilab.sim.backends.base.Backend` subclass (``preflight`` to
refuse early, ``adopt`` to take over a running lab's nodes), one :class:`BackendKind` line below,
and its name in ``cnilab.sim.state.LabState.backend`` (``tests/test_backends_registry.py`` compares them).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the table is read by `cnilab down` before the lab layer loads (issue 16)
    from cnilab.sim.backends.base import Backend


@dataclass(frozen=True)
class BackendKind:
    name: str
    help: str
    target: str
    """``module:Class`` of the :class:`~cnilab.sim.backends.base.Backend` subclass."""
    builds: bool = True
    """False: another tool deploys and removes the lab; cnilab only attaches to it."""
    build_refusal: str = ""
    """What to say when asked to build with a backend that only attaches."""
    host_files: bool = False
    """Nodes see the host's filesystem (namespaces, not containers): a helper daemon cnilab runs in a
    node can read and write the lab directory."""

    def load(self) -> type[Backend]:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


BACKENDS: dict[str, BackendKind] = {k.name: k for k in (
    BackendKind("netns", "network namespaces and veth pairs on this host (needs root)",
                "cnilab.sim.backends.netns:NetnsBackend", host_files=True),
    BackendKind("docker", "one container per node on a Docker or Podman engine, cnilab's images",
                "cnilab.sim.backends.docker:DockerBackend"),
    BackendKind("containerlab", "attach to a lab containerlab deployed from a cnilab export",
                "cnilab.sim.backends.containerlab:ContainerlabBackend", builds=False,
                build_refusal="the containerlab backend only attaches to a lab containerlab deployed (`cnilab "
                              "export containerlab`, then `containerlab deploy`)"),
)}


def backend_names(builds: bool | None = None, host_files: bool | None = None) -> list[str]:
    """Registered names; ``builds=True`` only those that can build a lab, False only attach-only ones;
    ``host_files`` likewise on :attr:`BackendKind.host_files`."""
    return [k.name for k in BACKENDS.values()
            if (builds is None or k.builds == builds) and (host_files is None or k.host_files == host_files)]


def backend_kind(name: str) -> BackendKind:
    from cnilab.sim.backends.base import BackendError

    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose {', '.join(backend_names())}") from None


def backends_help(builds: bool | None = None) -> str:
    """One line per backend for CLI help: ``name: what it does``."""
    return "; ".join(f"{k.name}: {k.help}" for k in BACKENDS.values() if builds is None or k.builds == builds)


def make_backend(name: str, lab: str, workdir: Path) -> Backend:
    """A backend that will build lab ``lab``; refused for one that only attaches."""
    from cnilab.sim.backends.base import BackendError

    kind = backend_kind(name)
    if not kind.builds:
        choose = " or ".join(backend_names(builds=True))
        raise BackendError(f"{kind.build_refusal}; to build one here choose {choose}")
    return kind.load()(lab, workdir)
