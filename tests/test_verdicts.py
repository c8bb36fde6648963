"""Verdicts about the customer's router come from what its config really does (issue 12 §2, §4).

Production-style configs written for these tests (tests/configs/) run against real labs: a router
that leaks (Cloudflare's routes back, a default, its link nets) FAILS with every leaked prefix counted
at the edge and one finding with the outbound-policy fix; a wrong ASN or MD5 key fails fast on
deterministic evidence, said once; every step that does not depend on a failed one still runs; a
short hold time is a WARN in JSON, JUnit and text; ``cnilab up`` waits for Established by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnilab.sim.rehearse import RunOptions, render_junit, run_acceptance
from cnilab.sim.rehearse.checklist import step_lines

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "examples" / "customer-configs"
MINE = REPO / "tests" / "configs"
TOPO = REPO / "topologies"
DATAPLANE = REPO / "examples" / "dataplane" / "ewr1-gre.sh"  # the customer's own GRE tunnel + MSS clamp (v1)

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]


def _variant(tmp: Path, base: Path, old: str, new: str) -> Path:
    text = base.read_text()
    assert old in text, old
    out = tmp / base.name
    out.write_text(text.replace(old, new))
    return out


def test_frr_without_outbound_policy_fails_with_every_leak_named(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=TOPO / "v1-gre.yml", customer_dataplane=DATAPLANE,
                                    customer_config=MINE / "frr-v1-no-outbound-policy.conf"))
    ann = rep.step("announce")
    assert not rep.passed and ann.status == "fail", ann
    # the wire carried Cloudflare's 15 v4 ranges back, a default and two link nets: all counted
    v4 = next(c for c in ann.checks if c.startswith("ewr1/v4"))
    assert "received 19 (before policy), accepted 1, rejected 18" in v4, ann.checks
    leak = [f for f in ann.findings if f.check == "announce.leak"]
    assert len(leak) == 1, ann.findings
    cause, fix = leak[0].cause, leak[0].fix
    assert "re-advertises routes it learned from Cloudflare" in cause and "104.16.0.0/13" in cause
    assert "sends a default route (1: 0.0.0.0/0)" in cause
    assert "192.0.2.10/31" in cause and "10.212.0.0/31" in cause and "link nets" in cause
    assert "neighbor 192.0.2.10 route-map TO-CF out" in fix and "ebgp-requires-policy" in fix
    assert "export where net ~ [ 198.51.100.0/24, 2001:db8:cafe::/48 ]" in fix
    # the failure hides nothing that does not depend on it
    assert {s.id: s.status for s in rep.steps if s.id in ("bfd", "mtu", "mss", "failover")} == \
        dict.fromkeys(("bfd", "mtu", "mss", "failover"), "pass"), [(s.id, s.status) for s in rep.steps]
    text = "\n".join(f.text() for s in rep.steps for f in s.findings)
    assert text.count("outbound policy toward Cloudflare that permits only") == 1  # the fix, said once


def test_bird_export_all_across_three_sites_reexports_cloudflare(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=TOPO / "ha-three-site.yml",
                                    customer_config=MINE / "bird-ha-export-all.conf"))
    ann = rep.step("announce")
    assert rep.router_kind == "bird" and ann.status == "fail", ann
    leak = next(f for f in ann.findings if f.check == "announce.leak")
    assert "re-advertises routes it learned from Cloudflare back to Cloudflare (15:" in leak.cause, leak
    assert "ewr2/v4" in leak.subject and "lax1/v4" in leak.subject
    assert "instead of `export all`" in leak.fix
    fo = rep.step("failover")  # still measured, both directions, whichever link each one used
    assert fo.status in ("pass", "warn"), fo
    assert any("customer_to_cf" in c and " moved " in c for c in fo.checks), fo
    assert all(f.check == "failover.asymmetric" for f in fo.findings), fo


def test_bird_on_v2_leaking_its_static_default(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=TOPO / "v2-direct.yml",
                                    customer_config=MINE / "bird-v2-static-default.conf"))
    ann = rep.step("announce")
    assert ann.status == "fail", ann
    leak = next(f for f in ann.findings if f.check == "announce.leak")
    assert "sends a default route (1: 0.0.0.0/0)" in leak.cause
    assert "192.0.2.10/31" in leak.cause and "2001:db8:12:3::7ac2:d64a/127" in leak.cause
    assert rep.step("bfd").status == "skip" and rep.step("failover").status == "pass"


def test_wrong_asn_fails_fast_and_says_it_once(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=TOPO / "v1-gre.yml", customer_config=CONFIGS / "frr-wrong-asn.conf"))
    peers = rep.step("peers")
    assert peers.status == "fail" and "stopped early" in peers.detail, peers
    assert peers.seconds < rep.steps[0].seconds + 30, peers.seconds  # not the 45 s timeout
    assert [f.check for f in peers.findings] == ["bgp.bad-peer-as"], peers.findings  # the words Cloudflare reads
    f = peers.findings[0]
    assert f.subject == "ewr1/v4, ewr1/v6"
    assert "AS65011" in f.cause and "set your ASN to 65010" in f.fix and "remote-as 13335" in f.fix
    every = [(f.check, f.subject) for s in rep.steps for f in s.findings]
    assert len(every) == len(set(every)), every  # no finding twice in the report
    printed = "\n".join(text for s in rep.steps for _style, text in step_lines(s))
    assert printed.count("opens as AS65011") == 1, printed  # once, for both sessions
    router = rep.step("router")
    assert "also failing, said above: ewr1/v4: router.local-as (step 3)" in "\n".join(router.checks)
    deps = {s.id: s.status for s in rep.steps}
    assert deps["cf-prefixes"] == deps["bfd"] == deps["mtu"] == deps["failover"] == "not-run"
    assert "needs step 3 (peers), which failed" in rep.step("mtu").detail
    assert deps["router"] == "fail"  # runs without BGP: it names the missing BFD too


def test_wrong_md5_fails_fast_on_the_kernel_counters(short_state: Path, tmp_path: Path) -> None:
    cfg = _variant(tmp_path, CONFIGS / "frr-v1-gre.conf", "password cni-rehearsal", "password cni-rehersal")
    rep = run_acceptance(RunOptions(topology=TOPO / "v1-gre.yml", customer_config=cfg))
    peers = rep.step("peers")
    assert peers.status == "fail" and "stopped early" in peers.detail, peers
    assert peers.seconds < 30, peers.seconds
    assert [f.check for f in peers.findings] == ["bgp.md5"], peers.findings
    assert "bgp.md5_key" in peers.findings[0].fix


def test_short_hold_time_is_a_warning_everywhere(short_state: Path, tmp_path: Path) -> None:
    cfg = _variant(tmp_path, CONFIGS / "frr-v1-gre.conf", "timers 3 9", "timers 2 6")
    rep = run_acceptance(RunOptions(topology=TOPO / "v1-gre.yml", customer_config=cfg, customer_dataplane=DATAPLANE))
    router = rep.step("router")
    assert rep.passed, rep.failures
    assert router.status == "warn" and rep.warnings >= 2, router
    warn = next(f for f in router.findings if f.check == "router.timers")
    assert warn.severity == "warn" and "negotiated hold time 6 s" in warn.cause and "timers 3 9" in warn.fix
    assert next(s for s in json.loads(rep.model_dump_json())["steps"] if s["id"] == "router")["status"] == "warn"
    case = next(c for c in ET.fromstring(render_junit(rep)).iter("testcase")
                if "router's own state" in c.get("name", ""))
    assert case.find("failure") is None
    assert any(p.get("name") == "warn.router.timers" for p in case.iter("property"))
    assert "WARN ewr1/v4: negotiated hold time 6 s" in (case.findtext("system-out") or "")


def test_good_configs_pass_with_zero_warnings(short_state: Path) -> None:
    for topo, cfg in (("v1-gre.yml", "frr-v1-gre.conf"), ("v1-gre.yml", "bird-v1-gre.conf")):
        rep = run_acceptance(RunOptions(topology=TOPO / topo, customer_config=CONFIGS / cfg,
                                        customer_dataplane=DATAPLANE))
        assert rep.passed and rep.warnings == 0, (cfg, [(s.id, s.status, s.findings) for s in rep.steps])


# -- cnilab up / bgp --------------------------------------------------------------------------------
def _cli(*argv: str, state: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CNILAB_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@contextlib.contextmanager
def _up(topology: str, name: str, state: Path, *flags: str) -> Iterator[subprocess.CompletedProcess[str]]:
    """``cnilab up`` (its result), then ``cnilab down`` whatever the test found."""
    try:
        yield _cli("up", topology, "--name", name, *flags, state=state)
    finally:
        _cli("down", "--lab", name, state=state)


def test_up_waits_for_established_and_bfd(short_state: Path) -> None:
    name = f"vd{os.getpid() % 10000}"
    with _up("v1-gre", name, short_state, "--json") as up:
        assert up.returncode == 0, up.stderr
        res = json.loads(up.stdout)
        assert res["readiness"]["ready"] and res["readiness"]["budget_s"] == 5 + 9 + 3 + 30
        bgp = _cli("bgp", "--lab", name, "--json", state=short_state)  # right after up: already Established
        assert bgp.returncode == 0, bgp.stdout
        rows = json.loads(bgp.stdout)
        assert all(r["up"] and r["bfd_state"] == "Up" for r in rows), rows
        assert {(r["negotiated_hold_s"], r["keepalive_s"]) for r in rows} == {(9, 3)}
        text = _cli("bgp", "--lab", name, state=short_state).stdout
        assert "ewr1/v4: peer 192.0.2.11 AS65010; hold/keepalive 9/3 s (your OPEN: hold 9 s" in text, text
        assert "flaps 0, last change Established" in text, text


def test_up_with_a_wrong_key_stops_early_and_keeps_the_lab(short_state: Path, tmp_path: Path) -> None:
    name = f"vk{os.getpid() % 10000}"
    topo = _variant(tmp_path, TOPO / "v1-gre.yml", 'md5: "cni-rehearsal"', 'md5: "cni-rehearsal", customer_md5: "oops"')
    with _up(str(topo), name, short_state) as up:
        assert up.returncode == 1, up.stdout + up.stderr
        assert "not ready" in up.stdout and "waiting cannot fix this" in up.stdout, up.stdout
        assert "MD5" in up.stdout
        assert _cli("status", "--lab", name, state=short_state).returncode == 0  # the lab stays for inspection


def test_bgp_says_starting_while_nothing_happened_yet(short_state: Path, tmp_path: Path) -> None:
    """A customer router that has not connected yet is "starting", not "check the MD5 key"."""
    name = f"vs{os.getpid() % 10000}"
    topo = _variant(tmp_path, TOPO / "v2-direct.yml", "router: {kind: frr}", "router: {kind: external}")
    with _up(str(topo), name, short_state, "--no-wait") as up:
        assert up.returncode == 0, up.stderr
        out = _cli("bgp", "--lab", name, state=short_state)
        assert out.returncode == 1 and "starting" in out.stdout, out.stdout
        assert "MD5" not in out.stdout, out.stdout
