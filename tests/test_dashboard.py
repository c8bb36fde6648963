"""The live dashboard: guarding rules (no root needed) and a real browser against a real lab.

The browser test drives headless Chromium through Playwright: it waits for the BGP session to be
Established *on the page*, starts a UDP stream and sees its rate on the interconnect, presses the
"Blackhole ewr1" button and sees BFD and BGP go down and the fault appear in the timeline, all
from the kernel and the edge driver through the dashboard. A screenshot is left in
artifacts/dashboard.png for people to look at.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnilab.sim.dashboard import DashboardConfigError, check_bind, create_app
from cnilab.sim.state import LabState
from cnilab.sim.testing import wait_for
from cnilab.sim.topology import build_plan, load_topology

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = REPO / "topologies" / "v1-gre.yml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "t0ken-for-tests-only"


# -- guarding rules (no root: a state file without namespaces is enough to build the app) ----------
@pytest.fixture
def paper_lab(state_dir: Path, lab_name: str) -> str:
    """A lab that exists only as a state file: nothing runs, so the dashboard must cope with that."""
    LabState(lab=lab_name, plan=build_plan(load_topology(TOPOLOGY), lab_name), status="running",
             topology_path=str(TOPOLOGY)).save()
    return lab_name


def test_non_loopback_bind_without_token_is_refused() -> None:
    for host in ("0.0.0.0", "192.0.2.1", "::"):
        with pytest.raises(DashboardConfigError, match="without a token"):
            check_bind(host, None)
        with pytest.raises(DashboardConfigError, match="without a token"):
            create_app(None, None, host=host)  # refused before it even looks for a lab
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", TOKEN)


def test_cli_generates_a_token_only_when_exposed() -> None:
    from cnilab.sim.cli.dashboard import resolve_token

    assert resolve_token("127.0.0.1", None) == (None, False)
    token, generated = resolve_token("0.0.0.0", None)
    assert generated and token and len(token) >= 16
    assert resolve_token("0.0.0.0", TOKEN) == (TOKEN, False)


def test_mutations_need_the_token_and_reads_need_it_when_exposed(paper_lab: str) -> None:
    from fastapi.testclient import TestClient

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(paper_lab, TOKEN, period=0.05), base_url="http://127.0.0.1") as client:
        body = {"target": "ewr1", "kind": "down"}
        assert client.post("/api/faults", json=body).status_code == 401
        assert client.post("/api/faults", json=body, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert client.delete("/api/faults").status_code == 401
        assert client.post("/api/traffic", json={"rate_pps": 10}).status_code == 401
        assert client.post("/api/scenario", json={"file": "x.yml"}).status_code == 401
        # With the token: a form post is refused (CSRF), bad input is a clear 400.
        r = client.post("/api/faults", content="target=ewr1&kind=down", headers={
            **auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        r = client.post("/api/faults", json={"target": "nowhere", "kind": "down"}, headers=auth)
        assert r.status_code == 400 and "no link or node named 'nowhere'" in r.json()["detail"]
        r = client.post("/api/faults", json={"target": "ewr1", "kind": "melt"}, headers=auth)
        assert r.status_code == 400 and "unknown fault kind 'melt'" in r.json()["detail"]
        # Loopback: reads are open, but only for loopback Host names (DNS rebinding).
        assert client.get("/api/meta").status_code == 200
        assert client.get("/api/meta", headers={"Host": "evil.example:8788"}).status_code == 403
        # Nothing runs in this lab: the page must say so, not crash.
        snap = wait_for(lambda: (r := client.get("/api/state")).status_code == 200 and r.json().get("version", 0) >= 2
                        and r.json(), 10, 0.05, what="/api/state at version 2")
        assert snap["edge"]["reachable"] is False and snap["edge"]["error"]
        assert all(not lk["up"] and not lk["ends"][0]["present"] for lk in snap["links"])
    with TestClient(create_app(paper_lab, TOKEN, host="0.0.0.0", period=0.05), base_url="http://10.0.0.1") as client:
        assert client.get("/api/meta").status_code == 401
        assert client.get("/api/state").status_code == 401
        assert client.get("/api/meta", headers=auth).status_code == 200
        assert client.get("/").status_code == 200  # the page itself holds no lab data


# -- the real thing: lab + dashboard + Chromium -----------------------------------------------------
@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; always shut down."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("dashboard server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def running_lab(short_state: Path, lab_name: str):
    """v1-gre with ExaBGP, FRR and BFD, in the short private state dir (FRR's unix socket paths)."""
    from cnilab.sim.lab.lab import Lab

    with Lab.create(build_plan(load_topology(TOPOLOGY), lab_name), topology_path=TOPOLOGY) as lab:
        yield lab


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.browser
@pytest.mark.timeout(180)
def test_browser_sees_bgp_drop_after_blackhole_button(running_lab) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from cnilab.sim.edge.control import EdgeClient

    edge = EdgeClient(running_lab.state.control["edge"])
    edge.wait_established(timeout=60)
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    app = create_app(running_lab.name, TOKEN)
    with serve(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/?token={TOKEN}")
            assert "token=" not in page.url  # moved to sessionStorage, out of the address bar
            v4 = page.locator('#bgp tr[data-session="ewr1/v4"]')
            v4.and_(page.locator('[data-state="Established"]')).wait_for(timeout=20_000)
            page.locator('#bfd tr[data-bfd="192.0.2.11"][data-state="Up"]').wait_for(timeout=10_000)
            assert page.locator('#link-ewr1').get_attribute("data-state") == "up"

            # Traffic: the stream's rate shows on the interconnect's path (kernel TX counters).
            page.fill("#t-rate", "200")
            page.click('[data-testid="traffic-start"]')
            page.wait_for_function(
                """() => { const e = document.querySelector('.path-rate[data-path="ewr1"] .pps');
                           return e && parseFloat(e.textContent) >= 120; }""", timeout=10_000)

            # Pull the rug: blackhole on ewr1 (carrier stays up, only BFD can tell quickly).
            t0 = time.monotonic()
            page.click('[data-testid="blackhole-ewr1"]')
            page.locator('#faults [data-fault="blackhole@ewr1"]').wait_for(timeout=10_000)
            page.locator('#bfd tr[data-bfd="192.0.2.11"][data-state="Down"]').wait_for(timeout=10_000)
            page.wait_for_function(
                """() => { const r = document.querySelector('#bgp tr[data-session="ewr1/v4"]');
                           return r && r.dataset.state !== 'Established'; }""", timeout=10_000)
            seen_down = time.monotonic() - t0
            page.locator('#timeline li[data-kind="fault-injected"]').first.wait_for(timeout=5_000)
            page.locator('#timeline li[data-source="edge"].bad').first.wait_for(timeout=5_000)
            # The blackhole drops on the edge's egress hook, before the TX counter: the rate collapses.
            page.wait_for_function(
                """() => { const e = document.querySelector('.path-rate[data-path="ewr1"] .pps');
                           return e && parseFloat(e.textContent) < 50; }""", timeout=15_000)
            # Same truth from the edge driver directly: the page did not invent it.
            assert edge.session("ewr1/v4").state != "Established"
            # The picture is taken once the sparkline itself shows the drop: a high point earlier and
            # its last point in the bottom half (a DOM condition, not a fixed wait).
            page.wait_for_function(
                """() => { const l = document.querySelector('.path-rate[data-path="ewr1"] svg polyline');
                           if (!l) return false;
                           const ys = l.getAttribute('points').trim().split(' ')
                                       .map((p) => parseFloat(p.split(',')[1]));
                           return ys.length > 2 && Math.min(...ys) < 22 && ys[ys.length - 1] > 22; }""",
                timeout=15_000)
            page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
            assert not errors, errors
            assert seen_down < 8.0, f"the page showed the session down only after {seen_down:.1f}s"
        finally:
            browser.close()
    assert (artifacts / "dashboard.png").stat().st_size > 10_000
