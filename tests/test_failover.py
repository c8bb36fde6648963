"""Failover in the three-site HA lab: traffic moves from EWR1 to EWR2 in about the BFD detection
time with BFD, and in about the BGP hold time without it (generous bounds: this is a shared 2-core
machine; the benchmark in bench/ records the precise ratios)."""

from __future__ import annotations

import pytest
from cnilab.sim.probes.failover import measure_failover

from tests.labs import running_lab

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]


def _no_bfd(topo):
    ics = [ic.model_copy(update={"bfd": ic.bfd.model_copy(update={"enabled": False})}) for ic in topo.interconnects]
    return topo.model_copy(update={"interconnects": ics})


def test_primary_failure_moves_traffic_within_bfd_detection(tmp_path):
    with running_lab(tmp_path, "ha-three-site.yml") as lab:
        r = measure_failover(lab, "ewr1", "blackhole", rate_pps=200)
    assert r.path_before == "ewr1" and r.path_after == "ewr2", r.summary
    assert r.expected.mechanism == "BFD detection" and r.expected.detection_ms == 900
    # Detection is 900 ms after the last BFD packet, i.e. 600-900 ms after the cut; allow scheduling slack.
    assert 400 <= r.first_packet_new_path_ms <= 2500, r.summary
    assert r.lost > 0 and r.loss_window_ms >= 300
    # The other direction is the customer router's own decision (its BFD, its local-pref 200/150).
    back = next(d for d in r.directions if d.direction == "customer_to_cf")
    assert back.observed_at == "customer router" and back.stream == "origin -> inet"
    assert back.path_before == "ewr1" and back.path_after == "ewr2", r.summary
    assert 400 <= back.first_packet_new_path_ms <= 2500 and back.lost > 0, r.summary
    assert r.ok


def test_without_bfd_the_hold_timer_decides(tmp_path):
    with running_lab(tmp_path, "ha-three-site.yml", edit=_no_bfd) as lab:
        r = measure_failover(lab, "ewr1", "blackhole", rate_pps=100)
    assert r.path_before == "ewr1" and r.path_after == "ewr2", r.summary
    assert r.expected.mechanism == "BGP hold timer" and r.expected.detection_ms == 9000
    # Hold time 9 s after the last keepalive (sent every 3 s): 6-9 s after the cut.
    assert 5000 <= r.first_packet_new_path_ms <= 12000, r.summary
    back = next(d for d in r.directions if d.direction == "customer_to_cf")
    assert back.path_after == "ewr2" and 5000 <= back.first_packet_new_path_ms <= 12000, r.summary
