"""``cnilab verify`` logic without a lab: difference sentences, the --expect file, the verdict, leaks,
rendering, and bad input refused with exit 2 before anything is built."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cnilab.sim.cli.main import app
from cnilab.sim.topology.load import ConfigError
from cnilab.sim.transit.leaks import classify
from cnilab.sim.verify.diff import diff, prepend_change
from cnilab.sim.verify.expect import load_expect, match
from cnilab.sim.verify.model import (
    FailoverDirection,
    FailoverObs,
    Finding,
    Neighbor,
    Observation,
    Route,
    SessionObs,
)
from cnilab.sim.verify.render import render_junit, render_markdown
from cnilab.sim.verify.runner import judge, load_observation
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
OWN = [ipaddress.ip_network("198.51.100.0/24")]


def _obs(path: list[int] | None = None, **route) -> Observation:
    r = Route(prefix="198.51.100.0/24", as_path=path or [65010], accepted=True, best=True, **route)
    nb = Neighbor(name="ewr1", kind="cloudflare", routes={r.prefix: r},
                  sessions=[SessionObs(key="ewr1/v4", state="Established", hold_time=9)])
    return Observation(label="x", topology="v1-gre", router_kind="frr", config=None, lab="t", converged=True,
                       convergence_s=5.0, hold_window_s=2.0, neighbors={"ewr1": nb},
                       installed={"ipv4": ["104.16.0.0/13"]})


def test_prepend_is_named_as_such() -> None:
    assert prepend_change([65010], [65010, 65010, 65010]) == ("gains", [65010, 65010])
    assert prepend_change([65010, 65010], [65010]) == ("loses", [65010])
    assert prepend_change([65010], [65010, 64999]) is None
    texts = [d.text for d in diff(_obs(), _obs([65010, 65010, 65010]))]
    assert texts == ["198.51.100.0/24 to ewr1 gains prepend 65010 65010"]


def test_identical_observations_have_no_difference_and_pass() -> None:
    v = judge(_obs(), _obs(), [])
    assert v.passed and v.exit_code == 0 and v.differences == []


def test_attributes_sessions_and_installs_each_become_a_sentence() -> None:
    new = _obs(med=50, communities=["65535:0"])
    new.neighbors["ewr1"].sessions[0] = SessionObs(key="ewr1/v4", state="Active", hold_time=30)
    new.installed = {"ipv4": ["8.8.8.0/24"]}
    texts = {d.text for d in diff(_obs(), new)}
    assert texts == {"198.51.100.0/24 to ewr1 MED 0 -> 50", "198.51.100.0/24 to ewr1 gains community 65535:0",
                     "session ewr1/v4 Established -> Active", "session ewr1/v4 hold time 9 -> 30",
                     "customer installs 8.8.8.0/24 (new)", "customer no longer installs 104.16.0.0/13"}


def test_declared_change_passes_undeclared_and_unobserved_fail() -> None:
    old, new = _obs(), _obs([65010, 65010, 65010])
    declared = ["198.51.100.0/24  to EWR1 gains prepend 65010 65010"]  # case and spaces do not matter
    assert judge(old, new, declared).exit_code == 0
    v = judge(old, new, [])
    assert v.exit_code == 1 and v.undeclared == ["198.51.100.0/24 to ewr1 gains prepend 65010 65010"]
    v = judge(old, old, declared)
    assert v.exit_code == 1 and v.unobserved == declared
    assert judge(old, new, ["198.51.100.0/24 to ewr1 gains prepend *"]).passed


def test_a_failing_finding_fails_even_without_a_difference() -> None:
    bad = _obs()
    bad.findings.append(Finding(severity="fail", check="leak", subject="cloudflare-route to transit", text="x"))
    warn = _obs()
    warn.findings.append(Finding(severity="warn", check="max-prefix", subject="ewr1/v4", text="y"))
    assert judge(bad, bad, []).exit_code == 1
    v = judge(warn, warn, [])
    assert v.passed and [f.check for f in v.warnings] == ["max-prefix"]


def test_expect_file_forms(tmp_path: Path) -> None:
    txt = tmp_path / "e.txt"
    txt.write_text("# intent\n198.51.100.0/24 to ewr1 gains prepend 65010 65010\n\n"
                   "198.51.100.0/24 to ewr1 now refused by Cloudflare: reason  # a colon is fine\n")
    assert load_expect(txt) == ["198.51.100.0/24 to ewr1 gains prepend 65010 65010",
                                "198.51.100.0/24 to ewr1 now refused by Cloudflare: reason"]
    yml = tmp_path / "e.yml"
    yml.write_text("changes:\n  - 198.51.100.0/24 to ewr1 MED 0 -> 50\n")
    assert load_expect(yml) == ["198.51.100.0/24 to ewr1 MED 0 -> 50"]
    yml.write_text("changes:\n  - {prefix: x}\n")
    with pytest.raises(ConfigError, match=r"changes\[0\]"):
        load_expect(yml)
    with pytest.raises(ConfigError, match="cannot read"):
        load_expect(tmp_path / "missing")
    diffs, unobserved = match(diff(_obs(), _obs(med=5)), ["198.51.100.0/24 to ewr1 MED 0 -> 5"])
    assert diffs[0].declared and unobserved == []


def test_leaks_are_classified_with_reasons() -> None:
    leaks = classify("transit", {"104.16.0.0/13": [65010, 13335], "0.0.0.0/0": [65010], "8.8.8.0/24": [65010, 64500],
                                 "198.51.100.0/24": [65010]}, OWN)
    kinds = {lk.prefix: lk.kind for lk in leaks}
    assert kinds == {"104.16.0.0/13": "cloudflare-route", "0.0.0.0/0": "default-route", "8.8.8.0/24": "not-own"}
    cf = next(lk for lk in leaks if lk.kind == "cloudflare-route")
    assert "valley-free" in cf.reason and "65010 13335" in cf.reason


def test_markdown_and_junit_name_undeclared_differences() -> None:
    v = judge(_obs(), _obs([65010, 65010]), [])
    md = render_markdown(v)
    assert "❌ cnilab verify: FAIL" in md and "**undeclared** | 198.51.100.0/24 to ewr1 gains prepend 65010" in md
    xml = render_junit(v)
    assert 'failures="1"' in xml and "undeclared difference" in xml


def test_stored_observation_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "obs.json"
    f.write_text(_obs().model_dump_json())
    assert load_observation(f) == _obs()
    f.write_text('{"label": 1}')
    with pytest.raises(ConfigError, match="not a cnilab observation"):
        load_observation(f)


@pytest.mark.parametrize("args, message", [
    (["--candidate", "nope.conf", "--baseline", "nope.conf"], "--candidate nope.conf: file not found"),
    (["--candidate", "examples/customer-configs/frr-v1-gre.conf"], "exactly one of --baseline"),
    (["--candidate", "examples/customer-configs/frr-typo.conf", "--baseline",
      "examples/customer-configs/frr-v1-gre.conf"], "FRR refuses it"),
    (["--candidate", "examples/customer-configs/frr-v1-gre.conf", "--baseline",
      "examples/customer-configs/frr-v1-gre.conf", "--expect", "missing.expect"], "cannot read"),
])
def test_bad_input_exits_2_before_any_lab(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    res = CliRunner().invoke(app, ["verify", *args])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not (tmp_path / "labs").exists() or not any((tmp_path / "labs").iterdir())


def _failover(after: str, lost_ms: float, ok: bool, link: str = "ewr1") -> FailoverObs:
    d = FailoverDirection(direction="cf_to_customer", path_before=link, path_after=after, moved=True,
                          first_packet_ms=lost_ms, loss_window_ms=lost_ms, lost=int(lost_ms / 5), within_expected=ok)
    return FailoverObs(link=link, fault="blackhole", mechanism="BFD detection", expected_ms=900, bound_ms=2300,
                       directions=[d], ok=ok)


def test_failover_changes_are_sentences_and_loss_noise_is_not() -> None:
    old, new = _obs(), _obs()
    old.failover = _failover("ewr2", 640, True)
    new.failover = _failover("ewr2", 710, True)
    assert diff(old, new) == []  # the same verdict with a different loss figure is noise
    new.failover = _failover("lax1", 9100, False)
    texts = [d.text for d in diff(old, new)]
    assert texts == ["failover cf_to_customer after pulling ewr1: ewr1 -> ewr2 becomes ewr1 -> lax1",
                     "failover cf_to_customer after pulling ewr1 now fails (lost 9100 ms, bound 2300 ms)"]
    assert judge(old, new, texts).passed and not judge(old, new, texts[:1]).passed
    new.failover = None  # not measured on one side: a note, not a change
    assert diff(old, new) == []
    assert "Failover (pull `ewr1`)" in render_markdown(judge(_obs(), old, []))


def test_third_parties_are_one_speaker_with_a_role() -> None:
    from cnilab.sim.topology import build_plan, load_topology
    from cnilab.sim.transit import party_sessions
    from cnilab.sim.transit.leaks import fix_lines
    from cnilab.sim.transit.speaker import render

    plan = build_plan(load_topology(REPO / "topologies" / "v1-gre-transit.yml"), "x")
    t, p = party_sessions(plan)
    assert (t.party, t.local_asn, str(t.local)) == ("transit", 64500, "203.0.113.0")
    assert (p.party, p.local_asn, str(p.local), str(p.peer)) == ("peer", 64501, "203.0.113.4", "203.0.113.5")
    from cnilab.sim.transit.table import third_parties

    conf = render(p, third_parties().peer, Path("/tmp/x"))
    assert "local-as 64501;" in conf and "route 185.199.108.0/22" in conf and 'description "peer";' in conf
    leaks = classify("peer", {"104.16.0.0/13": [65010, 13335], "8.8.8.0/24": [65010, 64500, 15169]}, OWN)
    assert [lk.kind for lk in leaks] == ["cloudflare-route", "not-own"] and "your peer" in leaks[0].reason
    assert "neighbor 203.0.113.4 prefix-list TO-PEER out" in fix_lines("peer", "203.0.113.4", OWN, 65010)["frr"]
