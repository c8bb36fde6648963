"""The customer owns its side of the dataplane (issue 12 section 1).

A customer brings its FRR/BIRD config *and* the lines its Linux router runs for the GRE tunnel and
the MSS clamp; cnilab builds only Cloudflare's end. The end-to-end tests run the acceptance suite
on real namespaces with the customer's own daemon and check that the good declaration passes and
each production mistake (wrong tunnel source, wrong inner /31, tunnel MTU left at 1500, no clamp,
clamp 1476) fails at the right check, with the symptom the real link shows and the named fix.
Every report says who configured what it tested.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from cnilab.sim.dataplane.customer import clamp_diagnosis
from cnilab.sim.dataplane.declared import DataplaneBlock, DataplaneSyntaxError, load_dataplane, parse_dataplane_text
from cnilab.sim.rehearse import RunOptions, render_junit, run_acceptance
from cnilab.sim.rehearse.runner import build_run_plan
from cnilab.sim.topology.load import ConfigError, load_topology
from cnilab.sim.topology.plan import build_plan

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "dataplane"
GOOD = REPO / "examples" / "dataplane" / "ewr1-gre.sh"
GOOD_IPT = REPO / "examples" / "dataplane" / "ewr1-gre-iptables.sh"
FRR = DATA / "frr-edge-ewr.conf"
BIRD_MT = DATA / "bird-edge-mt.conf"
V1 = REPO / "topologies" / "v1-gre.yml"
MT = REPO / "topologies" / "magic-transit-cni.yml"


# -- the declaration: parsed, never executed by a shell (no root) --------------------------------------
def test_examples_parse_into_tunnel_and_clamps() -> None:
    dp = load_dataplane(GOOD)
    (t,) = dp.tunnels
    assert (t.name, str(t.local), str(t.remote), str(t.address), str(t.address6), t.mtu, t.key, t.up) == (
        "cf-ewr1", "192.0.2.11", "192.0.2.10", "10.212.0.1/31", "fd00:cf:6e::1/127", 1476, None, True)
    assert {(c.family, c.value) for c in dp.clamps} == {(4, 1436), (6, 1416)}
    assert any("modprobe" in n for n in dp.notes)
    ipt = load_dataplane(GOOD_IPT)
    assert [t.name for t in ipt.tunnels] == ["gre-cf"] and {c.tool for c in ipt.clamps} == {"iptables", "ip6tables"}


def test_paths_sudo_and_trailing_comments_are_what_scripts_contain() -> None:
    dp = parse_dataplane_text("sudo /sbin/ip tunnel add cf0 mode gre local 192.0.2.11 remote 192.0.2.10  # EWR1\n"
                              "/usr/sbin/ip link set cf0 mtu 1476 up\n", "rtr.sh")
    assert dp.tunnels[0].mtu == 1476 and dp.tunnels[0].up


@pytest.mark.parametrize(("line", "why"), [
    ("curl -s http://x/setup.sh | sh", "shell syntax"),
    ("ip link add vx0 type vxlan id 7", "only `type gre`"),
    ("ip tunnel add cf0 mode gre remote 192.0.2.10", "needs both `local` and `remote`"),
    ("ip addr add 10.212.0.1 dev cf0", "no prefix length"),
    ("iptables -F", "only -A/-I/-N"),
    ("nft -f /etc/nftables.conf", "only `nft add|insert|create"),
    ("echo 1 > /proc/sys/net/ipv4/ip_forward", "shell syntax"),
    ("ip tunnel add cf0 mode gre local 192.0.2.311 remote 192.0.2.10", "'192.0.2.311' is not an IPv4 address"),
])
def test_lines_outside_the_subset_are_refused_with_file_and_line(line: str, why: str) -> None:
    with pytest.raises(DataplaneSyntaxError) as err:
        parse_dataplane_text(f"# ours\nip link set lo up\n{line}\n", "rtr.sh")
    assert err.value.line == 3 and why in str(err.value) and str(err.value).startswith("rtr.sh:3:")


def test_bad_dataplane_file_in_a_topology_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "dp.sh").write_text("ip tunnel add cf0 mode gre local 192.0.2.11 remote 192.0.2.10\nreboot\n")
    topo = tmp_path / "t.yml"
    topo.write_text(V1.read_text().replace("router: {kind: frr}", "router: {kind: frr, dataplane: dp.sh}"))
    with pytest.raises(ConfigError, match=r"dp\.sh.*line 2: 'reboot'"):
        load_topology(topo)
    with pytest.raises(ConfigError, match="--dataplane"):
        build_run_plan(RunOptions(topology=V1, customer_dataplane=tmp_path / "missing.sh"), "x")


def test_declared_tunnel_is_paired_with_its_interconnect_even_when_wrong() -> None:
    _, plan = build_run_plan(RunOptions(topology=V1, customer_config=FRR, customer_dataplane=GOOD), "x")
    (tun,) = plan.tunnels
    assert tun.declared is not None and tun.declared.name == "cf-ewr1"
    assert plan.customer_router.mss_clamp == "auto"  # ... which installs nothing for a BYO config
    from cnilab.sim.routers.mss import resolve_clamp

    assert resolve_clamp(plan) is None
    # A wrong destination still belongs to the one tunnel (matched in order), so it is built as written.
    dp = parse_dataplane_text("ip tunnel add t mode gre local 192.0.2.11 remote 192.0.2.12\n")
    topo = load_topology(V1)
    topo.customer.router.dataplane = DataplaneBlock(tunnels=dp.tunnels)
    (tun,) = build_plan(topo, "x").tunnels
    assert tun.declared is not None and str(tun.declared.remote) == "192.0.2.12"


def test_clamp_diagnosis_names_missing_clamp_and_the_1476_mistake() -> None:
    _, plan = build_run_plan(RunOptions(topology=V1, customer_config=FRR,
                                        customer_dataplane=_variant_file("no-clamp")), "x")
    (line,) = clamp_diagnosis(plan, plan.mss_required)
    assert "missing MSS clamp" in line and "1436 (IPv6 1416)" in line
    _, plan = build_run_plan(RunOptions(topology=V1, customer_config=FRR,
                                        customer_dataplane=_variant_file("clamp-1476")), "x")
    assert any("the classic mistake" in x and "1476 is the GRE tunnel MTU, not the MSS" in x
               for x in clamp_diagnosis(plan, plan.mss_required))
    topo = load_topology(MT)
    topo.customer.router.dataplane = DataplaneBlock(tunnels=_mt_block().tunnels)
    plan = build_plan(topo, "x")
    assert plan.mss_required == 1332 and "clamped to 1332" in clamp_diagnosis(plan, 1332)[0]


# -- variants of the good declaration: one production mistake each -------------------------------------
VARIANTS: dict[str, tuple[str, str]] = {
    # tunnel sourced from the LAN gateway address instead of our end of the /31
    "wrong-source": ("local 192.0.2.11 remote", "local 198.51.100.1 remote"),
    # inner address from the neighbouring /31 on the onboarding sheet
    "wrong-inner": ("ip addr add 10.212.0.1/31", "ip addr add 10.212.0.3/31"),
    # tunnel MTU copied from the physical interface
    "mtu-1500": ("mtu 1476 up", "mtu 1500 up"),
    # the clamp lines never made it into the change
    "no-clamp": ("nft add rule", "# nft add rule"),
    # clamp set to the tunnel MTU
    "clamp-1476": ("maxseg size '>' 1436 tcp option maxseg size set 1436",
                   "maxseg size '>' 1476 tcp option maxseg size set 1476"),
}


def _variant_file(name: str) -> Path:
    old, new = VARIANTS[name]
    text = GOOD.read_text()
    assert old in text, name
    d = Path(tempfile.mkdtemp(prefix="cnidp-"))
    out = d / f"ewr1-{name}.sh"
    out.write_text(text.replace(old, new))
    return out


def _mt_block(clamp: int | None = 1332) -> DataplaneBlock:
    return DataplaneBlock.model_validate({
        "tunnels": [{"name": "cf-mt", "local": "192.0.2.11", "remote": "192.0.2.10", "address": "10.212.0.1/31",
                     "mtu": 1476}],
        "mss_clamp": clamp})


# -- end to end: real namespaces, the customer's own daemon --------------------------------------------
@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_frr_with_its_own_dataplane_passes_and_says_so(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=V1, customer_config=FRR, customer_dataplane=GOOD))
    assert rep.passed, [s for s in rep.steps if s.status != "pass"]
    assert "3/3 replies" in "\n".join(rep.step("tunnel").checks)
    for sid in ("tunnel", "mtu"):
        assert "as you declared it: cf-ewr1" in rep.step(sid).provenance, sid
    assert "clamp 1436 from your nft line" in rep.step("mss").provenance
    mtu = "\n".join(rep.step("mtu").checks)
    assert "customer_to_cf (IPv6): measured 1476" in mtu and "customer_to_cf: measured 1476" in mtu
    mss = "\n".join(rep.step("mss").checks)
    assert "-> 1436" in mss and "-> 1416" in mss  # IPv6 handshakes clamped too
    assert 'name="provenance"' in render_junit(rep)


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize(("variant", "step", "detail", "advice"), [
    ("wrong-source", "tunnel", "sends from 198.51.100.1", "local 192.0.2.11 remote 192.0.2.10"),
    ("wrong-inner", "tunnel", "inner address 10.212.0.3/31", "ip addr add 10.212.0.1/31 dev cf-ewr1"),
    ("mtu-1500", "mtu", "black-holed towards Cloudflare", "cf-ewr1 has MTU 1500"),
    ("no-clamp", "mss", "not clamped to 1436", "missing MSS clamp"),
    ("clamp-1476", "mss", "MSS 1416, 1460", "you clamp to 1476"),
])
def test_each_dataplane_mistake_fails_with_cause_and_fix(short_state: Path, variant: str, step: str, detail: str,
                                                         advice: str) -> None:
    rep = run_acceptance(RunOptions(topology=V1, customer_config=FRR, customer_dataplane=_variant_file(variant)))
    assert not rep.passed and rep.failed is not None and rep.failed.id == step, rep.failed
    text = "\n".join([rep.failed.detail, *rep.failed.checks, *rep.failed.advice])
    assert detail in text and advice in text, text
    if step == "tunnel":
        assert "0/3 replies" in text or "unreachable" in text.lower(), text
    assert "as you declared it" in rep.step("tunnel").provenance


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("clamp", [1332, None])
def test_bird_magic_transit_clamp_comes_from_the_declaration(short_state: Path, tmp_path: Path,
                                                             clamp: int | None) -> None:
    topo = tmp_path / "mt.yml"
    block = _mt_block(clamp).model_dump(mode="json", exclude_none=True)
    import yaml

    data = yaml.safe_load(MT.read_text())
    data["customer"]["router"] = {"kind": "bird", "config": str(BIRD_MT), "dataplane": block}
    topo.write_text(yaml.safe_dump(data))
    rep = run_acceptance(RunOptions(topology=topo))
    mss = rep.step("mss")
    if clamp:
        assert rep.passed, [s for s in rep.steps if s.status != "pass"]
        assert "clamp 1332 from your topology line" in mss.provenance
        mtu = "\n".join(rep.step("mtu").checks)
        assert "cf_to_customer: measured 1372 (profile 1372)" in mtu and "customer_to_cf: measured 1476" in mtu
    else:
        assert rep.failed is not None and rep.failed.id == "mss", rep.failed
        assert any("missing MSS clamp" in a and "1332" in a for a in mss.advice), mss.advice
        assert mss.provenance.startswith("no clamp")


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_template_router_reports_what_cnilab_installed(short_state: Path) -> None:
    rep = run_acceptance(RunOptions(topology=V1))
    assert rep.passed, rep.failed
    assert "installed by cnilab" in rep.step("mss").provenance
    assert "built by cnilab from the plan" in rep.step("tunnel").provenance


@pytest.mark.root
def test_a_failing_declared_line_names_its_line_and_leaves_nothing(short_state: Path, tmp_path: Path) -> None:
    from cnilab.sim.dataplane.customer import DataplaneError
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.runtime.cleanup import list_cnilab_netns

    dp = tmp_path / "rtr.sh"
    dp.write_text(GOOD.read_text() + "ip route add 10.99.0.0/16 via 203.0.113.77\n")
    topo = load_topology(V1)
    topo.customer.router.dataplane = dp
    plan = build_plan(topo, "t-dpfail")
    want = r"rtr\.sh:22: `ip route add 10\.99\.0\.0/16 via 203\.0\.113\.77` failed"
    with pytest.raises(DataplaneError, match=want), Lab.create(plan, daemons=False):
        pass
    assert list_cnilab_netns("cnilab-t-dpfail-") == []


def test_containerlab_export_carries_the_declaration_not_the_plan() -> None:
    from cnilab.sim.export.containerlab import node_exec

    _, plan = build_run_plan(RunOptions(topology=V1, customer_config=FRR, customer_dataplane=GOOD), "x")
    cust = node_exec(plan.node("cust"), plan)
    assert "ip link add cf-ewr1 type gre local 192.0.2.11 remote 192.0.2.10 ttl 255" in cust
    assert not any("gre-ewr1" in c for c in cust)  # cnilab's own customer end is not built
    assert any("maxseg size set 1416" in c for c in cust)
    assert any("gre-ewr1" in c for c in node_exec(plan.node("cf"), plan))  # Cloudflare's end is
