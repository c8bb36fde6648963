"""``cnilab verify`` and ``cnilab test --record`` on real labs: ExaBGP as Cloudflare, FRR as the customer
with a real config, ExaBGP as the transit AS64500 recording what the customer announces.

Each config is the shipped template for ``v1-gre-transit`` with one realistic edit: a prepend toward
Cloudflare, a transit neighbor without an outbound filter (leaks Cloudflare's routes), a
``maximum-prefix`` below Cloudflare's published table. The baseline observation is recorded once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnilab.sim.cli.main import app
from cnilab.sim.verify.model import Observation, Verdict
from cnilab.sim.verify.runner import judge
from typer.testing import CliRunner

from tests.labs import private_state

REPO = Path(__file__).resolve().parent.parent
TOPO = REPO / "topologies" / "v1-gre-transit.yml"
PREPEND = "198.51.100.0/24 to ewr1 gains prepend 65010 65010"

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One short private state dir for the module's labs (see tests.labs.private_state)."""
    with private_state(tmp_path_factory.mktemp("vf")) as d:
        yield d


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology

    d = tmp_path_factory.mktemp("cfg")
    base = render_frr(build_plan(load_topology(TOPO), "v1-gre-transit"))
    edits = {
        "base": base,
        "prepend": base.replace("route-map CNILAB-FROM-TRANSIT permit 10", "route-map PREPEND-TO-CF permit 10\n"
                                " set as-path prepend 65010 65010\nexit\n!\nroute-map CNILAB-FROM-TRANSIT permit 10")
                       .replace("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
                                "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n"
                                "  neighbor 192.0.2.10 route-map PREPEND-TO-CF out"),
        # the classic leak: "permit everything" toward the transit instead of our own prefixes
        "leak": base.replace("route-map CNILAB-FROM-TRANSIT permit 10",
                             "route-map ALLOW-ALL permit 10\nexit\n!\nroute-map CNILAB-FROM-TRANSIT permit 10")
                    .replace("  neighbor 203.0.113.0 prefix-list CNILAB-ANNOUNCE-V4 out",
                             "  neighbor 203.0.113.0 route-map ALLOW-ALL out"),
        # the same mistake toward the settlement-free peer: Cloudflare's and the transit's routes go out
        "peerleak": base.replace("route-map CNILAB-FROM-TRANSIT permit 10",
                                 "route-map ALLOW-ALL permit 10\nexit\n!\nroute-map CNILAB-FROM-TRANSIT permit 10")
                        .replace("  neighbor 203.0.113.4 prefix-list CNILAB-ANNOUNCE-V4 out",
                                 "  neighbor 203.0.113.4 route-map ALLOW-ALL out"),
        "maxprefix": base.replace("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
                                  "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n"
                                  "  neighbor 192.0.2.10 maximum-prefix 10"),
    }
    out = {}
    for name, text in edits.items():
        assert name == "base" or text != base, f"edit {name} did not apply"
        out[name] = d / f"{name}.conf"
        out[name].write_text(text)
    (d / "prepend.expect").write_text(f"# the intended change\n{PREPEND}\n")
    out["expect"] = d / "prepend.expect"
    return out


@pytest.fixture(scope="module")
def baseline(state: Path, configs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnilab.sim.rehearse.model import RunOptions
    from cnilab.sim.verify.runner import record

    obs = record(RunOptions(topology=TOPO, customer_config=configs["base"]), "baseline")
    f = tmp_path_factory.mktemp("obs") / "baseline.json"
    f.write_text(obs.model_dump_json())
    return f


def _verify(*args: str) -> tuple[int, Verdict, str]:
    res = CliRunner().invoke(app, ["verify", "--topology", str(TOPO), "--json", *args])
    assert res.exit_code in (0, 1), res.output + res.stderr
    return res.exit_code, Verdict.model_validate_json(res.stdout), res.stderr


def test_baseline_is_converged_and_warns_about_missing_max_prefix(baseline: Path) -> None:
    obs = Observation.model_validate_json(baseline.read_text())
    assert obs.converged, obs.notes
    assert [s.state for s in obs.neighbors["ewr1"].sessions] == ["Established", "Established"]
    assert obs.neighbors["transit"].sessions[0].state == "established"
    assert set(obs.neighbors["transit"].routes) == {"198.51.100.0/24"}  # the template is valley-free
    assert obs.neighbors["peer"].sessions[0].state == "established"
    assert set(obs.neighbors["peer"].routes) == {"198.51.100.0/24"}
    assert obs.neighbors["ewr1"].routes["198.51.100.0/24"].as_path == [65010]
    # failover: ewr1 pulled, both directions fall back to the internet backup within BFD detection
    fo = obs.failover
    assert fo is not None and fo.link == "ewr1" and fo.mechanism == "BFD detection", obs.notes
    assert {d.direction: (d.path_before, d.path_after) for d in fo.directions} == {
        "cf_to_customer": ("ewr1", "internet-backup"), "customer_to_cf": ("ewr1", "internet-backup")}
    assert fo.ok, fo
    assert "8.8.8.0/24" in obs.installed["ipv4"] and "104.16.0.0/13" in obs.installed["ipv4"]
    assert {m.verdict for m in obs.max_prefix} == {"absent"}
    assert [f.severity for f in obs.findings if f.check == "max-prefix"] == ["warn", "warn"]
    assert any(p.name == "mtu customer_to_cf" and p.value == 1476 for p in obs.probes)
    assert "edge routes" in obs.evidence and any(k.startswith("customer: vtysh") for k in obs.evidence)


def test_identical_change_two_labs_side_by_side_exit_0(state: Path, configs: dict[str, Path], tmp_path: Path) -> None:
    md = tmp_path / "summary.md"
    code, v, _ = _verify("--baseline", str(configs["base"]), "--candidate", str(configs["base"]), "--parallel",
                         "--markdown", str(md), "--junit", str(tmp_path / "j.xml"))
    assert code == 0 and v.differences == [] and v.passed
    assert v.baseline.lab != v.candidate.lab
    assert "✅ cnilab verify: PASS" in md.read_text()


def test_declared_prepend_passes_and_the_same_prepend_undeclared_fails(baseline: Path, configs: dict[str, Path]
                                                                      ) -> None:
    code, v, _ = _verify("--baseline-observation", str(baseline), "--candidate", str(configs["prepend"]),
                         "--expect", str(configs["expect"]))
    assert code == 0, v.undeclared
    assert [d.text for d in v.differences] == [PREPEND] and v.differences[0].declared
    assert v.candidate.neighbors["ewr1"].routes["198.51.100.0/24"].as_path == [65010, 65010, 65010]
    undeclared = judge(v.baseline, v.candidate, [])
    assert undeclared.exit_code == 1 and undeclared.undeclared == [PREPEND]


def test_leak_to_transit_fails_naming_prefixes_and_the_filter(baseline: Path, configs: dict[str, Path]) -> None:
    code, v, err = _verify("--baseline-observation", str(baseline), "--candidate", str(configs["leak"]))
    assert code == 1
    leak = next(f for f in v.failures if f.subject == "cloudflare-route to transit")
    assert "104.16.0.0/13 (path 65010 13335)" in leak.text and "valley-free" in leak.text
    assert "neighbor 203.0.113.0 prefix-list TO-TRANSIT out" in leak.fix["frr"]
    transit = v.candidate.neighbors["transit"].routes
    assert transit["104.16.0.0/13"].as_path == [65010, 13335]
    assert "104.16.0.0/13 to transit added (AS path 65010 13335)" in v.undeclared
    assert "valley-free" in err


def test_leak_to_the_peer_fails_naming_prefixes_and_the_filter(baseline: Path, configs: dict[str, Path]) -> None:
    code, v, _ = _verify("--baseline-observation", str(baseline), "--candidate", str(configs["peerleak"]),
                         "--no-probes")
    assert code == 1
    cf = next(f for f in v.failures if f.subject == "cloudflare-route to peer")
    assert "104.16.0.0/13 (path 65010 13335)" in cf.text and "your peer" in cf.text
    other = next(f for f in v.failures if f.subject == "not-own to peer")
    assert "8.8.8.0/24 (path 65010 64500 15169)" in other.text  # the transit's routes, re-advertised
    assert "neighbor 203.0.113.4 prefix-list TO-PEER out" in cf.fix["frr"] and "to_peer" in cf.fix["bird"]
    assert v.candidate.neighbors["peer"].routes["104.16.0.0/13"].as_path == [65010, 13335]
    assert set(v.candidate.neighbors["transit"].routes) == {"198.51.100.0/24"}  # the transit filter still holds
    assert not any(f.subject.endswith("to transit") for f in v.failures)


def test_max_prefix_below_cloudflares_table_trips_and_fails(baseline: Path, configs: dict[str, Path]) -> None:
    code, v, _ = _verify("--baseline-observation", str(baseline), "--candidate", str(configs["maxprefix"]),
                         "--no-probes")
    assert code == 1
    mp = {m.session: m for m in v.candidate.max_prefix}
    assert mp["ewr1/v4"].limit == 10 and mp["ewr1/v4"].verdict == "too-low" and mp["ewr1/v4"].published == 15
    v4 = next(s for s in v.candidate.neighbors["ewr1"].sessions if s.key == "ewr1/v4")
    assert v4.state != "Established" and "6/1" in (v4.last_notification or "")
    f = next(f for f in v.failures if f.subject == "ewr1/v4")
    assert "fired (Cease 6/1" in f.text and "maximum-prefix" in f.fix["frr"]


def test_test_record_writes_the_same_observation(state: Path, configs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "main.json"
    # an explicit clamp: with the user's own config cnilab installs none unless told (the MSS step would fail)
    res = CliRunner().invoke(app, ["test", "--customer-config", str(configs["base"]), "--topology",
                                   str(TOPO), "--mss-clamp", "1436", "--record", str(out)])
    assert res.exit_code == 0, res.output + res.stderr
    obs = Observation.model_validate(json.loads(out.read_text()))
    assert obs.label == "recorded" and obs.converged
    assert set(obs.neighbors) == {"ewr1", "transit", "peer"}
    assert obs.failover is not None and obs.failover.ok


def test_customer_side_gshut_moves_cloudflares_best_path(state: Path, tmp_path: Path) -> None:
    """The customer's own maintenance on EWR1: it tags what it sends there 65535:0; the edge's best
    path (and its kernel route) moves to EWR2, and verify says so in two declared sentences."""
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology

    topo = REPO / "topologies" / "ha-three-site.yml"
    base = render_frr(build_plan(load_topology(topo), "ha-three-site"))
    cand = base.replace("!\nrouter bgp", "route-map MAINT-EWR1-OUT permit 10\n set community graceful-shutdown\nexit\n"
                                          "!\nrouter bgp", 1)
    cand = cand.replace("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
                        "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n"
                        "  neighbor 192.0.2.10 route-map MAINT-EWR1-OUT out", 1)
    assert cand.count("MAINT-EWR1-OUT") == 2
    (tmp_path / "base.conf").write_text(base)
    (tmp_path / "cand.conf").write_text(cand)
    intent = ["198.51.100.0/24 to ewr1 gains community 65535:0",
              "198.51.100.0/24 at Cloudflare moves from ewr1 to ewr2"]
    (tmp_path / "maint.expect").write_text("\n".join(intent) + "\n")
    res = CliRunner().invoke(app, ["verify", "--topology", str(topo), "--baseline", str(tmp_path / "base.conf"),
                                   "--candidate", str(tmp_path / "cand.conf"), "--expect",
                                   str(tmp_path / "maint.expect"), "--parallel", "--no-probes", "--json"])
    assert res.exit_code in (0, 1), res.output
    v = Verdict.model_validate_json(res.stdout)
    assert sorted(d.text for d in v.differences) == sorted(intent), v.undeclared
    assert res.exit_code == 0
    routes = {n: v.candidate.neighbors[n].routes["198.51.100.0/24"] for n in ("ewr1", "ewr2", "lax1")}
    assert routes["ewr2"].best and not routes["ewr1"].best and routes["ewr1"].communities == ["65535:0"]


def test_cnilab_test_fails_on_a_leak_to_transit(state: Path, configs: dict[str, Path]) -> None:
    from cnilab.sim.rehearse import RunOptions, run_acceptance

    rep = run_acceptance(RunOptions(topology=TOPO, customer_config=configs["leak"], mss_clamp=1436))
    assert not rep.passed and rep.failed is not None and rep.failed.id == "no-leaks"
    assert "104.16.0.0/13 (path 65010 13335)" in rep.failed.detail and "valley-free" in rep.failed.detail
    assert any("prefix-list TO-TRANSIT out" in a for a in rep.failed.advice)


def test_cnilab_test_reports_a_maximum_prefix_that_fires(state: Path, configs: dict[str, Path]) -> None:
    from cnilab.sim.rehearse import RunOptions, run_acceptance

    rep = run_acceptance(RunOptions(topology=TOPO, customer_config=configs["maxprefix"], mss_clamp=1436))
    step = next(s for s in rep.steps if s.id == "max-prefix")
    assert not rep.passed and step.status == "fail", step
    assert "ewr1/v4: your maximum-prefix 10 fired (Cease 6/1" in step.detail
    assert any("maximum-prefix" in a and "restart 5" in a for a in step.advice)
    assert "ewr1/v4: your limit 10; Cloudflare sends 15 route(s) here and publishes 15: too-low" in step.checks


def test_a_customer_without_the_peer_session_converges_with_a_note(state: Path, configs: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    """Not peering with a third party is a fact to record, not a convergence still under way."""
    from cnilab.sim.rehearse.model import RunOptions
    from cnilab.sim.verify.observe import SETTLE_S
    from cnilab.sim.verify.runner import record

    cfg = tmp_path / "nopeer.conf"
    cfg.write_text("\n".join(ln for ln in configs["base"].read_text().splitlines() if "203.0.113.4" not in ln) + "\n")
    obs = record(RunOptions(topology=TOPO, customer_config=cfg), "candidate", probes=False)
    assert obs.converged and obs.convergence_s < SETTLE_S + 10, obs.notes
    assert obs.neighbors["peer"].sessions[0].state != "established" and obs.neighbors["peer"].routes == {}
    assert any("peer session" in n and "203.0.113.4" in n for n in obs.notes)
    assert obs.neighbors["transit"].sessions[0].state == "established"
