"""The docker backend finds its engine by itself: podman's service is started when no engine
answers (and stopped again when the last container lab is gone), and a lab that cannot be built
fails with that one reason - never with a teardown report for a lab that never existed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cnilab(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_no_engine_fails_before_building_and_names_the_command(tmp_path):
    env = {"CNILAB_STATE_DIR": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    r = _cnilab(["up", str(REPO / "topologies" / "v1-gre.yml"), "--backend", "docker", "--name", "dk-none"], env)
    assert r.returncode == 2, r.stdout + r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    assert "no container engine answers" in out and "scripts/podman-service.sh" in out, out
    assert "teardown" not in out and "Traceback" not in out, out
    assert not (tmp_path / "labs").exists() or not any((tmp_path / "labs").iterdir())


@pytest.mark.root
@pytest.mark.containers
def test_podman_service_is_started_when_no_engine_answers_and_stopped_when_unused(tmp_path, monkeypatch):
    docker = pytest.importorskip("docker")
    from cnilab.sim.backends import docker as dk

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    try:
        dk.ping_engine(dk.engine_url(), 5).close()
        pytest.skip("an engine already answers here (someone else's): nothing to start, and not ours to stop")
    except docker.errors.DockerException:
        pass
    client = dk.connect()
    try:
        assert "podman" in client.version()["Components"][0]["Name"].lower()
        pid = int(dk.PodmanService.pid_file().read_text())
        assert Path(f"/proc/{pid}").exists()
        assert dk.PodmanService.stop_if_unused(client) is True
    finally:
        client.close()
    assert not dk.PodmanService.pid_file().exists()
    with pytest.raises(docker.errors.DockerException):
        dk.ping_engine(f"unix://{dk.PODMAN_SOCK}", 2)


@pytest.mark.root
@pytest.mark.containers
@pytest.mark.parametrize("command", [["status", "--lab"], ["down", "--lab"], ["bgp", "--lab"]])
def test_looking_up_a_lab_never_starts_an_engine(tmp_path, monkeypatch, command):
    """`--lab NAME` asks whether NAME is a containerlab deployment; with no engine running the answer
    is no. Starting podman's service to ask left it running for good (its PID file in a state root
    that was gone): the CI's leak, found after a hypothesis run of `status --lab <random>`."""
    docker = pytest.importorskip("docker")
    from cnilab.sim.backends import docker as dk

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    try:
        dk.ping_engine(dk.engine_url(), 5).close()
        pytest.skip("an engine already answers here (someone else's): this needs none running")
    except docker.errors.DockerException:
        pass
    r = _cnilab([*command, "t-no-such-lab"], {"CNILAB_STATE_DIR": str(tmp_path)})
    assert r.returncode == 2 and "no lab named 't-no-such-lab'" in " ".join((r.stdout + r.stderr).split()), r
    with pytest.raises(docker.errors.DockerException):
        dk.ping_engine(f"unix://{dk.PODMAN_SOCK}", 2)
    assert not (tmp_path / "podman-service.pid").exists()
