"""The edge's specification and the ExaBGP 5 configuration rendered from it.

``EdgeSpec`` is everything the Cloudflare side of a lab needs (sessions from the LabPlan, the
prefixes it announces, the customer's allow-list), written to ``edge.json`` in the cf node's
directory. It is the single source of truth: the driver re-renders ``exabgp.conf`` from it and asks
ExaBGP to reload whenever sessions or announcements change at runtime, so a restart of either
process always comes back to the same state.

ExaBGP 5 syntax (checked against exabgp 5.0.15's configuration parser): one ``neighbor`` block per
session with ``local-address``/``listen 179`` so it listens only on the cf address, with the MD5
key set on that listening socket for that one peer (``md5-password``); ``passive`` decides whether
it also connects. ``api { neighbor-changes; fsm; receive { parsed; update; open; keepalive; notification; } }``
feeds the driver the JSON it needs for state, prefixes, the customer's real keepalive interval
and error diagnosis.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

from cnilab.sim.bgp.rov import Roa
from cnilab.sim.bgp.scale import more_specifics
from cnilab.sim.runtime.files import atomic_write
from cnilab.sim.topology.plan import LabPlan, Session, Tunnel
from pydantic import BaseModel, Field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROCESS_NAME = "cnilab-driver"
GSHUT_COMMUNITY = "65535:0"
"""GRACEFUL_SHUTDOWN (RFC 8326): receivers lower the route's local-pref to 0 before the session drops."""
DEFAULT_ROUTER_ID = "192.0.2.10"

EXABGP_ENV: dict[str, str] = {
    # run as root: the driver programs kernel routes and the BFD speaker binds port 3784
    "exabgp_daemon_user": "root",
    "exabgp_daemon_drop": "false",
    "exabgp_daemon_daemonize": "false",
    # listen per neighbor (``listen 179`` + local-address), never on a wildcard address
    "exabgp_tcp_bind": "",
    "exabgp_tcp_port": "179",
    # the driver does not wait for "done" after each command (fire and forget on stdout)
    "exabgp_api_ack": "false",
    "exabgp_api_cli": "false",
    "exabgp_api_encoder": "json",
    "exabgp_api_respawn": "true",
    "exabgp_log_destination": "stdout",
    "exabgp_log_level": "INFO",
    "exabgp_log_short": "false",
}
"""Environment for ``exabgp`` (underscore spelling of exabgp.daemon.user etc.)."""


class EdgeSpec(BaseModel):
    """What the edge peer is asked to be; persisted as edge.json next to exabgp.conf."""

    lab: str
    sessions: list[Session]
    tunnels: list[Tunnel] = Field(default_factory=list)
    cf_prefixes: list[Network]
    customer_prefixes: list[Network]
    scale_routes: int = 0
    extra_announce: list[Network] = Field(default_factory=list, description="announced at runtime")
    withdrawn: list[Network] = Field(default_factory=list, description="base prefixes withdrawn at runtime")
    ifnames: dict[str, str] = Field(default_factory=dict, description="plan interface -> kernel name (VLAN fallback)")
    roas: list[Roa] | None = Field(default=None, description="Customer's ROAs for origin validation (None: off)")
    gshut: list[str] = Field(default_factory=list, description="Interconnects whose routes carry GRACEFUL_SHUTDOWN "
                                                               "65535:0 (RFC 8326): Cloudflare-side maintenance")
    workdir: Path
    python: str = Field(default_factory=lambda: sys.executable)

    @property
    def conf_path(self) -> Path:
        return self.workdir / "exabgp.conf"

    @property
    def spec_path(self) -> Path:
        return self.workdir / "edge.json"

    @property
    def control_path(self) -> Path:
        return self.workdir / "control.sock"

    def announced(self, family: int) -> list[Network]:
        """Prefixes the edge sends on sessions of ``family``: ranges + extra + scale, minus withdrawn."""
        gone = set(self.withdrawn)
        base = [*self.cf_prefixes, *self.extra_announce, *more_specifics(self.scale_routes)]
        seen: set[Network] = set()
        out = []
        for p in base:
            if p.version == family and p not in gone and p not in seen:
                seen.add(p)
                out.append(p)
        return out

    def link_nets(self) -> list[Network]:
        """The interconnects' own /31 (/127) and GRE inner nets: never a customer announcement."""
        nets: list[Network] = [ipaddress.ip_network(f"{s.cf_addr}/{31 if s.family == 4 else 127}", strict=False)
                               for s in self.sessions]
        nets += [t.cf_inner.network for t in self.tunnels]
        return list(dict.fromkeys(nets))

    def tunnel_for(self, session: Session) -> Tunnel | None:
        return next((t for t in self.tunnels if t.interconnect == session.interconnect), None)

    def nexthop_to_customer(self, session: Session) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """Where the edge sends traffic for this session's prefixes: the customer's GRE inner
        address when cf->customer rides GRE, else the customer's link address."""
        tun = self.tunnel_for(session)
        if session.cust_nexthop_via == "gre" and tun is not None:
            return tun.cust_nexthop(session.family)
        return session.cust_addr

    def save(self) -> None:
        atomic_write(self.spec_path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path) -> EdgeSpec:
        return cls.model_validate_json(path.read_text())

    @classmethod
    def from_plan(cls, plan: LabPlan, workdir: Path, scale_routes: int = 0) -> EdgeSpec:
        return cls(lab=plan.lab, sessions=plan.sessions, tunnels=plan.tunnels, cf_prefixes=plan.cf_prefixes,
                   customer_prefixes=plan.customer_prefixes, scale_routes=scale_routes, workdir=workdir,
                   roas=plan.roas)


def _router_id(spec: EdgeSpec, s: Session) -> str:
    """BGP identifier: the cf IPv4 address of the same interconnect (an IPv6 session needs one too)."""
    if s.family == 4:
        return str(s.cf_addr)
    v4 = next((x for x in spec.sessions if x.interconnect == s.interconnect and x.family == 4), None)
    v4 = v4 or next((x for x in spec.sessions if x.family == 4), None)
    return str(v4.cf_addr) if v4 else DEFAULT_ROUTER_ID


def _quote(value: str) -> str:
    if any(c in value for c in "\"\n;{}"):
        raise ValueError(f"md5 key {value!r} contains a character ExaBGP cannot quote (\" ; {{ }} or newline)")
    return json.dumps(value)


def render_neighbor(spec: EdgeSpec, s: Session) -> str:
    fam = "ipv4 unicast" if s.family == 4 else "ipv6 unicast"
    lines = [
        f"neighbor {s.cust_addr} {{",
        f"    description {json.dumps(s.key)};",
        f"    router-id {_router_id(spec, s)};",
        f"    local-address {s.cf_addr};",
        f"    local-as {s.cf_asn};",
        f"    peer-as {s.cust_asn};",
        f"    hold-time {s.hold_time};",
        f"    passive {'true' if s.passive else 'false'};",
        "    listen 179;",
        "    group-updates true;",
    ]
    if s.md5:
        lines.append(f"    md5-password {_quote(s.md5)};")
    lines += [
        "    family {",
        f"        {fam};",
        "    }",
        "    api {",
        f"        processes [ {PROCESS_NAME} ];",
        "        neighbor-changes;",
        "        fsm;",
        "        receive {",
        "            parsed;",
        "            update;",
        "            open;",
        "            notification;",
        "        }",
        "    }",
    ]
    routes = spec.announced(s.family)
    if routes:
        lines.append("    static {")
        tag = f" community [ {GSHUT_COMMUNITY} ]" if s.interconnect in spec.gshut else ""
        lines += [f"        route {p} next-hop {s.cf_nexthop}{tag};" for p in routes]
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines)


def render(spec: EdgeSpec) -> str:
    """The whole exabgp.conf: the driver process, then one neighbor per session."""
    run = f"{spec.python} -m cnilab.sim.edge.driver {spec.spec_path}"
    if any(c.isspace() for c in str(spec.spec_path)) or any(c.isspace() for c in spec.python):
        raise ValueError(f"edge work directory {spec.workdir} contains whitespace: ExaBGP's `run` cannot quote it")
    parts = [
        f"# rendered by cnilab.sim.edge.exabgp_conf for lab {spec.lab}; edit the topology, not this file",
        f"process {PROCESS_NAME} {{",
        f"    run {run};",
        "    encoder json;",
        "}",
    ]
    parts += [render_neighbor(spec, s) for s in spec.sessions]
    return "\n".join(parts) + "\n"


def write(spec: EdgeSpec) -> Path:
    """Save edge.json and exabgp.conf atomically (ExaBGP may re-read the file at any moment)."""
    spec.save()
    atomic_write(spec.conf_path, render(spec))
    return spec.conf_path


def exabgp_argv(spec: EdgeSpec, exabgp: str | None = None) -> list[str]:
    """``env VAR=... exabgp server CONF``: the env travels in argv so any spawner can run it."""
    exe = exabgp or str(Path(spec.python).with_name("exabgp"))
    return ["env", *(f"{k}={v}" for k, v in EXABGP_ENV.items()), exe, "server", str(spec.conf_path)]
