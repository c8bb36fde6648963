"""Real labs in network namespaces (daemons off): packets cross, DF-sized packets fit or do not,
failures and teardown leave nothing behind, labs coexist, names are never clobbered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnilab.sim.backends.base import BackendError
from cnilab.sim.lab.lab import Lab, LabExists
from cnilab.sim.runtime.cleanup import list_cnilab_netns, pids_mentioning
from cnilab.sim.runtime.paths import lab_dir
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import LabPlan, build_plan

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[1]
TOPOS = ROOT / "topologies"
CNILAB = [sys.executable, "-m", "cnilab.sim.cli.main"]


def plan(topology: str, lab: str) -> LabPlan:
    return build_plan(load_topology(TOPOS / f"{topology}.yml"), lab)


def lab_namespaces(name: str) -> list[str]:
    return list_cnilab_netns(f"cnilab-{name}-")


def ping(lab: Lab, node: str, dst: object, size: int | None = None) -> bool:
    """Up to 3 pings with DF set (``-M do``): True when any reply came back (tolerant of a loaded box)."""
    argv = ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "3", "-M", "do"]
    if size is not None:
        argv += ["-s", str(size)]
    return lab.run(node, [*argv, str(dst)], check=False).returncode == 0


def assert_gone(name: str, pids: list[int]) -> None:
    assert lab_namespaces(name) == []
    assert not lab_dir(name).exists()
    alive = [p for p in pids if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert alive == [], f"processes survived teardown: {alive}"


@pytest.fixture
def v1_lab(state_dir: Path, lab_name: str) -> Iterator[Lab]:
    with Lab.create(plan("v1-gre", lab_name), daemons=False) as lab:
        yield lab
    assert lab_namespaces(lab_name) == []


def test_v1_link_gre_and_df_sizes(v1_lab: Lab) -> None:
    lab = v1_lab
    (tun,) = lab.plan.tunnels
    ic4 = next(s for s in lab.plan.sessions if s.family == 4)
    ic6 = next(s for s in lab.plan.sessions if s.family == 6)
    assert ping(lab, "cust", ic4.cf_addr)
    assert ping(lab, "cust", ic6.cf_addr)
    assert ping(lab, "cf", tun.cust_inner.ip)  # through GRE
    # The v1 GRE path (customer -> Cloudflare) carries 1476-byte IP packets with DF, not 1477.
    assert ping(lab, "cust", tun.cf_inner.ip, 1476 - 28)
    assert not ping(lab, "cust", tun.cf_inner.ip, 1477 - 28)
    # The link itself (Cloudflare -> customer on v1) carries a full 1500.
    assert ping(lab, "cf", ic4.cust_addr, 1500 - 28)
    assert not ping(lab, "cf", ic4.cust_addr, 1501 - 28)
    # Hosts reach their gateways; routers forward.
    assert ping(lab, "inet", "104.16.0.1")
    assert ping(lab, "origin", "198.51.100.1")
    assert lab.run("cf", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
    assert lab.run("cf", ["cat", "/proc/sys/net/ipv4/conf/all/rp_filter"]).stdout.strip() == "0"
    st = lab.state
    assert st.status == "running"
    assert {t.node for t in st.tunnels} == {"cf", "cust"}
    assert st.mechanisms["gre"].split(":")[0] in ("kernel", "userspace")
    assert "vlan" in st.mechanisms
    # The plan's tagged name works whether or not 8021q exists (sub-interface or altname).
    assert lab.run("cust", ["ip", "link", "show", "dev", "ewr1.100"], check=False).returncode == 0
    assert lab.ifname("cust", "ewr1.100") in ("ewr1", "ewr1.100")


def test_v2_passes_1500_both_ways(state_dir: Path, lab_name: str) -> None:
    with Lab.create(plan("v2-direct", lab_name), daemons=False) as lab:
        s = next(s for s in lab.plan.sessions if s.family == 4)
        assert lab.plan.tunnels == [] and lab.state.tunnels == []
        assert ping(lab, "cust", s.cf_addr, 1500 - 28)
        assert ping(lab, "cf", s.cust_addr, 1500 - 28)
        assert not ping(lab, "cust", s.cf_addr, 1501 - 28)
        assert "vlan" not in lab.state.mechanisms


def test_failed_up_leaves_nothing(state_dir: Path, lab_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in the last step (daemons) removes namespaces, tunnels, daemons and the lab dir."""
    started: list[int] = []

    def boom(self: Lab, say: object, timeout: float) -> None:
        started.append(self.spawn("cf", "sleeper", ["sleep", "300"]).pid)
        started.extend(t.process.pid for t in self.state.tunnels if t.process)
        raise RuntimeError("injected failure while starting daemons")

    monkeypatch.setattr(Lab, "_start_daemons", boom)
    with pytest.raises(RuntimeError, match="injected"), Lab.create(plan("v1-gre", lab_name), daemons=True):
        pytest.fail("the body must not run when creation fails")
    assert started
    assert_gone(lab_name, started)


def test_failed_link_step_leaves_nothing(state_dir: Path, lab_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnilab.sim.backends.netns import NetnsBackend

    real = NetnsBackend.configure_node

    def fail_on_origin(self: NetnsBackend, node):  # type: ignore[no-untyped-def]
        if node.name == "origin":
            raise BackendError("injected netlink failure on origin")
        return real(self, node)

    monkeypatch.setattr(NetnsBackend, "configure_node", fail_on_origin)
    with pytest.raises(BackendError, match="injected"), Lab.create(plan("v2-direct", lab_name), daemons=False):
        pass
    assert_gone(lab_name, [])


def test_detach_attach_down(state_dir: Path, lab_name: str) -> None:
    with Lab.create(plan("v1-gre", lab_name), daemons=False) as lab:
        lab.detach()
    try:
        again = Lab.attach(lab_name)
        assert again.plan.lab == lab_name and len(lab_namespaces(lab_name)) == 4
        assert ping(again, "cf", again.plan.tunnels[0].cust_inner.ip)
        rec = again.spawn("cust", "sleeper", ["sleep", "300"])
        pids = [rec.pid] + [t.process.pid for t in again.state.tunnels if t.process]
        assert Lab.attach(None).name == lab_name  # the only lab: no name needed
    finally:
        Lab.attach(lab_name).destroy()
    assert_gone(lab_name, pids)
    Lab(again.state, again.backend).destroy()  # idempotent


def test_two_labs_coexist_and_names_are_not_clobbered(state_dir: Path, lab_name: str) -> None:
    other = lab_name + "b"
    with Lab.create(plan("v1-gre", lab_name), daemons=False) as a, \
            Lab.create(plan("v1-gre", other), daemons=False) as b:
        for lab in (a, b):
            assert ping(lab, "cf", lab.plan.tunnels[0].cust_inner.ip)
        with pytest.raises(LabExists, match=lab_name), Lab.create(plan("v2-direct", lab_name), daemons=False):
            pass
        assert ping(a, "cust", a.plan.tunnels[0].cf_inner.ip)  # the refused up did not touch it
        assert a.state.plan.topology == "v1-gre"
    assert lab_namespaces(lab_name) == [] and lab_namespaces(other) == []


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CNILAB, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_cli_up_status_exec_down(state_dir: Path, lab_name: str) -> None:
    import json

    env = {**os.environ, "CNILAB_STATE_DIR": str(state_dir)}
    try:
        up = run_cli(["up", str(TOPOS / "v1-gre.yml"), "--name", lab_name, "--no-daemons", "--json"], env)
        assert up.returncode == 0, up.stderr
        result = json.loads(up.stdout)
        assert result["status"]["status"] == "running" and result["daemons"] is False
        again = run_cli(["up", str(TOPOS / "v1-gre.yml"), "--name", lab_name, "--no-daemons"], env)
        assert again.returncode != 0 and f"'{lab_name}' already exists" in again.stderr, again.stderr
        st = json.loads(run_cli(["status", "--json"], env).stdout)
        link = next(lk for lk in st["links"] if lk["name"] == "ewr1")
        assert link["vlan"] == 100 and link["gre"] in ("kernel", "userspace")
        assert link["path_mtu"] == {"cf_to_customer": 1500, "customer_to_cf": 1476}
        assert all(n["exists"] for n in st["nodes"]) and all(t["alive"] for t in st["tunnels"]), st
        res = run_cli(["exec", "cust", "--", "ping", "-c3", "-i0.2", "-W3", "10.212.0.0"], env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert run_cli(["exec", "cust", "--", "sh", "-c", "exit 7"], env).returncode == 7
        bad = run_cli(["exec", "nope", "--", "true"], env)
        assert bad.returncode == 2 and "no node 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        down = run_cli(["down", "--lab", lab_name], env)
    assert down.returncode == 0, down.stderr
    assert lab_namespaces(lab_name) == [] and pids_mentioning(str(lab_dir(lab_name))) == []
    missing = run_cli(["status", "--lab", lab_name], env)
    assert missing.returncode == 2 and "no lab named" in missing.stderr and "Traceback" not in missing.stderr


def test_down_all_sweeps_orphans(state_dir: Path, lab_name: str) -> None:
    """A namespace whose state file vanished (a crash) is an orphan; down --all removes it and its processes."""
    import shutil

    with Lab.create(plan("v2-direct", lab_name), daemons=False) as lab:
        lab.detach()
    sleeper = lab.spawn("cf", "sleeper", ["sleep", "300"]).pid
    shutil.rmtree(lab_dir(lab_name))  # the crash: state gone, kernel objects left
    env = {**os.environ, "CNILAB_STATE_DIR": str(state_dir)}
    res = run_cli(["down", "--all", "--json"], env)
    assert res.returncode == 0, res.stderr
    import json

    swept = json.loads(res.stdout)["orphan_namespaces"]
    assert set(lab_namespaces(lab_name)) == set() and f"cnilab-{lab_name}-cf" in swept
    assert_gone(lab_name, [sleeper])


def test_not_root_is_refused_before_anything(state_dir: Path, lab_name: str) -> None:
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv):
        pytest.skip("setpriv is not installed; cannot drop privileges to test the refusal")
    state_dir.chmod(0o777)
    env = {**os.environ, "CNILAB_STATE_DIR": str(state_dir), "HOME": "/tmp"}
    # Still uid 0 (so a checkout in a private 0700 directory stays readable), but with no
    # capabilities at all: exactly what the refusal is about.
    res = subprocess.run([setpriv, "--inh-caps=-all", "--bounding-set=-all", *CNILAB, "up",
                          str(TOPOS / "v2-direct.yml"), "--name", lab_name,
                          "--no-daemons"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    if "Permission denied" in res.stderr and "needs root" not in res.stderr:
        pytest.skip(f"unprivileged user cannot run the venv here: {res.stderr.strip()[:200]}")
    assert res.returncode == 2 and "needs root" in res.stderr and "CAP_NET_ADMIN" in res.stderr, res.stderr
    assert lab_namespaces(lab_name) == [] and not lab_dir(lab_name).exists()
