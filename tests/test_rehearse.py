"""``cnilab rehearse`` / ``cnilab test``: real labs, real daemons, the mock API, and the advice.

The end-to-end tests build a real lab per run (ExaBGP edge, FRR or BIRD customer, GRE, BFD) and
check the verdict *and* where and why it failed: a wrong ASN fails the BGP call with the edge's
NOTIFICATION, a router without an MSS clamp fails the MSS probe with the fix lines, a /25 fails
the prefix check with the import policy's reason. Input errors are checked without root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cnilab.sim.rehearse import Report, RunOptions, StepResult, render_junit, run_acceptance, run_rehearsal
from cnilab.sim.rehearse.runner import build_run_plan, sniff_kind
from cnilab.sim.topology.load import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "examples" / "customer-configs"
DATAPLANE = REPO / "examples" / "dataplane" / "ewr1-gre.sh"  # the customer's GRE tunnel + MSS clamp
V1 = REPO / "topologies" / "v1-gre.yml"


def _netns_of(lab: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.startswith(f"cnilab-{lab}-")]


def _rehearse(**kw) -> Report:
    rep = run_rehearsal(RunOptions(topology=kw.pop("topology", V1), **kw))
    assert _netns_of(rep.lab) == [], "namespaces left behind"
    return rep


# -- end to end, good configs ------------------------------------------------------------------------
@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("config", ["frr-v1-gre.conf", "bird-v1-gre.conf"])
def test_rehearsal_passes_with_shipped_config(short_state: Path, config: str) -> None:
    rep = _rehearse(customer_config=CONFIGS / config, customer_dataplane=DATAPLANE)
    assert rep.passed, [s for s in rep.steps if s.status != "pass"]
    assert [s.status for s in rep.steps] == ["pass"] * len(rep.steps)
    assert rep.router_kind == ("bird" if config.startswith("bird") else "frr")
    text = {s.id: "\n".join(s.checks) for s in rep.steps}
    assert "status Healthy" in text["cross-connect"]
    assert "edge holds no BGP session until a CNI object exists" in text["cross-connect"]
    assert "3/3 replies" in text["ping"]
    assert "ewr1/v4: Established with AS65010" in text["bgp"] and "ewr1/v6: Established" in text["bgp"]
    assert "IPv4: 15/15 Cloudflare prefixes" in text["cf-prefixes"]
    assert "accepted: 198.51.100.0/24, 2001:db8:cafe::/48" in text["customer-prefixes"]
    assert "BFD Up with 192.0.2.11" in text["bfd"]
    assert "WARN" not in text["router"] and "negotiated hold 9 s" in text["router"]
    assert "customer_to_cf: measured 1476" in text["mtu"]
    assert "-> 1436" in text["mss"] and "from your nft line" in rep.step("mss").provenance
    assert "3/3 replies" in text["tunnel"] and "as you declared it" in rep.step("tunnel").provenance
    assert "Unhealthy: light level below" in text["go-live"] and "fault cleared -> Healthy" in text["go-live"]
    # the fault was held until the edge saw the dead link (BFD 900 ms), then BGP recovered
    assert "ewr1: the edge tore its sessions down" in text["go-live"] and "(BFD 3x300 ms)" in text["go-live"]
    assert "BGP Established again" in text["go-live"]
    suite = ET.fromstring(render_junit(rep)).find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(rep.steps)) and suite.get("failures") == "0"


# -- broken configs fail at the right step with the right advice --------------------------------------
@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_wrong_asn_fails_the_bgp_call_with_the_notification(short_state: Path) -> None:
    rep = _rehearse(customer_config=CONFIGS / "frr-wrong-asn.conf")
    assert not rep.passed and rep.failed is not None and rep.failed.id == "bgp"
    advice = "\n".join(rep.failed.advice)
    assert "NOTIFICATION 2/2 Bad Peer AS" in advice and "opens as AS65011" in advice and "router bgp 65010" in advice
    after = {s.id: s for s in rep.steps[rep.steps.index(rep.failed) + 1:]}
    # the router step does not need BGP: it runs, points back to the ASN and adds the missing BFD
    assert after["router"].status == "fail" and "router.local-as (step 5.2)" in "\n".join(after["router"].checks)
    assert all(s.status == "not-run" and "needs step 5.2 (bgp)" in s.detail
               for sid, s in after.items() if sid != "router"), after
    assert rep.step("cni").status == "pass"  # the API side was fine: the router is wrong


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_no_mss_clamp_fails_the_mss_probe_with_fix_lines(short_state: Path, tmp_path: Path) -> None:
    topo = tmp_path / "no-mss.yml"
    topo.write_text(V1.read_text().replace("router: {kind: frr}", "router: {kind: frr, mss_clamp: null}"))
    rep = _rehearse(topology=topo)
    assert rep.mss_clamp == "None"
    assert not rep.passed and rep.failed is not None and rep.failed.id == "mss", rep.failed
    assert "1460" in rep.failed.detail
    advice = "\n".join(rep.failed.advice)
    assert "--set-mss 1436" in advice and "adjust-mss 1436" in advice and "gre-ewr1" in advice
    assert rep.step("mtu").status == "pass"


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_announcing_a_25_fails_with_the_policy_reason(short_state: Path) -> None:
    rep = _rehearse(customer_config=CONFIGS / "frr-announce-25.conf")
    step = rep.step("customer-prefixes")
    assert not rep.passed and step.status == "fail", step
    advice = "\n".join(step.advice)
    assert "198.51.100.0/25" in advice and "198.51.100.128/25" in advice
    assert "longer than /24" in advice and "max-prefix-length" in advice
    assert "198.51.100.0/24" not in step.detail  # the /24 itself was accepted


# -- cnilab test (CLI, JUnit, JSON) ---------------------------------------------------------------------
@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_cli_test_passes_and_writes_junit(short_state: Path, tmp_path: Path) -> None:
    junit = tmp_path / "results.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "cnilab.sim.cli.main", "test", "--customer-config", str(CONFIGS / "frr-v1-gre.conf"),
         "--dataplane", str(DATAPLANE), "--topology", str(V1), "--junit", str(junit), "--json"],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = Report.model_validate_json(proc.stdout)
    assert rep.suite == "test" and rep.passed
    assert [s.id for s in rep.steps] == ["config", "lab", "tunnel", "peers", "router", "cf-prefixes", "announce",
                                         "bfd", "mtu", "mss", "failover", "no-leaks", "max-prefix"]
    assert rep.step("no-leaks").status == "skip"  # v1-gre has no transit
    mp = rep.step("max-prefix")  # the example leaves room for Cloudflare's table to grow
    assert mp.status == "pass" and "ewr1/v4: your limit 1000" in mp.checks[0] and mp.checks[0].endswith(": ok"), mp
    assert "down after" in rep.step("failover").checks[0]
    assert "your router dropped its session to 192.0.2.10 after" in rep.step("failover").checks[1]
    assert not any(c.startswith(("WARN", "FAIL")) for c in rep.step("router").checks), rep.step("router")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "13" and suite.get("failures") == "0"
    assert _netns_of(rep.lab) == []


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_acceptance_measures_failover_across_three_sites(short_state: Path) -> None:
    """Several paths: the primary is blackholed and the stream must move to the next (BFD ~900 ms)."""
    rep = run_acceptance(RunOptions(topology=REPO / "topologies" / "ha-three-site.yml"))
    assert _netns_of(rep.lab) == []
    assert rep.passed, rep.failed
    fo = rep.step("failover").checks
    assert "cf_to_customer (inet -> origin): moved ewr1 -> ewr2" in fo[0], fo
    assert "customer_to_cf (origin -> inet): moved ewr1 -> ewr2" in fo[1], fo  # the customer's own switchover
    assert "all sessions Established again" in fo[-1]
    assert "received 1 route(s) from you: 198.51.100.0/24" in rep.step("no-leaks").checks[0]


# -- bad input: clear errors, nothing built (no root needed) -------------------------------------------
def test_missing_customer_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--customer-config = .*nope\.conf.*file not found"):
        build_run_plan(RunOptions(topology=V1, customer_config=tmp_path / "nope.conf"), "x")


def test_bad_mss_clamp_names_the_field() -> None:
    _, plan = build_run_plan(RunOptions(topology=V1, mss_clamp="none"), "x")
    assert plan.customer_router.mss_clamp is None
    bad = RunOptions.model_construct(topology=V1, customer_config=None, kind=None, mss_clamp="big", lab=None)
    with pytest.raises(ConfigError, match=r"customer\.router\.mss_clamp = 'big'"):
        build_run_plan(bad, "x")


def test_cli_refuses_bad_input_before_building_anything(tmp_path: Path) -> None:
    for argv, needle in ((["rehearse", "--customer-config", str(tmp_path / "nope.conf")], "file not found"),
                         (["test", "--kind", "cisco"], "--kind"),
                         (["rehearse", "--mss-clamp", "lots"], "--mss-clamp"),
                         (["test", "--topology", str(tmp_path / "missing.yml")], "cannot read file")):
        proc = subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *argv], capture_output=True, text=True,
                              timeout=60, cwd=REPO)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert needle in proc.stderr, (argv, proc.stderr)


def test_kind_is_sniffed_from_the_config() -> None:
    assert sniff_kind(CONFIGS / "frr-good.conf") == "frr"
    assert sniff_kind(CONFIGS / "bird-good.conf") == "bird"
    assert sniff_kind(CONFIGS / "gobgp-good.toml") == "gobgp"
    _, plan = build_run_plan(RunOptions(topology=V1, customer_config=CONFIGS / "bird-v1-gre.conf"), "x")
    assert plan.customer_router.kind == "bird"
    assert plan.customer_router.config == (CONFIGS / "bird-v1-gre.conf").resolve()


def test_junit_marks_failure_and_not_run_steps() -> None:
    rep = Report(suite="rehearse", topology="v1-gre", topology_path=str(V1), lab="x", router_kind="frr",
                 customer_config=None, mss_clamp="auto", passed=False, seconds=1.0, steps=[
                     StepResult(index="1", id="a", title="A", status="pass", checks=["ok"]),
                     StepResult(index="2", id="b", title="B", status="fail", detail="broke", advice=["fix it"]),
                     StepResult(index="3", id="c", title="C", status="not-run")])
    suite = ET.fromstring(render_junit(rep)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == "broke" and "-> fix it" in (failure.text or "")
    assert cases[2].find("skipped") is not None
    assert json.loads(rep.model_dump_json())["steps"][1]["advice"] == ["fix it"]


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR's vtysh is not installed")
def test_config_the_parser_refuses_fails_first_and_builds_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    rep = run_acceptance(RunOptions(topology=V1, customer_config=CONFIGS / "frr-typo.conf"))
    assert rep.failed is not None and rep.failed.id == "config" and rep.failed.index == "1"
    assert "FRR refuses it" in rep.failed.detail and "frr-typo.conf" in rep.failed.detail
    assert [s.status for s in rep.steps[1:]] == ["not-run"] * (len(rep.steps) - 1)
    assert not (tmp_path / "labs").exists() or not any((tmp_path / "labs").iterdir())


def test_leaks_are_one_finding_and_other_refusals_one_per_rule() -> None:
    from cnilab.sim.edge.control import RejectedRoute
    from cnilab.sim.rehearse.advice import rejected_findings

    def r(prefix: str, rule: str) -> RejectedRoute:
        return RejectedRoute(prefix=prefix, rule=rule, reason=f"{prefix} refused ({rule})")

    got = rejected_findings({"ewr1/v4": [r("104.16.0.0/13", "cloudflare-route"), r("0.0.0.0/0", "default-route"),
                                         r("192.0.2.10/31", "connected-link"), r("198.51.100.0/25",
                                                                                  "max-prefix-length")],
                             "ewr2/v4": [r("104.16.0.0/13", "cloudflare-route")]},
                            ["198.51.100.0/24"], {"ewr1/v4": "192.0.2.10", "ewr2/v4": "192.0.2.12"})
    assert [f.check for f in got] == ["announce.leak", "announce.max-prefix-length"]
    leak = got[0]
    assert leak.subject == "ewr1/v4, ewr2/v4"
    assert "re-advertises routes it learned from Cloudflare back to Cloudflare (1: 104.16.0.0/13)" in leak.cause
    assert "sends a default route (1: 0.0.0.0/0)" in leak.cause and "link nets (1: 192.0.2.10/31)" in leak.cause
    assert "`neighbor 192.0.2.10 route-map TO-CF out`" in leak.fix and "`neighbor 192.0.2.12 route-map TO-CF out`" \
        in leak.fix and "TO-CF6" not in leak.fix


def test_steps_that_need_a_failed_step_are_not_run_others_run() -> None:
    from cnilab.sim.rehearse.runner import ACCEPTANCE, REHEARSAL, blocked_by

    for defs in (ACCEPTANCE, REHEARSAL):
        ids = [d.id for d in defs]
        for d in defs:  # every dependency exists and comes earlier
            assert all(n in ids[:ids.index(d.id)] for n in d.needs), d
    done = {"config": StepResult(index="1", id="config", title="c", status="pass"),
            "lab": StepResult(index="2", id="lab", title="l", status="pass"),
            "peers": StepResult(index="3", id="peers", title="p", status="fail")}
    by_id = {d.id: d for d in ACCEPTANCE}
    assert blocked_by(by_id["router"], done, ACCEPTANCE) is None
    assert blocked_by(by_id["mtu"], done, ACCEPTANCE) is done["peers"]
    done["mtu"] = StepResult(index="8", id="mtu", title="m", status="fail")
    assert blocked_by(by_id["mss"], done, ACCEPTANCE) is done["peers"]  # mtu's failure does not hide mss...
    done["peers"] = StepResult(index="3", id="peers", title="p", status="pass")
    assert blocked_by(by_id["mss"], done, ACCEPTANCE) is None  # ...and with BGP up it runs
    done = {"config": StepResult(index="1", id="config", title="c", status="fail"),
            "lab": StepResult(index="2", id="lab", title="l", status="not-run")}
    assert blocked_by(by_id["peers"], done, ACCEPTANCE) is done["config"]  # the root cause is named


def test_warn_is_shown_in_text_json_and_junit() -> None:
    from io import StringIO

    from cnilab.sim.rehearse.checklist import print_checklist, print_step
    from cnilab.sim.rehearse.model import Finding
    from rich.console import Console

    warn = Finding(severity="warn", check="router.timers", subject="ewr1/v4", cause="negotiated hold time 6 s",
                   fix="keep it at 9 s or more")
    step = StepResult(index="4", id="router", title="Router", status="warn", checks=["timers"], findings=[warn])
    rep = Report(suite="test", topology="v1-gre", topology_path=str(V1), lab="x", router_kind="frr",
                 customer_config=None, mss_clamp="auto", passed=True, seconds=1.0, steps=[step], warnings=1)
    buf = StringIO()
    con = Console(file=buf, width=200)
    print_step(con, step)
    print_checklist(con, rep)
    text = buf.getvalue()
    assert "WARN    4 Router" in text and "WARN ewr1/v4: negotiated hold time 6 s" in text
    assert "-> keep it at 9 s or more" in text and "PASSED in 1.0s (1 warning(s))" in text
    assert text.count("negotiated hold time 6 s") == 1
    assert json.loads(rep.model_dump_json())["steps"][0]["status"] == "warn"
    suite = ET.fromstring(render_junit(rep)).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    case = suite.find("testcase")
    assert case is not None and case.find("failure") is None
    assert "WARN ewr1/v4: negotiated hold time 6 s -> keep it at 9 s or more" in (case.findtext("system-out") or "")
    assert any(p.get("name") == "warnings" and p.get("value") == "1" for p in suite.iter("property"))


def test_router_checks_registry_never_passes_a_check_that_could_not_run() -> None:
    from cnilab.sim.rehearse.checks import REGISTRY, CheckRegistry, run_checks
    from cnilab.sim.rehearse.model import Finding

    reg = CheckRegistry()

    @reg.register("x.broken", "A check that raises")
    def broken(_ctx):
        raise RuntimeError("vtysh not answering")

    @reg.register("x.typo", "Neighbor address")
    def typo(_ctx):
        return [Finding(severity="fail", check="x.typo", cause="your router peers with 192.0.2.12",
                        fix="Cloudflare is 192.0.2.10")]

    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x.typo", "again")(lambda _c: [])
    ran, findings = run_checks(None, reg.all())  # type: ignore[arg-type]
    assert [f.check for f in findings] == ["x.broken.not-run", "x.typo"]
    assert findings[0].severity == "warn" and "vtysh not answering" in findings[0].cause
    assert ran == ["A check that raises: could not run", "Neighbor address: FAIL x.typo"]
    assert {c.id for c in REGISTRY.all()} >= {"router.timers", "router.flaps"}
