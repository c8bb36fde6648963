"""Cross-checks of the customer's router, from the daemon's own state: FRR, BIRD and GoBGP.

Each case starts a customer config written as engineers write them (tests/customer-configs/) or a
one-line mistake in one, against FRR standing in for Cloudflare (AS13335, passive, MD5, BFD at the
plan's timers on v1), then asks :func:`cnilab.sim.routers.crosscheck.cross_check` what it sees. The good
configs must give zero WARN and zero FAIL; each broken one must give the named cause and its fix.
The pure cases at the end feed parsed daemon output to ``judge`` (no root needed).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cnilab.sim.routers import start_customer
from cnilab.sim.routers.base import BgpNeighbor, RouterFacts
from cnilab.sim.routers.bird import BirdRouter, bird_protocol_settings, parse_bird_bfd
from cnilab.sim.routers.crosscheck import Finding, cross_check, judge, recovery_cause
from cnilab.sim.routers.frr import FrrRouter, undefined_policies
from cnilab.sim.routers.gobgp import GobgpRouter
from cnilab.sim.routers.registry import router_class
from cnilab.sim.testing import wait_for

from tests.kinds import frr_peer_conf, good_config, kind_params, make_plan, missing_binaries

CONFIGS = Path(__file__).parent / "customer-configs"
DATAPLANES = {"v1": {"ic1": "v1"}, "v2": {"ic1": "v2"}}


@dataclass(frozen=True)
class Case:
    kind: str
    dataplane: str
    base: str
    edits: tuple[tuple[str, str], ...] = ()
    want: dict[str, str] = field(default_factory=dict)  # check -> severity that must be present
    says: tuple[str, ...] = ()  # substrings of message or fix of those findings
    established: bool = True


CASES = {
    # -- good: zero WARN, zero FAIL -----------------------------------------------------------------
    "frr-good-v2": Case("frr", "v2", "frr-good-v2.conf"),
    "frr-good-v1-bfd": Case("frr", "v1", "frr-good-v1.conf"),
    "bird-good-v2": Case("bird", "v2", "bird-good-v2.conf"),
    "bird-good-v1-bfd": Case("bird", "v1", "bird-good-v1.conf"),
    "gobgp-good-v2": Case("gobgp", "v2", "gobgp-good-v2.toml"),
    # GoBGP has no BFD: on a BFD profile the only finding is that WARN.
    "gobgp-v1-no-bfd": Case("gobgp", "v1", "gobgp-good-v2.toml", want={"bfd-missing": "warn"},
                            says=("has no BFD", "hold time (9 s)")),
    # -- broken ---------------------------------------------------------------------------------------
    "frr-neighbor-typo": Case("frr", "v2", "frr-good-v2.conf", (("192.0.2.10", "192.0.2.12"),),
                              {"neighbor-address": "fail"},
                              ("your router peers with 192.0.2.12; Cloudflare is 192.0.2.10",
                               "neighbor 192.0.2.10 remote-as 13335"), established=False),
    "frr-remote-as": Case("frr", "v2", "frr-good-v2.conf", (("remote-as 13335", "remote-as 13336"),),
                          {"remote-as": "fail"}, ("expects AS13336 at 192.0.2.10; Cloudflare is AS13335",),
                          established=False),
    "frr-undefined-route-map": Case("frr", "v2", "frr-good-v2.conf",
                                    (("route-map RM-CF-OUT-V4 out", "route-map RM-CF-OUTV4 out"),),
                                    {"undefined-policy": "fail"}, ("'RM-CF-OUTV4'", "define RM-CF-OUTV4")),
    "frr-no-outbound-policy": Case("frr", "v2", "frr-good-v2.conf",
                                   (("  neighbor 192.0.2.10 route-map RM-CF-OUT-V4 out\n", ""),),
                                   {"outbound-policy": "fail"},
                                   ("ebgp-requires-policy", "route-map TO-CLOUDFLARE out")),
    "frr-no-outbound-policy-allowed": Case(
        "frr", "v2", "frr-good-v2.conf", (("  neighbor 192.0.2.10 route-map RM-CF-OUT-V4 out\n", ""),
                                          (" no bgp default ipv4-unicast", " no bgp default ipv4-unicast\n"
                                                                           " no bgp ebgp-requires-policy")),
        {"outbound-policy": "warn", "exports": "fail"},  # FRR sends Cloudflare's own routes back: a leak
        ("everything in your table is advertised", "re-advertises Cloudflare's own 104.16.0.0/13")),
    "frr-leaks-link-net": Case(
        "frr", "v2", "frr-good-v2.conf", (("  neighbor 192.0.2.10 route-map RM-CF-OUT-V4 out\n", ""),
                                          ("  network 198.51.100.0/24\n", "  network 198.51.100.0/24\n"
                                                                          "  redistribute connected\n"),
                                          (" no bgp default ipv4-unicast", " no bgp default ipv4-unicast\n"
                                                                           " no bgp ebgp-requires-policy")),
        {"outbound-policy": "warn", "exports": "fail"}, ("192.0.2.10/31", "only 198.51.100.0/24")),
    "frr-bfd-on-v2": Case("frr", "v2", "frr-good-v1.conf", want={"bfd-v2": "warn"},
                          says=("dataplane v2 has no BFD", "stays Down", "no neighbor 192.0.2.10 bfd")),
    "frr-bfd-timers": Case("frr", "v1", "frr-good-v1.conf", (("transmit-interval 200", "transmit-interval 50"),
                                                             ("receive-interval 200", "receive-interval 50")),
                           {"bfd-timers": "warn"}, ("runs 50/50 ms x 3", "the CNI runs 200/200 ms x 3")),
    "frr-short-hold": Case("frr", "v2", "frr-good-v2.conf", (("timers 3 9", "timers 1 4"),),
                           {"timers": "warn"}, ("negotiated hold time 4 s", "under 9 s")),
    "bird-neighbor-typo": Case("bird", "v2", "bird-good-v2.conf",
                               (("neighbor 192.0.2.10 as", "neighbor 192.0.2.12 as"),),
                               {"neighbor-address": "fail"},
                               ("your router peers with 192.0.2.12; Cloudflare is 192.0.2.10",), established=False),
    "bird-export-all": Case("bird", "v2", "bird-good-v2.conf", (("export filter cf_out_v4;", "export all;"),
                                                                ('interface "lan*"; ', "")),
                            {"outbound-policy": "warn", "exports": "fail"}, ("192.0.2.10/31",)),
    "bird-default-error-wait": Case("bird", "v2", "bird-good-v2.conf", (("  error wait time 10, 60;\n", ""),),
                                    {"reconnect": "info"}, ("waits 60 s after an error", "up to 300 s",
                                                            "error wait time 5, 30;")),
    "bird-bfd-on-v2": Case("bird", "v2", "bird-good-v1.conf", want={"bfd-v2": "warn"},
                           says=("dataplane v2 has no BFD", "remove `bfd on;`")),
    "bird-bfd-slow-rx": Case("bird", "v1", "bird-good-v1.conf", (("min rx interval 200 ms", "min rx interval 500 ms"),),
                             {"bfd-timers": "warn"}, ("runs 200/500 ms x 3",)),
    "gobgp-neighbor-typo": Case("gobgp", "v2", "gobgp-good-v2.toml", (('"192.0.2.10"', '"192.0.2.12"'),),
                                {"neighbor-address": "fail"},
                                ("your router peers with 192.0.2.12; Cloudflare is 192.0.2.10",
                                 'neighbor-address = "192.0.2.10"'), established=False),
    "gobgp-no-export-policy": Case("gobgp", "v2", "gobgp-good-v2.toml",
                                   (('  export-policy-list = ["to-cloudflare"]\n'
                                     '  default-export-policy = "reject-route"\n', ""),),
                                   {"outbound-policy": "warn"}, ("export-policy-list",)),
    # One prefix-set for both families: gobgpd --dry-run accepts it, the daemon refuses to build the
    # policy ("multiple families") and runs with none: default accept. The daemon's state shows it.
    "gobgp-mixed-family-prefix-set": Case(
        "gobgp", "v2", "gobgp-good-v2.toml",
        (('\n[[defined-sets.prefix-sets]]\n  prefix-set-name = "ours-v6"\n', ""),
         ('prefix-set-name = "ours-v4"', 'prefix-set-name = "ours"'),
         ('prefix-set = "ours-v4"', 'prefix-set = "ours"'), ('prefix-set = "ours-v6"', 'prefix-set = "ours"')),
        {"policy-not-applied": "fail", "outbound-policy": "warn"}, ("multiple families", "to-cloudflare")),
    # Default-reject import without a statement for local routes: gobgpd drops its own `rib add` paths.
    "gobgp-import-drops-own-routes": Case(
        "gobgp", "v2", "gobgp-good-v2.toml", (('      route-type = "local"', '      route-type = "internal"'),),
        {"policy-not-applied": "fail"}, ("198.51.100.0/24, 2001:db8:cafe::/48 added with `gobgp global rib add` "
                                         "but not in gobgpd's RIB",)),
    "gobgp-default-backoff": Case("gobgp", "v2", "gobgp-good-v2.toml", (("    connect-retry = 10\n", ""),),
                                  {"reconnect": "info"}, ("retries a failed connection every 120 s",
                                                          "connect-retry = 5")),
}


def _config(tmp_path: Path, case: Case) -> Path:
    text = (CONFIGS / case.base).read_text()
    for old, new in case.edits:
        assert old in text, f"{case.base}: edit {old!r} does not apply"
        text = text.replace(old, new)
    path = tmp_path / case.base
    path.write_text(text)
    rib = CONFIGS / f"{case.base}.rib"
    if rib.exists():
        shutil.copy(rib, tmp_path / rib.name)
    return path


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.parametrize("name", list(CASES))
def test_cross_check_matrix(name: str, tmp_path: Path, mini_lab) -> None:
    import os

    case = CASES[name]
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = missing_binaries(case.kind) + missing_binaries("frr")
    if missing:
        pytest.skip(f"not installed: {missing}")
    cfg = _config(tmp_path, case)
    router_class(case.kind).validate(cfg)  # every case is valid syntax: the daemon's parser accepts it
    plan = make_plan(tmp_path, kind=case.kind, config=cfg, dataplane=case.dataplane, bfd=case.dataplane == "v1")
    lab = mini_lab(plan, ["cf", "cust"])
    FrrRouter(lab, "cf").start(frr_peer_conf(plan), source="peer")
    start_customer(lab)
    router = router_class(case.kind)(lab)

    def settled() -> tuple[list[Finding]] | None:
        facts = router.facts()
        up = [n for n in facts.neighbors if n.session and n.state == "Established" and n.received]
        if case.established and len(up) < len(plan.sessions):
            return None
        if case.established and plan.sessions[0].bfd and facts.bfd is not None and any(n.bfd for n in up) and \
                not all(b.state == "Up" for b in facts.bfd):
            return None
        return (cross_check(lab, DATAPLANES[case.dataplane]),)  # a tuple: no findings is an answer too

    (findings,) = wait_for(settled, 45, what=f"{name}: sessions settled")
    got = {(f.check, f.severity) for f in findings}
    shown = "\n".join(f"{f.severity} {f.check}: {f.message} | fix: {f.fix} | {f.evidence}" for f in findings)
    for check, sev in case.want.items():
        assert (check, sev) in got, f"{name}: expected {sev} {check}\n{shown}"
    unexpected = {(c, s) for c, s in got if s in ("warn", "fail") and case.want.get(c) != s}
    assert not unexpected, f"{name}: unexpected findings {unexpected}\n{shown}"
    named = [f for f in findings if f.check in case.want]
    for needle in case.says:
        assert any(needle in f.message or needle in f.fix for f in named), f"{name}: {needle!r} not said\n{shown}"
    assert all(f.evidence for f in findings), shown
    if case.established and "timers" not in case.want:  # the negotiated timers are read from every kind
        assert any(f.check == "timers" and "negotiated hold 9 s, keepalive 3 s" in f.message for f in findings), shown


# -- pure: parsed daemon output into judge() ------------------------------------------------------------
def test_frr_undefined_policies_from_running_config() -> None:
    running = """router bgp 65010
 neighbor 192.0.2.10 route-map CF-OUT out
 neighbor 192.0.2.10 prefix-list PL-IN in
route-map CF-OUT permit 10
 match ip address prefix-list PL-OWN
 match as-path AS-CF
ip prefix-list PL-IN seq 5 permit 104.16.0.0/13
"""
    assert undefined_policies(running) == ["PL-OWN", "AS-CF"]


def test_topology_refuses_keepalive_not_below_hold() -> None:
    from cnilab.sim.topology.model import Bgp
    from pydantic import ValidationError

    assert Bgp(hold_time=9, keepalive=3).keepalive_s == 3
    with pytest.raises(ValidationError, match=r"keepalive 9s >= hold_time 9s.*at most hold_time / 3 \(3s\)"):
        Bgp(hold_time=9, keepalive=9)
    assert Bgp(hold_time=0, keepalive=30).hold_time == 0  # hold 0 turns both off: nothing to compare


def test_bird_settings_follow_templates_and_defaults() -> None:
    conf = (CONFIGS / "bird-good-v1.conf").read_text().replace("  error wait time 10, 60;\n", "")
    got = bird_protocol_settings(conf)
    assert set(got) == {"cf_lax1_v4", "cf_lax1_v6"}
    v4 = got["cf_lax1_v4"]
    assert v4["error_wait"] == (60, 300) and v4["connect_retry"] == 10 and v4["bfd"] is True
    assert v4["export_policy"] == ["filter cf_out_v4"] and v4["hold_time_configured"] == 9
    anon = bird_protocol_settings("protocol bgp { neighbor 192.0.2.10 as 13335; ipv4 { export all; }; }")
    assert anon["bgp1"]["export_policy"] == [] and anon["bgp1"]["error_wait"] == (60, 300)
    sessions = """bfd1:
IP address                Interface  State      Since         Interval  Timeout
192.0.2.10                ic1        Up         12:00:01.000    0.200    0.600
"""
    (b,) = parse_bird_bfd(sessions, conf.replace("min rx interval 200 ms", "min rx interval 500 ms"))
    assert (b.peer, b.state, b.tx_ms, b.rx_ms, b.multiplier) == ("192.0.2.10", "Up", 200, 500, 3)


def _neighbor(plan, **kw) -> BgpNeighbor:
    s = plan.sessions[0]
    base = {"peer": str(s.cf_addr), "name": "cf", "remote_as": 13335, "local_as": 65010, "state": "Established",
            "received": 1, "session": s.key, "hold_time": 9, "keepalive": 3, "export_policy": ["x"], "bfd": False,
            "connect_retry": 5, "error_wait": (5, 30)}
    return BgpNeighbor.model_validate({**base, **kw})


def test_judge_names_the_typo_not_a_transit_peer(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, kind="frr")
    v6 = _neighbor(plan).model_copy(update={"peer": str(plan.sessions[1].cf_addr), "session": plan.sessions[1].key})
    transit = _neighbor(plan, peer="203.0.113.0", remote_as=64999, session=None)
    typo = _neighbor(plan, peer="192.0.2.100", session=None)
    facts = RouterFacts(kind="frr", neighbors=[transit, typo, v6], bfd=[])
    (f,) = [f for f in judge(plan, facts, FrrRouter) if f.severity != "info"]
    assert f.check == "neighbor-address" and "peers with 192.0.2.100; Cloudflare is 192.0.2.10" in f.message
    facts = RouterFacts(kind="frr", neighbors=[transit, v6], bfd=[])
    (f,) = [f for f in judge(plan, facts, FrrRouter) if f.severity != "info"]
    assert f.message.startswith("your router has no BGP neighbor 192.0.2.10")


def test_recovery_names_birds_error_wait(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, kind="bird")
    slow = RouterFacts(kind="bird", neighbors=[_neighbor(plan, error_wait=(60, 300), connect_retry=120)], bfd=[])
    f = recovery_cause(plan, slow, plan.sessions[0].key, 61.0, BirdRouter)
    # ~60 s is BIRD's error wait, not the connect retry (which only runs when a connect fails).
    assert f is not None and "error back-off 60 s (max 300 s)" in f.message, f
    assert "took 61 s" in f.message and "error wait time 5, 30;" in f.fix
    f = recovery_cause(plan, slow, plan.sessions[0].key, 45.0, BirdRouter)  # `cnilab test` gave up at 45 s
    assert f is not None and "error back-off 60 s" in f.message
    fast = RouterFacts(kind="bird", neighbors=[_neighbor(plan)], bfd=[])
    assert recovery_cause(plan, fast, plan.sessions[0].key, 61.0, BirdRouter) is None  # not the customer's timers


def test_gobgp_has_no_bfd_and_says_so(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, kind="gobgp", dataplane="v1", bfd=True)
    facts = RouterFacts(kind="gobgp", neighbors=[_neighbor(plan, peer=str(s.cf_addr), session=s.key)
                                                 for s in plan.sessions], bfd=None)
    found = [f for f in judge(plan, facts, GobgpRouter, DATAPLANES["v1"]) if f.severity != "info"]
    assert {(f.check, f.severity) for f in found} == {("bfd-missing", "warn")}
    assert "GoBGP 3 has no BFD" in found[0].message and "600 ms" in found[0].message


def test_bfd_left_off_by_a_daemon_that_has_it_fails_with_the_fix(tmp_path: Path) -> None:
    """The same cost as a daemon without BFD, but a FAIL: the customer's own BFD is one line away."""
    plan = make_plan(tmp_path, kind="frr", dataplane="v1", bfd=True)
    facts = RouterFacts(kind="frr", neighbors=[_neighbor(plan, peer=str(s.cf_addr), session=s.key)
                                               for s in plan.sessions], bfd=[])
    found = [f for f in judge(plan, facts, FrrRouter, DATAPLANES["v1"]) if f.severity != "info"]
    assert {(f.check, f.severity) for f in found} == {("bfd-missing", "fail")}
    f = found[0]
    assert f.message.startswith(f"no BFD toward {plan.sessions[0].cf_addr}, and Cloudflare runs BFD 200 ms x 3")
    assert "hold time (9 s) to detect instead of 600 ms" in f.message
    assert "bfd profile cni" in f.fix and "BFD off for" in f.evidence


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_bird_default_error_wait_is_named_as_the_slow_recovery(tmp_path: Path, mini_lab) -> None:
    """A real BIRD without `error wait time` stays down ~60 s after a hold-timer expiry; we name that."""
    import os
    import time

    if os.geteuid() != 0 or missing_binaries("bird") or missing_binaries("frr"):
        pytest.skip("needs root, BIRD and FRR")
    case = CASES["bird-default-error-wait"]
    plan = make_plan(tmp_path, kind="bird", config=_config(tmp_path, case))
    lab = mini_lab(plan, ["cf", "cust"])
    # Like the edge, the stand-in offers no graceful restart: with it BIRD would treat the expiry as
    # the peer restarting (keep routes, reconnect at once) instead of an error with its back-off.
    peer_conf = frr_peer_conf(plan).replace("router bgp 13335\n", "router bgp 13335\n bgp graceful-restart-disable\n")
    FrrRouter(lab, "cf").start(peer_conf, source="peer")
    start_customer(lab)
    bird = BirdRouter(lab)
    v4 = plan.sessions[0]

    def state() -> str | None:
        return next((n.state for n in bird.bgp() if n.session == v4.key), None)

    wait_for(lambda: state() == "Established", 45, what="BIRD Established")
    # Silence the link for longer than the hold time: BIRD's hold timer expires (an error).
    rules = tmp_path / "drop.nft"
    rules.write_text('table inet cnilab_t {\n chain in {\n  type filter hook input priority 0;\n'
                     '  iifname "ic1" drop\n }\n}\n')
    lab.run("cust", ["nft", "-f", str(rules)])
    try:
        wait_for(lambda: state() != "Established", v4.hold_time + 5, what="hold timer expiry")
    finally:
        lab.run("cust", ["nft", "delete", "table", "inet", "cnilab_t"], check=False)
    t0 = time.monotonic()
    wait_for(lambda: state() == "Established", 60 + 30, what="BIRD back after its error wait")
    took = time.monotonic() - t0
    assert took >= 40, f"back after {took:.0f} s: BIRD's 60 s error wait did not apply?"
    f = recovery_cause(plan, bird.facts(), v4.key, took, BirdRouter)
    assert f is not None and "error back-off 60 s (max 300 s)" in f.message, f
    assert "error wait time 5, 30;" in f.fix


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("kind", kind_params())
def test_cnilab_test_passes_each_kind_with_no_warning(kind: str, short_state: Path) -> None:
    """`cnilab test` on v2 with each kind's shipped example: every step passes, the router step is clean."""
    from cnilab.sim.rehearse import RunOptions, run_acceptance

    rep = run_acceptance(RunOptions(topology=Path(__file__).parent.parent / "topologies" / "v2-direct.yml",
                                    customer_config=good_config(kind)))
    assert rep.router_kind == kind  # sniffed from the file
    assert rep.passed, rep.failed
    router = rep.step("router")
    assert router.status == "pass" and not any(c.startswith(("WARN", "FAIL")) for c in router.checks), router
    notes = [c for s in rep.steps for c in s.checks if c.startswith("NOTE")]
    assert bool(notes) == (kind == "gobgp"), notes  # what cnilab did for the router is said, only when it did


@pytest.mark.root
@pytest.mark.daemons
def test_cnilab_bgp_shows_the_customers_negotiated_timers(short_state: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.labs import running_lab

    if os.geteuid() != 0:
        pytest.skip("needs root")
    with running_lab(short_state, "v2-direct.yml", wait_prefixes=False) as lab:
        from cnilab.sim.edge.control import EdgeClient

        EdgeClient(lab.state.control["edge"]).wait_established(timeout=60)
        out = wait_for(lambda: (lambda r: r.stdout if "negotiated hold" in r.stdout else None)(subprocess.run(
            [sys.executable, "-m", "cnilab.sim.cli.main", "bgp", "--lab", lab.name], capture_output=True, text=True,
            timeout=60)), 20, what="cnilab bgp with timers")
    assert "lax1/v4: your router negotiated hold 9 s, keepalive 3 s" in out, out
    assert "WARN" not in out


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("topology", ["ha-three-site.yml", "magic-transit-cni.yml"])
@pytest.mark.parametrize("kind", kind_params())
def test_templates_cross_check_clean_on_multi_site_and_magic_transit(kind: str, topology: str,
                                                                     short_state: Path) -> None:
    """Six sessions over three sites, a transit backup, Magic Transit's GRE: no false finding on any kind."""
    from cnilab.sim.facts import router_kinds

    from tests.labs import running_lab

    def edit(topo):
        router = topo.customer.router.model_copy(update={"kind": kind})
        return topo.model_copy(update={"customer": topo.customer.model_copy(update={"router": router})})

    with running_lab(short_state, topology, edit=edit) as lab:
        from cnilab.sim.topology import load_topology

        from tests.labs import TOPOLOGIES

        dataplanes = {ic.name: ic.dataplane for ic in load_topology(TOPOLOGIES / topology).interconnects}
        findings = cross_check(lab, dataplanes)
    shown = "\n".join(f"{f.severity} {f.check} {f.session}: {f.message}" for f in findings)
    verdicts = {(f.check, f.severity) for f in findings if f.severity != "info"}
    expected = set() if router_kinds()[kind].bfd else {("bfd-missing", "warn")}
    assert verdicts == expected, shown
    sessions = {s.key for s in lab.plan.sessions}
    assert {f.session for f in findings if f.check == "timers"} == sessions, shown  # every session was read
