"""Shared fixtures: isolated lab state, unique lab names, root skipping, and a namespace safety net.

Several engineers run tests on this machine at once, and /run/netns is shared: every lab a test
makes uses a unique name and a state dir under pytest's tmp dir, and namespaces record that dir as
their owner (see cnilab.sim.runtime.cleanup). The session safety net removes exactly the namespaces whose owner
is under *this* run's tmp dir - never a colleague's - and fails loudly if it had to, because a leak
is a bug in the test or the code under test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cnilab.sim.runtime.files import exclusive_lock

from tests import labs
from tests.labs import MiniLab, NsPair

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root / CAP_NET_ADMIN to create network namespaces")
    if not IS_ROOT:
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


ENGINE_MODULES = frozenset({"test_docker_engine", "test_docker_backend", "test_clab_attach"})
ENGINE_LOCK = Path("/run/lock/cnilab-tests-container-engine.lock")


@pytest.fixture(scope="module", autouse=True)
def _container_engine_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """One module at a time may use the machine's container engine.

    These modules start, stop or ask for podman's service and its default socket, and one of them
    checks what happens when *no* engine answers: another module's running engine would turn that
    test into a skip. ``scripts/run-tests.sh`` runs modules on parallel pytest-xdist workers (and a
    colleague's run may share the machine), so each of them holds a machine-wide lock for its whole
    module; every other module passes straight through.
    """
    if request.module.__name__.rpartition(".")[2] not in ENGINE_MODULES:
        yield
        return
    with exclusive_lock(ENGINE_LOCK):
        yield


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CNILAB_STATE_DIR under tmp_path, so labs of parallel runs never see each other's state."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("CNILAB_STATE_DIR", str(d))
    return d


@pytest.fixture
def lab_name() -> str:
    """A unique lab name (namespaces become cnilab-t-xxxxxxxx-<node>)."""
    return f"t-{uuid.uuid4().hex[:8]}"


def _leaked_namespaces(base: Path) -> list[str]:
    from cnilab.sim.runtime.cleanup import list_cnilab_netns, netns_owner

    out = []
    for ns in list_cnilab_netns():
        owner = netns_owner(ns)
        if owner is not None and str(owner.resolve()).startswith(str(base)):
            out.append(ns)
    return out


RUN_ID = uuid.uuid4().hex
RUN_TAG = f"CNILAB_TEST_RUN={RUN_ID}"
"""In this run's environment (set by the session safety net): a process started by this run
inherits it, a colleague's does not."""


def _engine_services() -> set[int]:
    """PIDs of podman's Docker-compatible service (cnilab starts one when no engine answers) that
    this run started (they carry its tag in their environment)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"podman") and b"service" in argv:
                try:
                    ours = RUN_TAG.encode() in (d / "environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if ours:
                    out.add(int(d.name))
    return out


@pytest.fixture(scope="session", autouse=True)
def _netns_safety_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ["CNILAB_TEST_RUN"] = RUN_ID
    yield
    if not IS_ROOT:
        return
    from cnilab.sim.runtime.cleanup import kill_pids, remove_netns

    base = tmp_path_factory.getbasetemp().resolve()
    leaked = _leaked_namespaces(base)
    for ns in leaked:
        remove_netns(ns)
    # A container engine this run started and nobody stopped (its PID file may have gone with a
    # temporary state root): the CI must leave no process behind.
    engines = sorted(_engine_services())
    kill_pids(engines)
    if leaked or engines:
        pytest.fail(f"tests leaked network namespaces {leaked} / container engine services {engines} "
                    "(removed now)", pytrace=False)


@pytest.fixture
def ns_pair(tmp_path: Path) -> Iterator[NsPair]:
    """Two tagged namespaces joined by a veth (see tests.labs.ns_pair); skipped without root."""
    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    with labs.ns_pair(tmp_path) as pair:
        yield pair


@pytest.fixture
def short_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private state dir with a short path (not under the test's own, long, tmp_path): FRR's unix
    socket paths in a node dir must stay under 108 bytes. No lab may be left in it (tests.labs.private_state)."""
    with labs.private_state(tmp_path_factory.mktemp("s")) as d:
        yield d


@pytest.fixture
def mini_lab(short_state: Path) -> Iterator[Callable[..., MiniLab]]:
    """``mini_lab(plan, nodes, extra_routes=...)``: some nodes of a plan on the netns backend, destroyed
    at the end of the test (see tests.labs.MiniLab)."""
    with labs.mini_labs() as make:
        yield make


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    """Base URL of the mock API serving a private database for this test."""
    from cnilab.mock_api.config import load_settings
    from cnilab.mock_api.testing import serve

    with serve(load_settings(db=tmp_path / "api.sqlite3")) as url:
        yield url


@pytest.fixture
def sdk(api: str) -> Iterator[object]:
    """Cloudflare's official Python SDK pointed at :func:`api` (skipped where the dev dependency is missing)."""
    cloudflare = pytest.importorskip("cloudflare", reason="official SDK (dev dependency) not installed")
    from cnilab.mock_api.config import DEV_TOKEN

    client = cloudflare.Cloudflare(api_token=DEV_TOKEN, base_url=f"{api}/client/v4", max_retries=0)
    yield client
    client.close()
