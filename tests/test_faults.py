"""Faults on a running v1 lab: each one really changes what crosses the link, and clears cleanly."""

from __future__ import annotations

import re
import time

import pytest
from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.faults.apply import FaultError, apply_fault, clear_faults
from cnilab.sim.probes.mtu import _first_v4
from cnilab.sim.probes.traffic import UdpStream
from cnilab.sim.state import LabState
from cnilab.sim.testing import wait_for

from tests.labs import lab_fixture

pytestmark = [pytest.mark.root, pytest.mark.daemons]


lab = lab_fixture("v1-gre.yml")


@pytest.fixture(autouse=True)
def _clear(lab):
    yield
    clear_faults(lab)


def _rtt_ms(lab, count: int = 5) -> float | None:
    """The *minimum* RTT of ``count`` pings: a busy host only ever adds to an RTT, so the minimum is
    the figure that stays put under load (the average and maximum do not)."""
    out = lab.run("cust", ["ping", "-c", str(count), "-i", "0.1", "-W", "1", "192.0.2.10"], check=False).stdout
    m = re.search(r"= ([\d.]+)/[\d.]+/", out)
    return float(m.group(1)) if m else None


def _delivery(lab, seconds: float = 3.0, rate: int = 400) -> float:
    plan = lab.plan
    with UdpStream(lab.netns_path("inet"), lab.netns_path("origin"), _first_v4(plan, "origin"), rate) as s:
        time.sleep(seconds)
    st = s.stats()
    return st.received / max(1, st.sent)


def test_loss_30_percent_loses_about_30_percent(lab):
    # On the customer LAN: on the interconnect, 30 % loss also starves BFD 300x3 (three misses in a
    # row are likely within seconds), which tears BGP down and would add outages to the loss.
    baseline = _delivery(lab, seconds=1)  # anchor: what this host delivers right now without a fault
    assert baseline > 0.9, baseline
    rec = apply_fault(lab, "lan", "loss", "30%")
    assert "numgen" in rec.mechanism or "netem" in rec.mechanism
    delivered = _delivery(lab, seconds=4, rate=500)
    # 2000 packets: 30 % +/- 10 points is > 10 sigma; relative to the anchor, so host losses don't count.
    assert 0.60 <= delivered / baseline <= 0.80, (delivered, baseline)
    clear_faults(lab, "lan")
    # Cleared means nothing is dropped any more: no 30 % hole, measured as a condition, not a race.
    wait_for(lambda: _delivery(lab, seconds=1) >= min(0.97, baseline - 0.02), 15, 0,
             what="full delivery after clearing the loss fault")


def test_blackhole_drops_everything_then_clears(lab):
    apply_fault(lab, "ewr1", "blackhole")
    assert _rtt_ms(lab, 3) is None
    assert [f.kind for f in LabState.load(lab.name).faults] == ["blackhole"]
    clear_faults(lab, "ewr1")
    assert _rtt_ms(lab, 3) is not None
    assert LabState.load(lab.name).faults == []


def test_delay_adds_latency_each_way(lab):
    base = _rtt_ms(lab)
    assert base is not None
    rec = apply_fault(lab, "ewr1", "delay", "50ms")
    assert "delay" in rec.mechanism
    rtt = _rtt_ms(lab)
    assert rtt is not None
    added = rtt - base
    # 50 ms out + 50 ms back. A delay line can never deliver early, so the lower bound is physics;
    # the upper bound is generous because the userspace delay line shares a loaded host.
    assert 99 <= added <= 400, (base, rtt)
    clear_faults(lab, "ewr1")
    wait_for(lambda: (_rtt_ms(lab) or 1e9) < base + 50, 10, 0, what="RTT back below the added delay after clear")


def test_drop_bfd_only_takes_bfd_down_and_bgp_with_it(lab):
    edge = EdgeClient(lab.state.control["edge"])
    assert _rtt_ms(lab, 2) is not None
    apply_fault(lab, "ewr1", "drop-bfd")
    wait_for(lambda: all(b["state"] != "Up" for b in edge.bfd()), 5, 0.05, "BFD down")
    assert _rtt_ms(lab, 2) is not None  # the data path is fine: only BFD is dropped
    wait_for(lambda: not edge.session("ewr1/v4").up, 5, 0.05, "BGP torn down by BFD")
    clear_faults(lab, "ewr1")
    edge.wait_established(timeout=60)


def test_drop_bgp_only_keeps_bfd_up(lab):
    """Dropping TCP 179 starves BGP: the hold timer (9 s) takes the session down while BFD and the
    data path, which the fault does not touch, stay up the whole time."""
    edge = EdgeClient(lab.state.control["edge"])
    edge.wait_established(timeout=60)
    hold = next(s.hold_time for s in lab.plan.sessions if s.key == "ewr1/v4")
    bfd_seen: set[str] = set()

    def bgp_down() -> bool:
        bfd_seen.update(b["state"] for b in edge.bfd())
        return not edge.session("ewr1/v4").up

    t0 = time.monotonic()
    apply_fault(lab, "ewr1", "drop-bgp")
    wait_for(bgp_down, hold + 20, 0.1, "BGP torn down by its hold timer")
    # Not sooner than the hold time allows (keepalives every hold/3: at least 2/3 of it).
    assert time.monotonic() - t0 >= hold * 2 / 3 - 0.5
    assert bfd_seen == {"Up"}, bfd_seen
    assert _rtt_ms(lab, 2) is not None
    clear_faults(lab, "ewr1")
    edge.wait_established(timeout=60)


def test_low_light_takes_the_link_down_and_records_the_level(lab):
    rec = apply_fault(lab, "ewr1", "light", "-25dBm")
    assert rec.undo["light_dbm"] == -25.0 and rec.undo["carrier_up"] is False
    assert _rtt_ms(lab, 2) is None
    clear_faults(lab, "ewr1")
    wait_for(lambda: _rtt_ms(lab, 2) is not None, 10, what="link back after the light fault")
    # Everything comes back, IPv6 too: both ends keep their addresses across the carrier loss.
    edge = EdgeClient(lab.state.control["edge"])
    edge.wait_established(timeout=60)
    wait_for(lambda: edge.bfd() and all(b["state"] == "Up" for b in edge.bfd()), 30, 0.1, "BFD Up again (v4 and v6)")


def test_light_above_floor_changes_nothing_on_the_wire(lab):
    """Above the optic's floor the level is recorded (status and the API read it) and the carrier,
    BFD and the data path stay as they were."""
    edge = EdgeClient(lab.state.control["edge"])
    wait_for(lambda: edge.bfd() and all(b["state"] == "Up" for b in edge.bfd()), 30, 0.1, "BFD Up")
    before = {b["peer"]: b["state"] for b in edge.bfd()}
    rec = apply_fault(lab, "ewr1", "light", "-12dBm")
    assert rec.undo["carrier_up"] is True and rec.undo["light_dbm"] == -12.0
    assert "above the floor" in rec.mechanism
    faults = LabState.load(lab.name).faults
    assert [(f.kind, f.value) for f in faults] == [("light", rec.value)] and faults[0].undo["light_dbm"] == -12.0
    end = next(e for lk in lab.plan.links if lk.name == "ewr1" for e in (lk.a, lk.b) if e.node == "cust")
    iface = lab.ifname("cust", end.iface)
    link = lab.run("cust", ["ip", "-br", "link", "show", "dev", iface]).stdout
    assert "LOWER_UP" in link, link
    assert _rtt_ms(lab, 2) is not None
    # Observed for longer than a BFD detection time: a link the fault really disturbed would drop BFD.
    seen: set[tuple[str, str]] = set()
    end_t = time.monotonic() + max(b["detection_ms"] for b in edge.bfd()) / 1000 + 0.5
    while time.monotonic() < end_t:
        seen.update((b["peer"], b["state"]) for b in edge.bfd())
        time.sleep(0.05)
    ups = {p for p, st in before.items() if st == "Up"}
    assert {(p, st) for p, st in seen if p in ups} == {(p, "Up") for p in ups}, (before, seen)


def test_rate_limit_caps_throughput(lab):
    apply_fault(lab, "ewr1", "rate", "1mbit")
    # 400 pps x 200 B = 640 kbit/s fits; 2000 pps = 3.2 Mbit/s does not.
    assert _delivery(lab, seconds=2, rate=2000) < 0.6


def test_bad_fault_requests_are_refused_clearly(lab):
    with pytest.raises(FaultError, match="no link or node named 'nope'"):
        apply_fault(lab, "nope", "down")
    with pytest.raises(FaultError, match="loss 'lots' is not a percentage"):
        apply_fault(lab, "ewr1", "loss", "lots")
    with pytest.raises(FaultError, match="unknown fault kind"):
        apply_fault(lab, "ewr1", "explode")
    assert LabState.load(lab.name).faults == []
