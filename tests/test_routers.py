"""Customer routers: every kind in the registry against a real peer, user configs, and the nftables MSS clamp.

The tests bring a mini lab (tests.labs.MiniLab: some nodes of the plan on the netns backend) and a
second routing daemon standing in for Cloudflare (BIRD, or FRR facing a customer BIRD) instead of
the ExaBGP edge, so each daemon is judged against another implementation. The ``mini_lab`` fixture
removes every namespace and daemon whether the test passed or not.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cnilab.sim.facts import router_kind_names
from cnilab.sim.routers import (
    UserConfigError,
    customer_bgp,
    customer_routes,
    router_for,
    start_customer,
    stop_customer,
    template_context,
)
from cnilab.sim.routers.bird import BirdRouter, parse_bird_protocols, render_bird
from cnilab.sim.routers.frr import render_frr
from cnilab.sim.routers.mss import apply_mss_clamp, mss_fix_hint, render_nft
from cnilab.sim.routers.registry import router_class
from cnilab.sim.runtime.nsenter import in_netns
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.testing import wait_for
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import build_plan

from tests.kinds import (
    CF4,
    CF6,
    EXAMPLES,
    LAB_KINDS,
    frr_peer_conf,
    good_config,
    kind_params,
    make_plan,
    needs,
    start_peer,
)
from tests.labs import MiniLab

REPO = Path(__file__).resolve().parents[1]

needs_nft = pytest.mark.skipif(not shutil.which("nft"), reason="nftables not installed")


def wait_established(lab: MiniLab, timeout: float = 30) -> list[dict[str, Any]]:
    """Every planned session Established with routes received, from the customer daemon's view."""
    peers: list[dict[str, Any]] = []

    def ok() -> bool:
        nonlocal peers
        peers = customer_bgp(lab)
        return len(peers) == len(lab.plan.sessions) and all(p["state"] == "Established" and p["received"]
                                                            for p in peers)
    try:
        wait_for(ok, timeout, what="all sessions Established")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: customer sees {peers}") from None
    return peers


def assert_routes_in_kernel(lab: MiniLab) -> None:
    """The learned Cloudflare ranges are in the customer namespace's FIB, via the session addresses."""
    s4 = next(s for s in lab.plan.sessions if s.family == 4)
    s6 = next(s for s in lab.plan.sessions if s.family == 6)
    r4 = wait_for(lambda: lab.run("cust", ["ip", "route", "show", CF4]).stdout, 10, what="IPv4 route in kernel")
    r6 = wait_for(lambda: lab.run("cust", ["ip", "-6", "route", "show", CF6]).stdout, 10, what="IPv6 route in kernel")
    assert f"via {s4.cf_addr}" in r4
    # BGP over IPv6 may carry the peer's link-local next hop too, which FRR prefers: same link.
    assert f"via {s6.cf_addr}" in r6 or ("via fe80:" in r6 and f"dev {s6.cust_iface}" in r6), r6


def _frr_specifics(lab: MiniLab, info: dict[str, Any]) -> None:
    from cnilab.sim.routers.frr import FrrRouter

    frr = FrrRouter(lab)
    assert len(info["processes"]) == 4
    # The boot-only `bgp route-map delay-timer 0` (fast first OPEN) was undone: the running
    # config is the customer's, with FRR's default timer.
    assert "delay-timer" not in frr.vtysh("show running-config")
    assert "localpref 150" in frr.vtysh(f"show bgp ipv4 unicast {CF4}")


def _bird_specifics(lab: MiniLab, info: dict[str, Any]) -> None:
    assert [p["name"] for p in info["processes"]] == ["bird"]
    assert "BGP.local_pref: 150" in BirdRouter(lab).birdc("show", "route", CF4, "all")


def _gobgp_specifics(lab: MiniLab, info: dict[str, Any]) -> None:
    from cnilab.sim.routers import cli_argv
    from cnilab.sim.routers.gobgp import GobgpRouter

    assert [p["name"] for p in info["processes"]] == ["gobgpd", "gobgp-fib"]
    rib = "template" if info["source"] == "template" else f"{info['source']}.rib"
    assert info["originated_by"] == rib
    assert any("FIB sync" in n for n in info["installed_by_cnilab"])  # said, never hidden: no FIB of its own
    assert all(p["hold_time"] == 9 and p["keepalive"] == 3 for p in customer_bgp(lab))
    assert GobgpRouter(lab).facts().policy_errors == []  # gobgpd built every policy the config defines
    # cnilab exec maps the gobgp CLI to this lab's API socket.
    assert "Establ" in lab.run("cust", cli_argv(lab, "cust", ["gobgp", "neighbor"])).stdout


KIND_SPECIFICS: dict[str, Callable[[MiniLab, dict[str, Any]], None]] = {
    "frr": _frr_specifics, "bird": _bird_specifics, "gobgp": _gobgp_specifics}
"""What only one daemon can show (its own CLI's words for local-pref, its processes); every kind
in the registry has an entry, so a new kind fails here until it says what it checks."""


@pytest.mark.root
@pytest.mark.daemons
@needs_nft
@pytest.mark.parametrize("source", ["template", "user"])
@pytest.mark.parametrize("kind", kind_params(peer=True))
def test_customer_router_establishes_with_md5(kind: str, source: str, tmp_path: Path, mini_lab) -> None:
    config = good_config(kind) if source == "user" else None
    plan = make_plan(tmp_path, kind=kind, config=config)
    lab = mini_lab(plan, ["cf", "cust"])
    peer = start_peer(lab, kind)
    start_customer(lab)
    info = lab.state.extra["customer_router"]
    assert info["kind"] == kind and info["source"] == (str(config) if config else "template")

    peers = wait_established(lab)
    assert {p["session"] for p in peers} == {"ic1/v4", "ic1/v6"}
    assert all(p["remote_as"] == 13335 for p in peers)
    assert_routes_in_kernel(lab)
    rib = customer_routes(lab)
    assert CF4 in rib and CF6 in rib
    # The peer got exactly the announced /24 and /48 from AS65010: the outbound filter kept the
    # link nets back.
    got = wait_for(lambda: [p for p in peer.bgp() if p.state == "Established" and p.received == 1]
                   if all(p.received == 1 for p in peer.bgp()) else None, 15, what="peer receiving 1 prefix each")
    assert len(got) == 2 and all(p.remote_as == 65010 for p in got)
    peer_rib = peer.routes()
    assert "198.51.100.0/24" in peer_rib and "2001:db8:cafe::/48" in peer_rib
    # The MSS clamp went in with a template router (v2 needs 1460); with the user's own config
    # `auto` installs nothing: the clamp is part of what is under test (issue 12).
    table = lab.run("cust", ["nft", "list", "table", "inet", "cnilab_mss"], check=False)
    if source == "template":
        assert "maxseg size set 1460" in table.stdout and '"ic1"' in table.stdout
    else:
        assert table.returncode != 0 and info["mss_clamp"] is None
    KIND_SPECIFICS[kind](lab, info)
    stop_customer(lab)
    assert not any(ProcessRecord.model_validate(p).alive() for p in info["processes"])
    assert lab.run("cust", ["nft", "list", "table", "inet", "cnilab_mss"], check=False).returncode != 0


@pytest.mark.daemons
@needs("gobgp")
def test_gobgp_refuses_what_the_lab_cannot_run(tmp_path: Path) -> None:
    from cnilab.sim.routers.gobgp import validate_gobgp_config

    bad = tmp_path / "typo.toml"
    bad.write_text((EXAMPLES / "gobgp-good.toml").read_text().replace("neighbor-address", "neighbour-address", 1))
    with pytest.raises(UserConfigError, match="invalid keys: neighbour-address"):
        validate_gobgp_config(bad)
    zebra = tmp_path / "zebra.toml"
    zebra.write_text((EXAMPLES / "gobgp-good.toml").read_text()
                     + '[zebra.config]\n  enabled = true\n  url = "unix:/var/run/frr/zserv.api"\n  version = 6\n')
    with pytest.raises(UserConfigError, match="zebra"):
        validate_gobgp_config(zebra)
    rib = tmp_path / "ok.toml"
    rib.write_text((EXAMPLES / "gobgp-good.toml").read_text())
    (tmp_path / "ok.toml.rib").write_text("ip route add 198.51.100.0/24 dev lo\n")
    with pytest.raises(UserConfigError, match="only `gobgp global rib add"):
        validate_gobgp_config(rib)


@pytest.mark.root
@pytest.mark.daemons
@needs_nft
@pytest.mark.parametrize("kind", kind_params("frr", bfd=True))
def test_bfd_comes_up_with_the_plan_timers(kind: str, tmp_path: Path, mini_lab) -> None:
    plan = make_plan(tmp_path, kind=kind, dataplane="v1", bfd=True)
    lab = mini_lab(plan, ["cf", "cust"])
    # FRR stands in for the edge for every kind: BIRD as the BFD peer of FRR flaps (BIRD withdraws
    # its BFD session with AdminDown whenever its BGP resets, and FRR resets BGP on that).
    router_class("frr")(lab, "cf").start(frr_peer_conf(plan), source="peer")
    start_customer(lab)
    wait_established(lab)
    router = router_for(lab)
    peers = wait_for(lambda: (lambda ps: ps if len(ps) == 2 and all(p.state == "Up" for p in ps) else None)(
        router.bfd_peers()), 15, what=f"{kind} BFD sessions Up")
    assert {p.peer for p in peers} == {str(s.cf_addr) for s in plan.sessions}
    assert all(p.tx_ms == 200 and p.multiplier == 3 for p in peers)  # the plan's 200 ms x 3


# -- user configs that are wrong ------------------------------------------------------------------
@pytest.mark.daemons
@pytest.mark.parametrize(("kind", "fname", "daemon_says"), [
    pytest.param("frr", "frr-typo.conf", "pasword", marks=needs("frr")),
    pytest.param("bird", "bird-typo.conf", "syntax error", marks=needs("bird")),
])
def test_broken_user_config_refused_before_anything_starts(kind: str, fname: str, daemon_says: str,
                                                           tmp_path: Path, mini_lab) -> None:
    plan = make_plan(tmp_path, kind=kind, config=EXAMPLES / fname)
    lab = mini_lab(plan, [])  # no namespaces: validation must not need them
    with pytest.raises(UserConfigError) as exc:
        start_customer(lab)
    msg = str(exc.value)
    assert fname in msg and daemon_says in msg and "customer.router.config" in msg
    assert lab.refresh().processes == [] and not any(lab.node_dir("cust").iterdir())


@pytest.mark.root
@pytest.mark.daemons
@needs("frr", "bird")
@needs_nft
def test_wrong_asn_config_is_refused_by_the_peer(tmp_path: Path, mini_lab) -> None:
    plan = make_plan(tmp_path, kind="frr", config=EXAMPLES / "frr-wrong-asn.conf")
    lab = mini_lab(plan, ["cf", "cust"])
    peer = start_peer(lab, "frr")
    start_customer(lab)  # syntactically fine: it starts
    errs = wait_for(lambda: [p.last_error for p in peer.bgp() if p.last_error], 30,
                    what="the peer refusing AS65011")
    assert any("Bad peer AS" in e for e in errs), errs
    assert all(p["state"] != "Established" for p in customer_bgp(lab))
    assert all(p["local_as"] == 65011 for p in customer_bgp(lab))


# -- MSS clamp ------------------------------------------------------------------------------------
def _syn_mss(raw: socket.socket, port: int, want_synack: bool, timeout: float = 5.0) -> int | None:
    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = raw.recv(65535)
        except TimeoutError:
            return None
        pkt = Ether(frame)
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        flags = int(tcp.flags)
        is_syn = bool(flags & 0x02)
        is_ack = bool(flags & 0x10)
        if not is_syn or is_ack != want_synack or port not in (tcp.sport, tcp.dport):
            continue
        return next((v for k, v in tcp.options if k == "MSS"), None)
    return None


def _sniffer(lab: MiniLab, node: str, iface: str) -> socket.socket:
    with in_netns(lab.netns_path(node)):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(1.0)
    return s


def measure_mss(lab: MiniLab, family: int) -> tuple[int | None, int | None]:
    """Open a real TCP connection origin -> cf through cust; MSS of the SYN at cf and SYN-ACK at origin."""
    s = next(s for s in lab.plan.sessions if s.family == family)
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    with in_netns(lab.netns_path("cf")):
        srv = socket.socket(af, socket.SOCK_STREAM)
    with srv:
        srv.bind((str(s.cf_addr), 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        with _sniffer(lab, "cf", "ic1") as at_cf, _sniffer(lab, "origin", "eth0") as at_origin:
            with in_netns(lab.netns_path("origin")):
                cli = socket.socket(af, socket.SOCK_STREAM)
            with cli:
                cli.settimeout(5)
                cli.connect((str(s.cf_addr), port))
            return _syn_mss(at_cf, port, False), _syn_mss(at_origin, port, True)


@pytest.mark.root
@needs_nft
@pytest.mark.parametrize(("clamp", "want4"), [("auto", 1436), (1300, 1300), (None, 1460)])
def test_mss_clamp_rewrites_syns_both_ways(clamp: Any, want4: int, tmp_path: Path, mini_lab) -> None:
    # v1 = GRE: the plan requires 1436 (1476-byte tunnel MTU - 40). None rehearses the forgotten clamp.
    plan = make_plan(tmp_path, kind="external", dataplane="v1", mss_clamp=clamp)
    assert plan.mss_required == 1436
    s4 = next(s for s in plan.sessions if s.family == 4)
    s6 = next(s for s in plan.sessions if s.family == 6)
    lab = mini_lab(plan, ["cf", "cust", "origin"], extra_routes={"cf": [
        ("198.51.100.0/24", str(s4.cust_addr)), ("2001:db8:cafe::/64", str(s6.cust_addr))]})
    applied = apply_mss_clamp(lab)
    assert applied == (None if clamp is None else want4)
    assert measure_mss(lab, 4) == (want4, want4)
    assert measure_mss(lab, 6) == (want4 - 20, want4 - 20)


# -- pure rendering (no root) ---------------------------------------------------------------------
def test_templates_follow_the_plan(tmp_path: Path) -> None:
    plan = build_plan(load_topology(REPO / "topologies" / "ha-three-site.yml"))
    ctx = template_context(plan)
    frr, bird = render_frr(plan), render_bird(plan)
    assert ctx["transit"] == "203.0.113.0"
    assert "ip route 0.0.0.0/0 203.0.113.0 250" in frr and "route 0.0.0.0/0 via 203.0.113.0;" in bird
    for s in plan.sessions:
        assert f"neighbor {s.cf_addr} remote-as 13335" in frr
        assert f"neighbor {s.cf_addr} password {s.customer_md5}" in frr
        assert f"neighbor {s.cf_addr} timers {s.keepalive} {s.hold_time}" in frr
        assert f"neighbor {s.cf_addr} as 13335;" in bird and f'password "{s.customer_md5}";' in bird
        assert f"set local-preference {s.local_pref}" in frr and f"bgp_local_pref = {s.local_pref};" in bird
        assert (f"neighbor {s.cf_addr} bfd profile" in frr) == s.bfd
    assert "transmit-interval 300" in frr and "min tx interval 300 ms;" in bird
    assert "ip prefix-list CNILAB-ANNOUNCE-V4 seq 5 permit 198.51.100.0/24" in frr
    # No Null0 for a prefix that is the LAN itself: it would shadow the route to the origin.
    assert "ip route 198.51.100.0/24 Null0" not in frr


def test_nft_rule_and_fix_hints() -> None:
    nft = render_nft(1436, ["ewr1.100", "gre-ewr1"])
    assert 'oifname { "ewr1.100", "gre-ewr1" } meta nfproto ipv4 tcp flags syn ' \
           "tcp option maxseg size > 1436 tcp option maxseg size set 1436" in nft
    assert "meta nfproto ipv6 tcp flags syn tcp option maxseg size > 1416" in nft
    hint = mss_fix_hint(1436)
    assert "--set-mss 1436" in hint["iptables"] and "ip tcp adjust-mss 1436" in hint["cisco"]
    assert "tcp-mss 1436" in hint["junos"] and "maxseg size set 1436" in hint["nftables"]
    assert "--set-mss 1416" in hint["ip6tables"]


def test_parse_bird_protocols() -> None:
    text = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     00:01:25.426
cni_v4     BGP        ---        start  00:01:25.595  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.0.2.10
    Neighbor AS:      13335
    Local AS:         65010
    Last error:       Socket: Connection refused
cni_v6     BGP        ---        up     00:01:25.595  Established
  BGP state:          Established
    Neighbor address: 2001:db8:12:3::7ac2:d64a
    Neighbor AS:      13335
    Local AS:         65010
  Channel ipv6
    Routes:         3 imported, 1 exported, 3 preferred
"""
    a, b = parse_bird_protocols(text)
    assert (a["name"], a["state"], a["peer"], a["last_error"]) == \
        ("cni_v4", "Active", "192.0.2.10", "Socket: Connection refused")
    assert (b["state"], b["received"], b["sent"], b["remote_as"]) == ("Established", 3, 1, 13335)


def test_exec_points_vtysh_and_birdc_at_the_lab_sockets() -> None:
    from types import SimpleNamespace

    from cnilab.sim.routers import cli_argv

    frr = SimpleNamespace(state=SimpleNamespace(extra={"customer_router": {"kind": "frr", "dir": "/x/frr"}}))
    assert cli_argv(frr, "cust", ["vtysh", "-c", "show bgp summary"]) == [
        "vtysh", "--vty_socket", "/x/frr", "-c", "show bgp summary"]
    assert cli_argv(frr, "cust", ["ip", "route"]) == ["ip", "route"]
    assert cli_argv(frr, "cf", ["vtysh"]) == ["vtysh"]  # no router recorded in that node
    bird = SimpleNamespace(state=SimpleNamespace(extra={"customer_router": {"kind": "bird", "dir": "/x/bird"}}))
    assert cli_argv(bird, "cust", ["birdc", "show", "protocols"]) == [
        "birdc", "-s", "/x/bird/bird.ctl", "show", "protocols"]


# -- the registry ---------------------------------------------------------------------------------
def test_registry_is_the_one_list_of_kinds(tmp_path: Path) -> None:
    import json as _json
    import typing

    from cnilab.sim.rehearse.model import RunOptions
    from cnilab.sim.routers import cli_argv
    from cnilab.sim.routers.gobgp import GobgpRouter
    from cnilab.sim.routers.registry import lab_kinds, router_class, sniff_kind
    from cnilab.sim.topology.model import CustomerRouter as RouterModel

    kinds = router_kind_names(in_lab=True)
    assert set(kinds) == set(lab_kinds()) and {"frr", "bird", "gobgp"} <= set(kinds)
    assert router_class("external") is None and "external" in router_kind_names()
    # The topology Literal, the schema enum and the rehearsal option all come from the same data.
    assert set(typing.get_args(RouterModel.model_fields["kind"].annotation)) == set(router_kind_names())
    schema = _json.loads((REPO / "topologies" / "schema" / "topology.schema.json").read_text())
    assert schema["$defs"]["CustomerRouter"]["properties"]["kind"]["enum"] == list(router_kind_names())
    assert RunOptions(topology=Path("x.yml"), kind="gobgp").kind == "gobgp"
    # Each kind recognises its own syntax and only its own.
    for name in LAB_KINDS:
        assert sniff_kind(good_config(name).read_text()) == name
    rec = SimpleNamespace(state=SimpleNamespace(extra={"customer_router": {"kind": "gobgp", "dir": "/x/gobgp"}}))
    assert cli_argv(rec, "cust", ["gobgp", "neighbor"]) == ["gobgp", "--target", "unix:///x/gobgp/gobgp.sock",
                                                           "neighbor"]
    assert GobgpRouter.info().bfd is False


def test_kind_that_does_not_match_the_file_says_what_it_looks_like(tmp_path: Path) -> None:
    from cnilab.sim.routers import check_customer_config

    plan = make_plan(tmp_path, kind="frr", config=EXAMPLES / "bird-good.conf")
    with pytest.raises(UserConfigError) as exc:
        check_customer_config(plan)
    msg = str(exc.value)
    assert "looks like BIRD 2" in msg and "use kind bird" in msg and len(msg.splitlines()) <= 3


@pytest.mark.daemons
@needs("gobgp")
def test_gobgp_yaml_config_is_checked_by_gobgpd(tmp_path: Path) -> None:
    """GoBGP reads TOML or YAML: the same config in YAML is sniffed, typed and parsed by gobgpd itself."""
    import tomllib

    from cnilab.sim.routers.gobgp import config_type, validate_gobgp_config
    from cnilab.sim.routers.registry import sniff_kind

    data = tomllib.loads((EXAMPLES / "gobgp-good.toml").read_text())
    good = tmp_path / "gobgpd.yml"
    good.write_text(yaml.safe_dump(data))
    assert config_type(good) == "yaml" and sniff_kind(good.read_text()) == "gobgp"
    validate_gobgp_config(good)
    data["neighbors"][0]["config"]["peer-as"] = "cloudflare"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(UserConfigError, match="peer-as"):
        validate_gobgp_config(bad)
