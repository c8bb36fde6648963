"""The Cloudflare edge peer against a real FRR customer router (and its offline parts without root).

The live tests build the v2-direct lab (no GRE, so only the edge and FRR are under test) with
``Lab.create(daemons=False)``, start the edge with :func:`cnilab.sim.edge.start_edge` and a minimal FRR
(zebra + bgpd) written here, and check what really happened: sessions Established in ExaBGP and in
FRR, 22 Cloudflare prefixes in FRR's table, the customer's /24 in the cf kernel table and the /25
refused with its reason, and sessions that must not come up staying down for the right reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnilab.sim.edge import client_for, start_edge, wait_ready
from cnilab.sim.edge.driver import EdgeDriver
from cnilab.sim.edge.exabgp_conf import EdgeSpec, exabgp_argv, render, write
from cnilab.sim.edge.notifications import explain_notification
from cnilab.sim.facts import cloudflare_ranges
from cnilab.sim.testing import wait_for
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import LabPlan, build_plan

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "topologies" / "v2-direct.yml"
V1 = ROOT / "topologies" / "v1-gre.yml"
FRR = Path("/usr/lib/frr")
ANNOUNCE = ["198.51.100.0/24", "198.51.100.128/25", "2001:db8:cafe::/48"]


def _plan(path: Path, name: str | None = None) -> LabPlan:
    return build_plan(load_topology(path), lab=name)


# -- offline: config, explanations, message handling -------------------------------------------------
def test_config_renders_and_exabgp_validates_it(tmp_path: Path) -> None:
    spec = EdgeSpec.from_plan(_plan(V1), tmp_path, scale_routes=100)
    conf = write(spec)
    text = conf.read_text()
    assert "neighbor 192.0.2.11 {" in text and "neighbor 2001:db8:12:3::7ac2:d64b {" in text
    assert 'md5-password "cni-rehearsal";' in text and "peer-as 65010;" in text and "local-as 13335;" in text
    # v1: customer->CF rides GRE, so routes resolve over the tunnel (next hop = edge GRE inner), IPv4
    # and IPv6 alike (the profile's encapsulation is per direction, not per family)
    assert "route 104.16.0.0/13 next-hop 10.212.0.0;" in text
    assert "route 2606:4700::/32 next-hop fd00:cf:6e::;" in text
    assert len(spec.announced(4)) == 15 + 100 and len(spec.announced(6)) == 7
    argv = exabgp_argv(spec)
    exe = argv[argv.index("server") - 1]
    env = {**os.environ, **dict(a.split("=", 1) for a in argv[1:argv.index(exe)])}
    r = subprocess.run([exe, "validate", str(conf)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_md5_key_is_refused_with_the_field(tmp_path: Path) -> None:
    plan = _plan(V2)
    plan.sessions[0].md5 = 'bad"key'
    with pytest.raises(ValueError, match="md5 key"):
        render(EdgeSpec.from_plan(plan, tmp_path))


def test_notifications_are_explained() -> None:
    s = _plan(V2).sessions[0]
    asn = explain_notification("sent", 2, 2, s, open_asn=65011)
    assert asn.startswith("OPEN from AS 65011, expected 65010: Bad Peer AS (NOTIFICATION 2/2)")
    assert "Unacceptable Hold Time (2/6)" in explain_notification("sent", 2, 6, s, open_hold=2)
    assert "Hold Timer Expired" in explain_notification("sent", 4, 0, s)
    assert "BFD Down" in explain_notification("received", 6, 10, s)


def _msg(kind: str, peer: str, **neighbor: object) -> dict:
    return {"exabgp": "5.0.0", "type": kind,
            "neighbor": {"address": {"local": "192.0.2.10", "peer": peer}, "asn": {"local": 13335, "peer": 65010},
                         **neighbor}}


def test_driver_state_policy_and_diagnosis_from_exabgp_json(tmp_path: Path) -> None:
    """The driver's reading of ExaBGP's JSON (shapes from exabgp 5.0.15's json encoder)."""
    spec = EdgeSpec.from_plan(_plan(V2), tmp_path)
    spec.save()
    sent: list[str] = []

    async def scenario() -> None:
        d = EdgeDriver(spec.spec_path, out=sent.append)
        d.handle(_msg("open", "192.0.2.11", direction="receive", open={"asn": 65011, "hold_time": 9}))
        d.handle(_msg("state", "192.0.2.11", state="down", reason="notification sent (2,2)"))
        v4 = (await d.control({"cmd": "sessions"}))[0]
        assert v4["last_error"].startswith("OPEN from AS 65011, expected 65010: Bad Peer AS (NOTIFICATION 2/2)")
        assert not v4["up"]
        d.handle(_msg("state", "192.0.2.11", state="up"))
        d.handle(_msg("update", "192.0.2.11", direction="receive", message={"update": {
            "attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}}},
            "announce": {"ipv4 unicast": {"192.0.2.11": [{"nlri": "198.51.100.0/24"},
                                                         {"nlri": "198.51.100.128/25"}]}}}}))
        v4 = (await d.control({"cmd": "sessions"}))[0]
        assert v4["up"] and v4["last_error"] is None
        assert (v4["prefixes_received"], v4["prefixes_accepted"], v4["prefixes_rejected"]) == (2, 1, 1)
        assert "longer than /24" in v4["rejected"][0]["reason"]
        assert [str(r.dst) for r in d.desired_routes()] == ["198.51.100.0/24"]
        await d.control({"cmd": "teardown", "session": "lax1/v4", "subcode": 4})
        assert sent[-1] == "neighbor 192.0.2.11 teardown 4"
        d.handle(_msg("state", "192.0.2.11", state="down", reason="closing connection"))
        assert d.desired_routes() == []
        with pytest.raises(LookupError):
            await d.control({"cmd": "teardown", "session": "nope"})
        # runtime (re)configuration: drop the IPv6 session, ExaBGP is told to reload the new file
        v4_only = [x.model_dump(mode="json") for x in spec.sessions if x.family == 4]
        res = await d.control({"cmd": "configure", "sessions": v4_only})
        assert res == {"added": [], "changed": [], "removed": ["lax1/v6"]}
        assert sent[-1] == "reload" and "2001:db8:12:3::7ac2:d64b" not in spec.conf_path.read_text()
        with pytest.raises(ValueError, match="given twice"):
            await d.control({"cmd": "configure", "sessions": v4_only * 2})
        with pytest.raises(ValueError, match="unknown command"):
            await d.control({"cmd": "frobnicate"})
        ev = await d.control({"cmd": "events", "since": 0})
        assert [e["seq"] for e in ev] == sorted(e["seq"] for e in ev) and ev
        assert await d.control({"cmd": "events", "since": ev[-1]["seq"]}) == []

    asyncio.run(scenario())


# -- live: ExaBGP + FRR in namespaces -----------------------------------------------------------------
class Frr:
    """zebra + bgpd in node ``cust`` with a config written by the test (sockets in a short dir)."""

    def __init__(self, lab, sock_dir: Path) -> None:
        self.lab, self.dir = lab, sock_dir

    def start(self, *, asn: int | None = None, md5: str | None = None, announce: list[str] = ANNOUNCE,
              bfd: bool = False) -> None:
        plan = self.lab.plan
        # an outbound filter as every customer needs (without it FRR echoes Cloudflare's routes back,
        # which the edge counts and refuses): exactly the announced prefixes, /25 included on purpose
        lines = ["frr defaults traditional"]
        for p in announce:
            v = ipaddress.ip_network(p).version
            lines.append(f"{'ipv6' if v == 6 else 'ip'} prefix-list OUT{v} permit {p}")
        lines += [f"router bgp {asn or plan.sessions[0].cust_asn}",
                 f" bgp router-id {next(s.cust_addr for s in plan.sessions if s.family == 4)}",
                 " no bgp ebgp-requires-policy", " no bgp network import-check", " no bgp default ipv4-unicast"]
        for s in plan.sessions:
            lines += [f" neighbor {s.cf_addr} remote-as {s.cf_asn}", f" neighbor {s.cf_addr} timers 3 9",
                      f" neighbor {s.cf_addr} timers connect 2"]
            key = md5 if md5 is not None else s.customer_md5
            if key:
                lines.append(f" neighbor {s.cf_addr} password {key}")
            if bfd and s.bfd:
                lines.append(f" neighbor {s.cf_addr} bfd {s.bfd_multiplier} {s.bfd_rx_ms} {s.bfd_tx_ms}")
        for fam in (4, 6):
            lines.append(f" address-family ipv{fam} unicast")
            lines += [f"  network {p}" for p in announce if ipaddress.ip_network(p).version == fam]
            lines += [f"  neighbor {s.cf_addr} activate" for s in plan.sessions if s.family == fam]
            lines += [f"  neighbor {s.cf_addr} prefix-list OUT{fam} out" for s in plan.sessions if s.family == fam]
            lines.append(" exit-address-family")
        (self.dir / "bgpd.conf").write_text("\n".join(lines) + "\n")
        (self.dir / "zebra.conf").write_text("")
        (self.dir / "bfdd.conf").write_text("")
        for daemon in ("zebra", "bfdd", "bgpd") if bfd else ("zebra", "bgpd"):
            extra = ["--bfdctl", str(self.dir / "bfdd.sock")] if daemon == "bfdd" else []
            rec = self.lab.spawn("cust", f"test-{daemon}", [
                str(FRR / daemon), "-u", "root", "-g", "frrvty", "--vty_socket", str(self.dir),
                "-z", str(self.dir / "zserv.api"), "-i", str(self.dir / f"{daemon}.pid"), *extra,
                "-f", str(self.dir / f"{daemon}.conf"), "--log", f"file:{self.dir / (daemon + '.log')}"],
                log=self.dir / f"{daemon}.out")
            deadline = time.monotonic() + 15
            while not (self.dir / f"{daemon}.vty").exists():
                assert rec.alive(), (self.dir / f"{daemon}.out").read_text()
                assert time.monotonic() < deadline, f"FRR {daemon} did not start"
                time.sleep(0.05)

    def vtysh(self, cmd: str) -> str:
        return self.lab.run("cust", ["vtysh", "--vty_socket", str(self.dir), "-c", cmd], check=False).stdout

    def received(self) -> dict[str, int]:
        """Prefixes FRR accepted from each Cloudflare neighbor (its own view, not the edge's)."""
        out: dict[str, int] = {}
        for af in ("ipv4", "ipv6"):
            data = json.loads(self.vtysh(f"show bgp {af} unicast summary json") or "{}")
            for peer, d in data.get("peers", {}).items():
                if d.get("state") == "Established":
                    out[peer] = d.get("pfxRcd", 0)
        return out


@pytest.fixture
def edge_lab(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Frr]]:
    """A v2-direct lab (or the topology given by indirect parametrization) with the edge up."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if not (FRR / "bgpd").exists():
        pytest.skip("FRR is not installed (/usr/lib/frr/bgpd)")
    from cnilab.sim.lab.lab import Lab

    monkeypatch.setenv("CNILAB_STATE_DIR", str(tmp_path))
    sock_dir = Path(tempfile.mkdtemp(prefix="cnilab-frr-", dir="/tmp"))
    try:
        topo = getattr(request, "param", V2)
        with Lab.create(_plan(topo, f"t-{uuid.uuid4().hex[:6]}"), daemons=False) as lab:
            start_edge(lab)
            wait_ready(lab, 20)
            yield lab, Frr(lab, sock_dir)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.mark.root
@pytest.mark.daemons
def test_edge_establishes_with_frr_and_applies_policy(edge_lab) -> None:
    lab, frr = edge_lab
    client = client_for(lab)
    frr.start()
    sessions = client.wait_established(timeout=30)
    assert {s.key for s in sessions} == {"lax1/v4", "lax1/v6"} and all(s.md5 for s in sessions)
    # the customer really holds Cloudflare's 15 + 7 prefixes
    got = wait_for(lambda: (r := frr.received()) and sum(r.values()) == 22 and r, 20, what="22 prefixes in FRR")
    assert got == {"192.0.2.10": 15, "2001:db8:12:3::7ac2:d64a": 7}
    assert "104.16.0.0/13" in frr.vtysh("show bgp ipv4 unicast 104.16.0.0/13")
    # the edge accepted the /24 and the /48, refused the /25 with a reason an engineer can act on
    v4 = wait_for(lambda: next((s for s in client.sessions() if s.key == "lax1/v4" and s.prefixes_received == 2),
                               None), 15, what="customer prefixes at the edge")
    assert (v4.prefixes_accepted, v4.prefixes_rejected) == (1, 1)
    assert v4.rejected[0].prefix == "198.51.100.128/25"
    assert v4.rejected[0].reason == "198.51.100.128/25 is longer than /24: Cloudflare accepts IPv4 /24 or shorter"
    # ... and the kernel forwards the accepted prefixes over the interconnect
    routes4 = wait_for(lambda: "198.51.100.0/24" in (o := lab.run("cf", ["ip", "route"]).stdout) and o, 10,
                       what="kernel route")
    assert "198.51.100.0/24 via 192.0.2.11" in routes4 and "proto bgp" in routes4
    assert "198.51.100.128/25" not in routes4
    wait_for(lambda: "2001:db8:cafe::/48 via 2001:db8:12:3::7ac2:d64b" in lab.run("cf", ["ip", "-6", "route"]).stdout,
             10, what="IPv6 kernel route")

    # runtime withdraw/announce reach FRR without resetting the session
    client.withdraw("104.16.0.0/13")
    wait_for(lambda: frr.received().get("192.0.2.10") == 14, 15, what="withdraw to reach FRR")
    client.announce("104.16.0.0/13")
    wait_for(lambda: frr.received().get("192.0.2.10") == 15, 15, what="re-announce to reach FRR")
    assert client.session("lax1/v4").established_count == 1

    # teardown: FRR sees Cease from Cloudflare, the edge removes the kernel route, then it re-establishes
    assert client.teardown("lax1/v4", subcode=4) == ["lax1/v4"]
    wait_for(lambda: "198.51.100.0/24" not in lab.run("cf", ["ip", "route"]).stdout
             or client.session("lax1/v4").established_count >= 2, 10, what="route removal on teardown")
    assert "Administrative Reset" in frr.vtysh("show bgp neighbors 192.0.2.10")
    wait_for(lambda: client.session("lax1/v4").established_count >= 2, 30, what="re-establishment")

    # configure at runtime: removing the IPv6 session takes it down in FRR, adding it back restores it
    plan_sessions = lab.plan.sessions
    assert client.configure([s for s in plan_sessions if s.family == 4])["removed"] == ["lax1/v6"]
    wait_for(lambda: "2001:db8:12:3::7ac2:d64a" not in frr.received(), 20, what="IPv6 session removed")
    assert client.configure(plan_sessions)["added"] == ["lax1/v6"]
    wait_for(lambda: frr.received().get("2001:db8:12:3::7ac2:d64a") == 7, 30, what="IPv6 session back")


@pytest.mark.root
@pytest.mark.daemons
def test_wrong_md5_never_establishes(edge_lab) -> None:
    lab, frr = edge_lab
    client = client_for(lab)
    frr.start(md5="not-the-key")
    err = wait_for(lambda: next((s.last_error for s in client.sessions()
                                 if s.key == "lax1/v4" and s.last_error and "wrong key" in s.last_error), None),
                   20, what="an MD5 diagnosis")
    assert "no MD5 signature or wrong key" in err
    assert not any(s.up for s in client.sessions())
    assert frr.received() == {}


@pytest.mark.root
@pytest.mark.daemons
def test_wrong_asn_is_refused_with_the_reason(edge_lab) -> None:
    lab, frr = edge_lab
    client = client_for(lab)
    frr.start(asn=65011)
    err = wait_for(lambda: next((s.last_error for s in client.sessions()
                                 if s.key == "lax1/v4" and s.last_notification), None), 20, what="a NOTIFICATION")
    assert err.startswith("OPEN from AS 65011, expected 65010: Bad Peer AS (NOTIFICATION 2/2)")
    assert not any(s.up for s in client.sessions())


def test_cloudflare_ranges_are_what_the_edge_announces(tmp_path: Path) -> None:
    spec = EdgeSpec.from_plan(_plan(V2), tmp_path)
    assert set(spec.announced(4)) | set(spec.announced(6)) == set(cloudflare_ranges())


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.parametrize("edge_lab", [V1], indirect=True, ids=["v1-gre"])
def test_bfd_down_tears_bgp_down_and_bfd_up_lets_it_back(edge_lab) -> None:
    """v1 (GRE, VLAN, BFD 300x3) against FRR bfdd: dropping only BFD packets makes the edge send
    Cease/10 BFD Down (RFC 9384); letting them through again brings BGP back."""
    lab, frr = edge_lab
    client = client_for(lab)
    frr.start(bfd=True)
    client.wait_established(timeout=40)
    wait_for(lambda: (b := client.bfd()) and all(x["state"] == "Up" for x in b) and len(b) == 2, 30, what="BFD Up")
    before = client.events()[-1].seq
    nft = ("table inet cnilab_t_bfd {\n chain out {\n  type filter hook output priority 0;\n"
           "  udp dport 3784 drop\n }\n}\n")
    lab.run("cust", ["nft", "-f", "-"], input=nft)
    try:
        t0 = time.monotonic()
        ev = wait_for(lambda: [e for e in client.events(before) if e.kind == "teardown" and "BFD" in e.detail],
                      15, what="teardown on BFD Down")
        took = time.monotonic() - t0
        assert ev[0].session in ("ewr1/v4", "ewr1/v6")
        assert took < 5, f"BFD 300x3 should tear BGP down within ~1 s, took {took:.1f}s"
        assert any(b["state"] != "Up" for b in client.bfd())
        down = wait_for(lambda: next((s for s in client.sessions() if s.key == ev[0].session and not s.up), None),
                        10, what="the session down")
        assert down.held_by_bfd or down.last_notification
    finally:
        lab.run("cust", ["nft", "delete", "table", "inet", "cnilab_t_bfd"], check=False)
    wait_for(lambda: all(x["state"] == "Up" for x in client.bfd()), 30, what="BFD Up again")
    client.wait_established(timeout=40)
    assert all(not s.held_by_bfd for s in client.sessions())


def test_driver_counts_every_prefix_on_the_wire_with_its_reason(tmp_path: Path) -> None:
    """A customer echoing Cloudflare's 15 ranges (AS13335 in the path), a default and its link net:
    all 18 on the wire are counted and refused by name; only its own /24 is accepted."""
    spec = EdgeSpec.from_plan(_plan(V2), tmp_path)
    spec.save()

    async def scenario() -> None:
        d = EdgeDriver(spec.spec_path, out=lambda _l: None)
        d.handle(_msg("state", "192.0.2.11", state="up"))
        own = {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}}}
        echoed = {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65010, 13335]}}}
        cf4 = [str(p) for p in cloudflare_ranges() if p.version == 4]
        d.handle(_msg("update", "192.0.2.11", direction="receive", message={"update": {
            "attribute": echoed, "announce": {"ipv4 unicast": {"192.0.2.11": [{"nlri": p} for p in cf4]}}}}))
        d.handle(_msg("update", "192.0.2.11", direction="receive", message={"update": {
            "attribute": own, "announce": {"ipv4 unicast": {"192.0.2.11": [
                {"nlri": "198.51.100.0/24"}, {"nlri": "0.0.0.0/0"}, {"nlri": "192.0.2.10/31"}]}}}}))
        v4 = next(s for s in await d.control({"cmd": "sessions"}) if s["family"] == 4)
        assert (v4["prefixes_received"], v4["prefixes_accepted"], v4["prefixes_rejected"]) == (18, 1, 17)
        rules = {r["prefix"]: r["rule"] for r in v4["rejected"]}
        assert {rules[p] for p in cf4} == {"cloudflare-route"}
        assert rules["0.0.0.0/0"] == "default-route" and rules["192.0.2.10/31"] == "connected-link"
        routes = await d.control({"cmd": "routes"})
        assert len(routes["received"]) == 18  # Adj-RIB-In before policy
        assert [str(r.dst) for r in d.desired_routes()] == ["198.51.100.0/24"]

    asyncio.run(scenario())


def test_driver_timers_flaps_and_starting(tmp_path: Path) -> None:
    """Negotiated hold/keepalive, WARN under 9 s, flap counts, and "starting" before any evidence."""
    spec = EdgeSpec.from_plan(_plan(V2), tmp_path)
    spec.save()

    async def scenario() -> None:
        d = EdgeDriver(spec.spec_path, out=lambda _l: None)
        v4 = next(s for s in await d.control({"cmd": "sessions"}) if s["family"] == 4)
        assert v4["starting"] and v4["last_error"].startswith("starting: waiting for the customer router")
        assert "MD5" not in v4["last_error"]
        rt = next(r for r in d.runtimes.values() if r.session.family == 4)
        rt.created -= 3600  # long past the start-up window: now it is a verdict
        v4 = next(s for s in await d.control({"cmd": "sessions"}) if s["family"] == 4)
        assert not v4["starting"] and "has not opened TCP" in v4["last_error"]

        d.handle(_msg("open", "192.0.2.11", direction="receive", open={"asn": 65010, "hold_time": 6}))
        d.handle(_msg("state", "192.0.2.11", state="up"))
        v4 = next(s for s in await d.control({"cmd": "sessions"}) if s["family"] == 4)
        assert (v4["negotiated_hold_s"], v4["keepalive_s"], v4["peer_hold_time"]) == (6, 2, 6)
        assert any("under 9 s" in w for w in v4["warnings"]), v4["warnings"]
        d.handle(_msg("state", "192.0.2.11", state="down", reason="notification received (4,0)"))
        d.handle(_msg("open", "192.0.2.11", direction="receive", open={"asn": 65010, "hold_time": 90}))
        d.handle(_msg("state", "192.0.2.11", state="up"))
        rt.last_keepalive = time.time() - 95  # the customer's keepalive came 95 s after the last one
        d.handle(_msg("keepalive", "192.0.2.11", direction="receive"))
        v4 = next(s for s in await d.control({"cmd": "sessions"}) if s["family"] == 4)
        assert v4["flaps"] == 1 and v4["established_count"] == 2
        assert [t["state"] for t in v4["transitions"]] == ["Established", "Idle", "Established"]
        assert "Hold Timer Expired" in v4["transitions"][1]["reason"]
        assert v4["negotiated_hold_s"] == 9 and v4["peer_keepalive_s"] >= 95  # min(ours 9, theirs 90)
        assert any("KEEPALIVE every 95 s" in w for w in v4["warnings"]), v4["warnings"]

    asyncio.run(scenario())
