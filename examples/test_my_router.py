"""Acceptance tests for YOUR router config, written with cnilab's pytest plugin.

Copy this file next to your router config and run it on every change (root: the lab uses network
namespaces)::

    sudo pytest test_my_router.py --cnilab-topology topologies/v1-gre.yml \\
        --cnilab-customer-config router/frr.conf --cnilab-kind frr --cnilab-dataplane router/gre.sh

The plugin (installed with cnilab) builds one lab per module from the topology with your config as
the customer router, and removes it afterwards even when a test fails. Fixtures: ``cni_plan`` (the
resolved lab plan: addresses, prefixes, required MSS), ``cni_lab`` (the running lab), ``edge``
(Cloudflare's side: sessions, received routes with accept/reject reasons, BFD), ``cni_api`` (a
mock CNI API). ``cnilab.sim.testing.wait_for`` retries a condition until a deadline: labs converge, so
tests wait for a state instead of sleeping.
"""

from __future__ import annotations

import json

from cnilab.sim.testing import wait_for


def test_peers_with_cloudflare(edge, cni_plan):
    sessions = edge.wait_established(timeout=60)
    assert {s.key for s in sessions} == {s.key for s in cni_plan.sessions}
    assert all(s.peer_asn == s_plan.cust_asn for s in sessions for s_plan in cni_plan.sessions)


def test_accepts_cloudflares_prefixes(cni_lab, cni_plan):
    want = {str(p) for p in cni_plan.cf_prefixes if p.version == 4}

    def installed() -> set[str]:
        routes = json.loads(cni_lab.run("cust", ["ip", "-j", "route", "show"]).stdout)
        return {r["dst"] for r in routes}

    wait_for(lambda: want <= installed(), timeout=30, what="Cloudflare's prefixes in the customer's kernel")


def test_announces_only_allowed_prefixes(edge, cni_plan):
    allowed = {str(p) for p in cni_plan.customer_prefixes}
    wait_for(lambda: allowed <= {r.prefix for r in edge.routes().received if r.accepted}, timeout=30,
             what="Cloudflare accepted every allow-listed prefix")
    refused = [f"{r.prefix}: {r.reason}" for s in edge.sessions() for r in s.rejected]
    assert not refused, refused


def test_clamps_tcp_mss(cni_lab):
    from cnilab.sim.probes.mss import probe_mss

    report = probe_mss(cni_lab)
    assert report.ok, [r.advice for r in report.results] + list(report.fix.values())


def test_the_api_lists_free_slots(cni_api):
    import httpx

    r = httpx.get(f"{cni_api.base_url}/accounts/{cni_api.account}/cni/slots",
                  params={"site": "ewr01", "occupied": "false"},
                  headers={"Authorization": f"Bearer {cni_api.token}"})
    assert r.status_code == 200 and r.json()["items"], r.text
