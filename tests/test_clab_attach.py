"""``--backend containerlab``: cnilab's tools attached to a lab containerlab deployed from our export.

The deployment is emulated faithfully (tests/clab_emulator.py: containers ``clab-<lab>-<node>``,
veths per the ``links``, the nodes' ``exec`` lines, ``/run/netns`` links, the edge image's own
entrypoint), since this machine has no containerlab binary. Then, through the CLI: BGP really
Established between the edge container's ExaBGP and the FRR container, a blackhole really taking
BFD down (and a ping across the interconnect really failing) until it is cleared, ``status``, and
``down`` refusing to remove what containerlab owns.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cnilab.sim.testing import wait_for
from typer.testing import CliRunner

from tests import clab_emulator

HEAVY = (pytest.mark.root, pytest.mark.containers, pytest.mark.daemons, pytest.mark.slow)


def heavy(fn: Any) -> Any:
    """Marks of the tests that deploy containers and run real ExaBGP/FRR."""
    for mark in HEAVY:
        fn = mark(fn)
    return fn

REPO = Path(__file__).resolve().parents[1]
V1 = REPO / "topologies" / "v1-gre.yml"
SERVICE = REPO / "scripts" / "podman-service.sh"


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[Any, Any]]:
    """A Docker API client on a podman service of this module's own (a private socket, so a
    colleague's run stopping *its* service cannot pull the engine from under this one), else an
    engine that already answers (Docker); plus the local images. DOCKER_HOST points the CLI at it."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    pytest.importorskip("docker")
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.backends.docker import connect

    sock = Path(f"/tmp/cnilab-clab-{uuid.uuid4().hex[:8]}.sock")
    started = ""
    with pytest.MonkeyPatch.context() as mp:
        if SERVICE.exists() and not subprocess.run(["which", "podman"], capture_output=True).returncode:
            res = subprocess.run([str(SERVICE)], capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "CNILAB_PODMAN_SOCK": str(sock)})
            if res.returncode != 0:
                pytest.skip(f"podman's service could not be started: {res.stderr.strip()}")
            started = res.stdout.strip()
            mp.setenv("DOCKER_HOST", f"unix://{sock}")
        try:
            client = connect()
        except BackendError as exc:
            pytest.skip(f"no container engine: {exc}")
        try:
            from cnilab.sim.export.images import ensure_local_images

            name = client.version().get("Components", [{}])[0].get("Name", "").lower()
            yield client, ensure_local_images(client, engine="podman" if "podman" in name else "docker")
        finally:
            client.close()
            if started:
                subprocess.run([str(SERVICE), "--stop", started], timeout=30)
            sock.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def clab(engine: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[clab_emulator.Deployment]:
    """v1-gre exported under a unique lab name and deployed as containerlab would; all removed after."""
    from cnilab.sim.backends.docker import _ulimits
    from cnilab.sim.export.containerlab import CONTROL_ROOT, write_export
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    client, images = engine
    lab = f"t-{uuid.uuid4().hex[:8]}"
    res = write_export(build_plan(load_topology(V1), lab), tmp_path_factory.mktemp("clab"), images=images,
                       source=V1.name)
    with clab_emulator.deploy(Path(res.directory) / f"{lab}.clab.yml", client, ulimits=_ulimits()) as dep:
        yield dep
    left = client.containers.list(all=True, filters={"label": f"containerlab={lab}"})
    assert left == [], f"containers left behind: {[c.name for c in left]}"
    assert not list(clab_emulator.NETNS_DIR.glob(f"clab-{lab}-*")), "netns links left behind"
    assert not (Path(CONTROL_ROOT) / lab).exists(), "control-socket dir left behind"
    host = [ln.split()[0] for ln in subprocess.run(["ip", "-br", "link"], capture_output=True,
                                                      text=True).stdout.splitlines() if ln.strip()]
    assert not [n for n in host if re.fullmatch(r"ce[0-9a-f]{8}[ab](@.*)?", n)], "a veth end stranded on the host"


def cli(*args: str) -> Any:
    from cnilab.sim.cli.main import app

    return CliRunner().invoke(app, list(args))


def _json(res: Any) -> Any:
    assert res.stdout.strip(), f"no output (exit {res.exit_code}): {res.output}"
    return json.loads(res.stdout)


def _established(lab: str) -> bool:
    res = cli("bgp", "--backend", "containerlab", "--lab", lab, "--json")
    return res.exit_code == 0 and all(s["state"] == "Established" for s in _json(res))


def _bfd(lab: str) -> list[dict[str, Any]]:
    return _json(cli("bfd", "--backend", "containerlab", "--lab", lab, "--json"))


@heavy
def test_bgp_established_through_attach(clab: clab_emulator.Deployment, state_dir: Path) -> None:
    from cnilab.sim.export.containerlab import CONTROL_ROOT
    from cnilab.sim.state import LabState

    lab = clab.lab
    # every exec line of the export worked, except kernel GRE (no ip_gre module on this host)
    assert all("gre" in f for f in clab.exec_failures), clab.exec_failures
    assert not LabState.exists(lab)
    # no cnilab state, clab-LAB-* exist: --lab alone auto-detects the containerlab deployment
    res = wait_for(lambda: (r := cli("bgp", "--lab", lab, "--json")).exit_code == 0 and r, 60, 0.5,
                   what="BGP Established")
    sessions = _json(res)
    assert {s["key"]: s["state"] for s in sessions} == {"ewr1/v4": "Established", "ewr1/v6": "Established"}
    st = LabState.load(lab)
    assert st.backend == "containerlab"
    assert st.control["edge"] == f"{CONTROL_ROOT}/{lab}/cf/control.sock"
    assert st.processes == []  # cnilab owns nothing here
    assert _established(lab)  # and with the explicit --backend


@heavy
def test_blackhole_takes_bfd_down_and_clear_restores(clab: clab_emulator.Deployment, state_dir: Path) -> None:
    from cnilab.sim.lab.lab import Lab

    lab = clab.lab
    wait_for(lambda: _established(lab), 60, 0.5, what="BGP Established")
    # BFD Up at the negotiated 300 ms x 3 (FRR starts slow, then polls down to the configured rate)
    wait_for(lambda: (rows := _bfd(lab)) and all(b["state"] == "Up" and b["detection_ms"] <= 1000 for b in rows),
             30, 0.5, what="BFD Up at 300 ms")
    handle = Lab.attach(lab, "containerlab")
    ping = ["ping", "-c", "1", "-W", "1", "192.0.2.10"]
    assert handle.run("cust", ping, check=False).returncode == 0
    try:
        res = cli("fault", "ewr1", "blackhole", "--backend", "containerlab", "--lab", lab, "--json")
        t0 = time.monotonic()
        assert res.exit_code == 0, res.output
        assert "nftables" in _json(res)[0]["mechanism"]
        wait_for(lambda: (rows := _bfd(lab)) and all(b["state"] != "Up" for b in rows), 10, 0.05,
                 what="BFD Down after the blackhole")
        detected = time.monotonic() - t0
        print(f"BFD down {detected * 1000:.0f} ms after the blackhole")
        assert detected <= 2.5, detected  # 300 ms x 3 = 0.9 s detection, plus slack for a loaded host
        assert handle.run("cust", ping, check=False).returncode != 0  # the drop is real
        listed = _json(cli("fault", "list", "--backend", "containerlab", "--lab", lab, "--json"))
        assert [(f["target"], f["kind"]) for f in listed] == [("ewr1", "blackhole")]
        res = cli("fault", "clear", "ewr1", "--backend", "containerlab", "--lab", lab, "--json")
        assert res.exit_code == 0 and [f["kind"] for f in _json(res)] == ["blackhole"], res.output
        assert handle.run("cust", ping, check=False).returncode == 0
        wait_for(lambda: (rows := _bfd(lab)) and all(b["state"] == "Up" for b in rows), 30, 0.5,
                 what="BFD Up after clear")
        wait_for(lambda: _established(lab), 60, 0.5, what="BGP Established after clear")
    finally:
        cli("fault", "clear", "--all", "--backend", "containerlab", "--lab", lab)


@heavy
def test_status_and_down_refuses(clab: clab_emulator.Deployment, state_dir: Path, engine: tuple[Any, Any]) -> None:
    from cnilab.sim.state import LabState

    lab = clab.lab
    wait_for(lambda: _established(lab), 60, 0.5, what="BGP Established before the refusal")
    res = cli("status", "--backend", "containerlab", "--lab", lab, "--json")
    assert res.exit_code == 0, res.output
    st = _json(res)
    assert (st["backend"], st["status"], st["lab"]) == ("containerlab", "running", lab)
    assert {n["name"]: (n["netns"], n["exists"]) for n in st["nodes"]} == {
        n: (f"clab-{lab}-{n}", True) for n in ("cf", "cust", "inet", "origin")}
    cf_ic = next(i for i in st["interfaces"] if i["node"] == "cf" and i["vlan"])
    assert cf_ic["name"] == "eth2.100" and cf_ic["kernel_name"] in ("eth2.100", "eth2")
    assert st["processes"] == [] and any("containerlab destroy" in n for n in st["notes"])

    res = cli("down", "--lab", lab)
    assert res.exit_code != 0
    assert "deployed by containerlab" in res.output and "containerlab destroy" in res.output, res.output
    client, _ = engine
    assert client.containers.get(f"clab-{lab}-cf").status == "running"
    assert LabState.exists(lab)
    assert _established(lab)  # still working after the refusal


@heavy
def test_down_forgets_the_state_once_containerlab_destroyed_it(clab: clab_emulator.Deployment,
                                                               state_dir: Path) -> None:
    from cnilab.sim.state import LabState

    lab = clab.lab
    assert cli("status", "--lab", lab, "--json").exit_code == 0  # attaching leaves a state dir
    assert LabState.exists(lab)
    clab_emulator.destroy(clab)  # `containerlab destroy`
    st = _json(cli("status", "--lab", lab, "--json"))
    assert st["status"] == "failed" and not any(n["exists"] for n in st["nodes"])
    res = cli("down", "--lab", lab)
    assert res.exit_code == 0, res.output
    assert not LabState.exists(lab) and not (state_dir / "labs" / lab).exists()
    assert cli("bgp", "--lab", lab).exit_code != 0  # nothing left to attach to


# -- bad input: clear errors, nothing created (no root, no engine) -------------------------------------
def test_broken_exported_plan_is_named_with_field_and_value(tmp_path: Path) -> None:
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.lab.attach_clab import load_plan

    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"lab": "x", "topology": "v1-gre", "nodes": "not-a-list"}))
    with pytest.raises(BackendError) as exc:
        load_plan(bad, "x")
    msg = str(exc.value)
    assert str(bad) in msg and "nodes" in msg and "not-a-list" in msg and "cnilab export containerlab" in msg


def test_unknown_backend_and_build_requests_are_refused(state_dir: Path) -> None:
    res = cli("bgp", "--backend", "bogus", "--lab", "nolab")
    assert res.exit_code == 2 and "'bogus': choose netns, docker, containerlab" in res.output, res.output
    res = cli("up", str(V1), "--backend", "containerlab", "--name", f"t-{uuid.uuid4().hex[:8]}")
    assert res.exit_code == 2 and "only attaches" in res.output
    assert not list(state_dir.rglob("state.json"))  # nothing half-built


def test_attach_to_a_lab_that_is_not_deployed_says_so(state_dir: Path) -> None:
    lab = f"t-{uuid.uuid4().hex[:8]}"
    res = cli("bgp", "--backend", "containerlab", "--lab", lab)
    assert res.exit_code == 2 and f"no containerlab lab named {lab!r} is deployed" in res.output, res.output
    assert not (state_dir / "labs" / lab).exists()
