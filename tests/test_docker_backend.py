"""The docker backend on a real engine (podman's Docker-compatible socket here): containers up,
veths wired into their namespaces, packets across the interconnect, the v1 GRE MTU, BGP between
the FRR and edge containers, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.containers, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
V1 = REPO / "topologies" / "v1-gre.yml"
SERVICE = REPO / "scripts" / "podman-service.sh"


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    """A Docker API client: an engine that already answers, or podman's service started here (and
    stopped again at the end - only if this fixture started it). Images built once, cached."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    docker = pytest.importorskip("docker")
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.backends.docker import PodmanService, connect, engine_url, ping_engine

    started = ""
    try:
        ping_engine(engine_url(), 5).close()
        answered = True
    except docker.errors.DockerException:
        answered = False  # connect() below starts podman's service: this fixture must stop it
    try:
        client = connect()
    except BackendError:
        if not SERVICE.exists() or subprocess.run(["which", "podman"], capture_output=True).returncode:
            pytest.skip("no container engine: no Docker socket and podman is not installed")
        res = subprocess.run([str(SERVICE)], capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            pytest.skip(f"no container engine could be started: {res.stderr.strip()}")
        started = res.stdout.strip()
        client = connect()
    try:
        from cnilab.sim.export.images import ensure_local_images

        engine_name = "podman" if "podman" in client.version().get("Components", [{}])[0].get("Name", "").lower() \
            else "docker"
        images = ensure_local_images(client, engine=engine_name)
        yield client, images
    finally:
        client.close()
        if started:
            subprocess.run([str(SERVICE), "--stop", started], timeout=30)
        elif not answered:  # the service connect() started (its PID file is in this session's state root)
            PodmanService.stop_if_unused(force=True)
        del docker


def _lab(engine: tuple, lab_name: str, daemons: bool):
    from cnilab.sim.backends.docker import DockerBackend
    from cnilab.sim.lab import lab as labmod
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    client, images = engine
    plan = build_plan(load_topology(V1), lab_name)
    orig = labmod.make_backend

    def make(kind: str, lab: str, workdir: Path):
        assert kind == "docker"
        return DockerBackend(lab, workdir, images=images, client=client)

    labmod.make_backend = make  # the images this session built, on the engine this session found
    try:
        return labmod.Lab.create(plan, "docker", daemons=daemons, ready_timeout=60)
    finally:
        labmod.make_backend = orig


def _assert_gone(client, lab_name: str) -> None:
    from cnilab.sim.backends.docker import NETNS_DIR

    left = client.containers.list(all=True, filters={"label": f"cnilab.lab={lab_name}"})
    assert left == [], f"containers left behind: {[c.name for c in left]}"
    assert not [p for p in NETNS_DIR.glob(f"cnilab-{lab_name}-*")], "netns links left behind"
    host = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "ewr1" not in host and " cv" not in host  # no veth end stranded on the host


def test_v1_lab_in_containers_wires_veths_and_enforces_gre_mtu(engine, state_dir, lab_name) -> None:
    client, images = engine
    try:
        with _lab(engine, lab_name, daemons=False) as lab:
            ctrs = {c.labels["cnilab.node"]: c for c in
                    client.containers.list(filters={"label": f"cnilab.lab={lab_name}"})}
            assert sorted(ctrs) == ["cf", "cust", "inet", "origin"]
            assert ctrs["cust"].attrs["Config"]["Image"].endswith(images.customer.split("/", 1)[1])
            assert all(c.status == "running" for c in ctrs.values())
            # the container's own userland: the FRR image has FRR, the hosts do not
            assert lab.run("cust", ["test", "-x", "/usr/lib/frr/bgpd"], check=False).returncode == 0
            assert lab.run("inet", ["test", "-x", "/usr/lib/frr/bgpd"], check=False).returncode != 0
            # veth ends live inside the containers' namespaces, with the plan's MTU
            for node in ("cf", "cust"):
                out = lab.run(node, ["ip", "-o", "link", "show", "ewr1"]).stdout
                assert "mtu 1500" in out and "state UP" in out
                pid = ctrs[node].attrs["State"]["Pid"]
                assert os.stat(lab.netns_path(node)).st_ino == os.stat(f"/proc/{pid}/ns/net").st_ino
            # across the interconnect, and end to end through both routers
            lab.run("cust", ["ping", "-c", "1", "-W", "2", "192.0.2.10"])
            lab.run("cust", ["ping", "-6", "-c", "1", "-W", "2", "2001:db8:12:3::7ac2:d64a"])
            # v1: customer->CF rides GRE with the profile's 1476 MTU: 1476 with DF passes, 1477 does not
            tun = lab.plan.tunnels[0]
            assert tun.mtu == 1476
            ok = lab.run("cust", ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(tun.mtu - 28),
                                  "-I", tun.cust_ifname, str(tun.cf_inner.ip)], check=False)
            assert ok.returncode == 0, ok.stdout + ok.stderr
            big = lab.run("cust", ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(tun.mtu - 27),
                                   "-I", tun.cust_ifname, str(tun.cf_inner.ip)], check=False)
            assert big.returncode != 0 and " 0 received" in big.stdout
    finally:
        _assert_gone(client, lab_name)


@pytest.mark.daemons
def test_v1_bgp_between_frr_and_edge_containers(engine, short_state, lab_name) -> None:
    from cnilab.sim.routers import customer_bgp

    client, _ = engine
    try:
        with _lab(engine, lab_name, daemons=True) as lab:
            deadline = time.monotonic() + 60  # FRR connects every 5 s; hold 9 s: generous bound
            while True:
                sessions = customer_bgp(lab)
                states = {str(s.get("peer")): str(s.get("state")) for s in sessions}
                if len(states) == 2 and all(st.lower() == "established" for st in states.values()):
                    break
                assert time.monotonic() < deadline, f"BGP not established within 60 s: {states}"
                time.sleep(1)
            assert set(states) == {"192.0.2.10", "2001:db8:12:3::7ac2:d64a"}
            # FRR ran from the FRR image inside the cust container
            ps = lab.run("cust", ["ps", "-eo", "comm"]).stdout.split()
            assert "bgpd" in ps and "zebra" in ps
    finally:
        _assert_gone(client, lab_name)
