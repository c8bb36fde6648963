"""The backend registry (cnilab.sim.backends.registry): one table the CLI, the state file and the orchestrator read."""

from __future__ import annotations

import typing

import pytest
from cnilab.sim.backends.base import Backend, BackendError
from cnilab.sim.backends.registry import BACKENDS, backend_kind, backend_names, make_backend
from cnilab.sim.state import LabState


def test_the_state_file_accepts_exactly_the_registered_backends():
    assert set(typing.get_args(LabState.model_fields["backend"].annotation)) == set(backend_names())


def test_every_registered_backend_loads_a_backend_class_of_that_name():
    pytest.importorskip("docker")
    for kind in BACKENDS.values():
        cls = kind.load()
        assert issubclass(cls, Backend) and cls.name == kind.name, kind


def test_make_backend_builds_only_with_backends_that_build(tmp_path):
    be = make_backend("netns", "obs-reg", tmp_path)
    assert be.name == "netns" and be.lab == "obs-reg"
    with pytest.raises(BackendError, match=r"only attaches.*choose netns or docker"):
        make_backend("containerlab", "obs-reg", tmp_path)
    with pytest.raises(BackendError, match="unknown backend 'lxc'; choose netns, docker, containerlab"):
        backend_kind("lxc")
    assert backend_names(builds=True) == ["netns", "docker"] and backend_names(builds=False) == ["containerlab"]


def test_cli_backend_options_come_from_the_registry():
    from cnilab.sim.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    up_help = " ".join(runner.invoke(app, ["up", "--help"]).output.replace("│", " ").split())
    assert all(f"{k.name}: {k.help}" in up_help for k in BACKENDS.values() if k.builds)
    refused = runner.invoke(app, ["up", "topologies/v1-gre.yml", "--backend", "containerlab"])
    assert refused.exit_code != 0 and "only attaches" in refused.output and "choose netns or docker" in refused.output
    refused = runner.invoke(app, ["status", "--backend", "lxc"])
    assert refused.exit_code != 0 and "choose netns, docker, containerlab" in refused.output
