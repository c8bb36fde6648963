"""Router kinds for tests: the registry as pytest parameters, a one-interconnect plan, and
Cloudflare stand-ins written in another daemon, so a customer daemon is never only judged by itself.

The plan's addressing is what the example configs (``examples/customer-configs``) use.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cnilab.sim.facts import router_kind_names, router_kinds
from cnilab.sim.routers import CustomerRouter
from cnilab.sim.routers.registry import router_class
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import LabPlan, build_plan

from tests.labs import ROOT, MiniLab

EXAMPLES = ROOT / "examples" / "customer-configs"
CF4, CF6 = "104.16.0.0/13", "2606:4700::/32"


def make_plan(tmp_path: Path, *, kind: str = "frr", config: Path | None = None, dataplane: str = "v2",
              mss_clamp: Any = "auto", md5: str = "cni-rehearsal", bfd: bool = False) -> LabPlan:
    """A one-interconnect topology with the addressing the example configs use (v2-direct.yml)."""
    topo: dict[str, Any] = {
        "name": "routers-test",
        "customer": {"asn": 65010, "prefixes": ["198.51.100.0/24", "2001:db8:cafe::/48"],
                     "router": {"kind": kind, "config": str(config) if config else None, "mss_clamp": mss_clamp}},
        "interconnects": [{
            "name": "ic1", "site": "LAX1", "dataplane": dataplane,
            "ipv4": {"cloudflare": "192.0.2.10/31", "customer": "192.0.2.11/31"},
            "ipv6": {"cloudflare": "2001:db8:12:3::7ac2:d64a/127", "customer": "2001:db8:12:3::7ac2:d64b/127"},
            "bgp": {"md5": md5, "hold_time": 9, "keepalive": 3, "local_pref": 150},
            "bfd": {"enabled": bfd, "tx_ms": 200, "rx_ms": 200, "multiplier": 3},
        }],
    }
    path = tmp_path / "topo.yml"
    path.write_text(yaml.safe_dump(topo))
    return build_plan(load_topology(path), lab=f"t-{uuid.uuid4().hex[:8]}")


def bird_peer_conf(plan: LabPlan, md5: str | None = None) -> str:
    """Cloudflare stand-in in BIRD: AS13335, passive, announces one v4 and one v6 Cloudflare range."""
    out = ["log stderr all;", f"router id {plan.sessions[0].cf_addr};", "protocol device {}",
           f"protocol static cf4 {{ ipv4; route {CF4} blackhole; }}",
           f"protocol static cf6 {{ ipv6; route {CF6} blackhole; }}"]
    for s in plan.sessions[:1]:
        if s.bfd:
            out.append(f"""protocol bfd {{ interface "{s.cf_iface}" {{ min rx interval {s.bfd_rx_ms} ms;
  min tx interval {s.bfd_tx_ms} ms; multiplier {s.bfd_multiplier}; }}; }}""")
    for i, s in enumerate(plan.sessions):
        key = md5 if md5 is not None else s.md5
        out.append(f"""protocol bgp cust{i} {{
  local {s.cf_addr} as {s.cf_asn}; neighbor {s.cust_addr} as {s.cust_asn};
  password "{key}"; passive on; hold time {s.hold_time}; keepalive time {s.keepalive};
  {"bfd on;" if s.bfd else ""}
  ipv{s.family} {{ import all; export where proto = "cf{s.family}"; }};
}}""")
    return "\n".join(out) + "\n"


def frr_peer_conf(plan: LabPlan) -> str:
    """Cloudflare stand-in in FRR (for a BIRD customer)."""
    t = plan.sessions[0]
    lines = ["frr defaults traditional", "bfd", " profile cf", f"  transmit-interval {t.bfd_tx_ms}",
             f"  receive-interval {t.bfd_rx_ms}", f"  detect-multiplier {t.bfd_multiplier}", " exit", "exit",
             "router bgp 13335", f" bgp router-id {plan.sessions[0].cf_addr}",
             " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " no bgp network import-check"]
    for s in plan.sessions:
        lines += [f" neighbor {s.cust_addr} remote-as {s.cust_asn}", f" neighbor {s.cust_addr} password {s.md5}",
                  f" neighbor {s.cust_addr} passive", f" neighbor {s.cust_addr} timers {s.keepalive} {s.hold_time}"]
        if s.bfd:
            lines.append(f" neighbor {s.cust_addr} bfd profile cf")
    for fam, net in ((4, CF4), (6, CF6)):
        lines += [f" address-family ipv{fam} unicast", f"  network {net}"]
        lines += [f"  neighbor {s.cust_addr} activate" for s in plan.sessions if s.family == fam]
        lines.append(" exit-address-family")
    return "\n".join([*lines, "exit", "end"]) + "\n"


LAB_KINDS = router_kind_names(in_lab=True)


def missing_binaries(kind: str) -> list[str]:
    """The binaries the registry lists for ``kind`` that this machine lacks."""
    def present(b: str) -> bool:
        return Path(b).exists() if b.startswith("/") else shutil.which(b) is not None

    return [b for b in router_kinds()[kind].binaries if not present(b)]


def needs(*kinds: str) -> pytest.MarkDecorator:
    """Skip unless every kind's daemons (the registry's ``binaries``) are installed."""
    missing = [router_kinds()[k].title for k in kinds if missing_binaries(k)]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {'; '.join(missing)}")


def kind_params(*also: str, bfd: bool = False, peer: bool = False) -> list[Any]:
    """Every kind the lab can run (only those with BFD, if ``bfd``) as a pytest param, skipped where
    its daemons are missing, or those of the kinds ``also`` or (``peer``) its stand-in peer."""
    return [pytest.param(k, marks=needs(k, *also, *([peer_kind(k)] if peer else [])))
            for k in LAB_KINDS if router_kinds()[k].bfd or not bfd]


PEER_CONF: dict[str, Callable[[LabPlan], str]] = {"bird": bird_peer_conf, "frr": frr_peer_conf}


def peer_kind(kind: str) -> str:
    """The Cloudflare stand-in for a customer ``kind``: another implementation, so neither side
    only agrees with itself (BIRD, or FRR facing a BIRD customer)."""
    return "frr" if kind == "bird" else "bird"


def start_peer(lab: MiniLab, kind: str) -> CustomerRouter:
    peer = router_class(peer_kind(kind))(lab, "cf")
    peer.start(PEER_CONF[peer_kind(kind)](lab.plan), source="peer")
    return peer


def good_config(kind: str) -> Path:
    """The example config a careful customer of ``kind`` writes (every kind ships one)."""
    return next(p for p in sorted(EXAMPLES.glob(f"{kind}-good.*")) if p.suffix != ".rib")  # gobgp's RIB companion
