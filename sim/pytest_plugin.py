"""pytest plugin (entry point ``pytest11``): fixtures to test a router config against cnilab.

Users write their own acceptance tests in a few lines::

    def test_peers_with_cloudflare(edge):
        sessions = edge.wait_established(timeout=60)
        assert all(s.prefixes_accepted >= 1 for s in sessions)

Options: ``--cnilab-topology FILE`` (default topologies/v1-gre.yml), ``--cnilab-customer-config
FILE`` and ``--cnilab-kind KIND`` (default: sniffed from the file) to run your own router
config in the lab. Fixtures: ``cni_plan`` (the resolved LabPlan), ``cni_lab`` (a running lab,
removed afterwards even when the test fails), ``edge`` (the Cloudflare edge's control client),
``cni_converged`` (the edge client once BGP is up with prefixes exchanged and BFD runs at the
configured timers), ``cni_observer`` (a :class:`cnilab.sim.observe.observer.LabObserver` recording transitions),
``cni_api`` (a mock CNI API on a free local port with a fresh database). Checks: ``cnilab.sim.checks``
(``bgp_up``, ``bfd_at_timers``, ``detection``, ``wait_torn_down``: the ones ``cnilab demo``,
``test`` and ``rehearse`` use). Helpers: ``cnilab.sim.testing.wait_for``, ``wait_json``, ``json_subset``.
A full example: examples/test_my_router.py.
Nothing is imported from the lab until a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cnilab.sim.facts import router_kind_names


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("cnilab", "cnilab: rehearse a Cloudflare Network Interconnect")
    g.addoption("--cnilab-topology", default=None, help="Topology YAML for the cni_lab fixture")
    g.addoption("--cnilab-customer-config", default=None, help="Your router config, run as the customer router")
    g.addoption("--cnilab-kind", default=None, choices=router_kind_names(in_lab=True),
                help="Kind of --cnilab-customer-config")
    g.addoption("--cnilab-dataplane", default=None,
                help="Your side of the dataplane (ip/nft/iptables lines: GRE tunnel, MSS clamp)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cnilab_topology(path): topology for the cni_lab fixture of this test/module")


def _topology_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("cnilab_topology")
    if marker:
        return Path(marker.args[0])
    opt = request.config.getoption("--cnilab-topology")
    if opt:
        return Path(opt)
    from cnilab.sim.topology.paths import default_topology

    return default_topology()


@pytest.fixture(scope="module")
def cni_plan(request: pytest.FixtureRequest):
    """The LabPlan the lab will be built from (topology + your customer config, if given)."""
    from cnilab.sim.topology import build_plan, load_topology

    topo = load_topology(_topology_path(request))
    cfg = request.config.getoption("--cnilab-customer-config")
    if cfg:
        from cnilab.sim.rehearse.runner import sniff_kind

        path = Path(cfg).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--cnilab-customer-config {cfg}: file not found")
        router = topo.customer.router.model_copy(update={
            "config": path,
            "kind": request.config.getoption("--cnilab-kind") or sniff_kind(path) or topo.customer.router.kind})
        topo = topo.model_copy(update={"customer": topo.customer.model_copy(update={"router": router})})
    dp = request.config.getoption("--cnilab-dataplane")
    if dp:
        from cnilab.sim.topology.load import ConfigError, check_dataplane

        path = Path(dp).resolve()
        try:
            check_dataplane(path)
        except ConfigError as exc:
            raise pytest.UsageError(f"--cnilab-dataplane: {exc}") from None
        topo.customer.router.dataplane = path
    return build_plan(topo, f"pt-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def cni_lab(cni_plan) -> Iterator[Any]:
    """A running lab (root needed); always torn down, even when the module's tests fail."""
    if os.geteuid() != 0:
        pytest.skip("cni_lab needs root (network namespaces)")
    from cnilab.sim.lab.lab import Lab

    with Lab.create(cni_plan) as lab:
        yield lab


@pytest.fixture(scope="module")
def edge(cni_lab):
    """Control client of the lab's Cloudflare edge (sessions, routes, BFD, announce/withdraw)."""
    from cnilab.sim.edge.control import EdgeClient

    client = EdgeClient(cni_lab.state.control["edge"])
    client.wait(30)
    return client


@pytest.fixture(scope="module")
def cni_converged(cni_lab, edge):
    """The edge client once ``cnilab.sim.checks.wait_converged`` holds: the state to start timing from."""
    from cnilab.sim.checks import wait_converged

    wait_converged(edge, cni_lab.plan)
    return edge


@pytest.fixture
def cni_observer(cni_lab) -> Iterator[Any]:
    """A LabObserver polling the lab for this test: ``.session_state``, ``.bfd_state``,
    ``.best_path`` and ``.transitions()`` (timestamped, from the fixture's start)."""
    from cnilab.sim.observe.observer import LabObserver

    with LabObserver(cni_lab) as obs:
        yield obs


@pytest.fixture
def cni_api(tmp_path: Path) -> Iterator[Any]:
    """A mock CNI API on 127.0.0.1 with a fresh SQLite file: ``.base_url``, ``.token``, ``.account``."""
    from cnilab.mock_api.testing import running_api

    with running_api(db=tmp_path / "cni.sqlite3") as api:
        yield api
