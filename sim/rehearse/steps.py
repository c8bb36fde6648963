"""The checklist steps. Each takes the shared :class:`Context`, returns the lines it verified, and
raises :class:`~cnilab.sim.rehearse.advice.StepFailed` with advice when the check does not hold.

Steps only *use* the lab and the API the runner opened; they never own a resource, so the runner's
ExitStack alone decides teardown, whatever step fails or raises.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cnilab.sim.checks import bfd_up, detection, router_has_bfd, wait_torn_down
from cnilab.sim.edge.control import ControlError, EdgeClient, SessionInfo
from cnilab.sim.edge.readiness import deterministic_evidence
from cnilab.sim.facts import facility_by_code, load_facts
from cnilab.sim.handle import LabHandle
from cnilab.sim.rehearse.advice import (
    StepFailed,
    bfd_advice,
    bgp_findings,
    mss_advice,
    mtu_advice,
    rejected_findings,
)
from cnilab.sim.rehearse.api import ApiError, CniApi
from cnilab.sim.rehearse.model import Finding, RunOptions
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.plan import CUSTOMER, LabPlan


@dataclass
class Context:
    """Everything the steps share: inputs, the open API client and lab, and what earlier steps made."""

    options: RunOptions
    topo: Topology
    plan: LabPlan
    api: CniApi | None = None
    lab: LabHandle | None = None
    open_lab: Callable[[bool], LabHandle] | None = None  # (daemons) -> running lab, owned by the runner
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    icons: dict[str, str] = field(default_factory=dict)  # lab interconnect -> API name
    cnis: dict[str, dict[str, Any]] = field(default_factory=dict)  # session key -> CNI body
    pending: list[Finding] = field(default_factory=list)  # warnings of the running step

    def warn(self, check: str, cause: str, fix: str = "", subject: str = "") -> None:
        """Record a finding that does not fail the step (the step's status becomes warn)."""
        self.pending.append(Finding(severity="warn", check=check, subject=subject, cause=cause, fix=fix))

    def take_findings(self) -> list[Finding]:
        out, self.pending = self.pending, []
        return out
    provenance: dict[str, str] = field(default_factory=dict)  # step id -> who configured what it exercised

    @property
    def edge(self) -> EdgeClient:
        return EdgeClient(self.lab.state.control["edge"])

    def need_api(self) -> CniApi:
        assert self.api is not None, "this step needs the mock API"
        return self.api

    @property
    def bgp_timeout(self) -> float:
        """The user's --bgp-timeout, else what the plan's timers need plus slack."""
        from cnilab.sim.edge.readiness import bring_up_budget

        return self.options.bgp_timeout if self.options.bgp_timeout is not None else bring_up_budget(self.plan)

    @property
    def asn_source(self) -> str:
        return "the CNI's bgp.customer_asn" if self.cnis else "customer.asn in the topology"


Step = Callable[[Context], list[str]]


# -- 1 scope -----------------------------------------------------------------------------------------
def scope(ctx: Context) -> list[str]:
    """Find a free slot of the right speed at each interconnect's site (seed 000: scope and site)."""
    from cnilab.mock_api.inventory import slot_by_id

    api, out = ctx.need_api(), []
    for ic in ctx.topo.interconnects:
        fac = facility_by_code(ic.site)
        assert fac is not None  # the topology validator already refused unknown sites
        free = api.free_slots(fac.site, ic.speed)
        if not free:
            raise StepFailed(f"no free {ic.speed} slot at {fac.code} ({fac.site})",
                             [f"GET /slots?site={fac.site}&occupied=false lists none at {ic.speed}: pick another "
                              "site or speed in the topology, or ask Cloudflare for capacity"])
        # Lab-side knowledge (never in API bodies): prefer a port of the topology's dataplane.
        same = [s for s in free if (d := slot_by_id(s["id"])) is not None and d.dataplane == ic.dataplane]
        slot = (same or free)[0]
        ctx.slots[ic.name] = slot
        out.append(f"{ic.name}: {len(free)} free {ic.speed} slot(s) at {fac.code} {slot['facility']['name']}; "
                   f"picked {slot['ccr_device_name']} ({slot['id'][:8]})")
    return out


# -- 2 order + LOA -----------------------------------------------------------------------------------
def order(ctx: Context) -> list[str]:
    """Create the interconnect, see it Pending, and download an LOA that names the facility."""
    api, out = ctx.need_api(), []
    for ic in ctx.topo.interconnects:
        slot = ctx.slots[ic.name]
        body = api.create_interconnect(slot["id"], ic.speed)
        icon = body["name"]
        ctx.icons[ic.name] = icon
        st = api.status(icon)
        if st.get("state") != "Pending":
            raise StepFailed(f"new interconnect {icon} is {st}, expected Pending before the cross-connect")
        resp = api.loa(icon)
        pdf = resp.content
        problems = []
        if not resp.headers.get("content-type", "").startswith("application/pdf"):
            problems.append(f"content-type {resp.headers.get('content-type')!r}")
        if not pdf.startswith(b"%PDF-"):
            problems.append("not a PDF (no %PDF- header)")
        fac_name = slot["facility"]["name"]
        code = facility_by_code(ic.site).code  # type: ignore[union-attr]
        for needle in (fac_name, code):
            if needle.encode("latin-1") not in pdf:
                problems.append(f"the LOA does not name {needle!r}")
        if problems:
            raise StepFailed(f"LOA for {icon}: " + "; ".join(problems),
                             ["the colo's cross-connect desk refuses an LOA without the facility: regenerate it "
                              f"(GET /interconnects/{icon}/loa)"])
        out.append(f"{ic.name}: interconnect {icon} created, status Pending; "
                   f"LOA {len(pdf)} bytes PDF naming {fac_name} ({code})")
    return out


# -- 3 cross-connect ---------------------------------------------------------------------------------
def start_lab(ctx: Context, daemons: bool = True) -> None:
    """Build the lab (with its daemons unless ``daemons`` is False); the runner owns its teardown."""
    if ctx.lab is None:
        assert ctx.open_lab is not None
        with _router_verdict(ctx):
            ctx.lab = ctx.open_lab(daemons)


@contextlib.contextmanager
def _router_verdict(ctx: Context) -> Iterator[None]:
    """A customer daemon that will not run the config is a verdict on the config, not a lab error."""
    from cnilab.sim.dataplane.customer import DataplaneError
    from cnilab.sim.routers import RouterError

    try:
        yield
    except DataplaneError as exc:
        raise StepFailed(f"your dataplane declaration failed on the router: {exc}",
                         ["fix the line it names: the same line would fail on your router"]) from None
    except RouterError as exc:
        kind = ctx.plan.customer_router.kind.upper()
        raise StepFailed(f"your {kind} did not start in the lab: {exc}",
                         [f"{kind} accepted the syntax but refused to run it: fix what its log says "
                          f"({ctx.plan.customer_router.config or 'template'})"]) from None


def cross_connect(ctx: Context) -> list[str]:
    """Bring up the lab and bind each API interconnect to its lab link: the cross-connect is made."""
    from cnilab.sim.edge import start_edge, wait_ready
    from cnilab.sim.routers import start_customer

    api = ctx.need_api()
    # Order of the day: the port is patched (lab links), Cloudflare's edge runs but has nothing
    # configured for this customer, and the customer router is switched on once the cross-connect
    # exists. Starting the router only after the bind also keeps it from peering with the lab's
    # default sessions and then sitting in its error back-off (BIRD: error wait) when they vanish.
    start_lab(ctx, daemons=False)
    start_edge(ctx.lab)
    wait_ready(ctx.lab, ctx.bgp_timeout)
    mech = ctx.lab.state.mechanisms
    out = [f"lab {ctx.lab.name} up: " + ", ".join(f"{k} {v.split(':')[0]}" for k, v in mech.items())]
    for ic in ctx.topo.interconnects:
        icon = ctx.icons[ic.name]
        api.bind(icon, ctx.lab.name, ic.name)
        try:
            api.wait_state(icon, "Healthy", ctx.options.api_timeout)
        except TimeoutError as exc:
            raise StepFailed(str(exc), ["the lab link did not come up: `cnilab status` and `cnilab fault list`"]) \
                from None
        out.append(f"{ic.name}: {icon} bound to lab link {ic.name}; status Healthy")
    keys = {s.key for s in ctx.edge.sessions()}
    managed = [s.key for s in ctx.plan.sessions if s.key in keys]
    if managed:
        raise StepFailed(f"the edge already has sessions {managed} before any CNI object exists",
                         ["the API should configure the edge only from CNI objects: check the API's lab binding"])
    out.append("edge holds no BGP session until a CNI object exists")
    with _router_verdict(ctx):
        start_customer(ctx.lab)
    ctx.lab.save()
    out.append(f"customer router ({ctx.plan.customer_router.kind}) started on the patched port")
    return out


# -- 4 IPs and ping ----------------------------------------------------------------------------------
_LOSS_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


def ping_tests(ctx: Context) -> list[str]:
    """Ping Cloudflare's end of each /31 (/127) from the customer router (seed 002's ping tests)."""
    out, bad = [], []
    for s in ctx.plan.sessions:
        r = ctx.lab.run(CUSTOMER, ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(s.cf_addr)], check=False)
        m = _LOSS_RE.search(r.stdout)
        got = f"{m.group(2)}/{m.group(1)} replies" if m else (r.stderr.strip() or r.stdout.strip())
        line = f"{s.key}: ping {s.cust_addr} -> {s.cf_addr}: {got}"
        (out if r.returncode == 0 else bad).append(line)
    if bad:
        raise StepFailed("; ".join(bad), ["check the /31 (/127) addresses on the customer interface, the VLAN tag "
                                          "and that the interface is up (`ip -br addr` in node cust)"], out)
    return out


# -- 5 CNI objects and the BGP call --------------------------------------------------------------------
def create_cnis(ctx: Context) -> list[str]:
    """One CNI object per session, with the plan's /31 (/127), the customer's ASN and MD5 key.

    The API allocates addresses itself (from the bound link's plan for IPv4); when they differ from
    the plan the CNI is corrected with PUT, exactly as an engineer would fix a mis-assigned /31.
    IPv6 goes first: creating it takes the link's IPv4 pair until the PUT moves it.
    """
    api, out = ctx.need_api(), []
    for s in sorted(ctx.plan.sessions, key=lambda s: (s.interconnect, -s.family)):
        icon = ctx.icons[s.interconnect]
        plen = 31 if s.family == 4 else 127
        bgp: dict[str, Any] = {"customer_asn": ctx.topo.customer.asn, "extra_prefixes": []}
        if s.md5:
            bgp["md5_key"] = s.md5
        magic = {"conduit_name": f"cnilab-{s.interconnect}-v{s.family}",
                 "description": f"{ctx.topo.name} {s.key}", "mtu": min(ctx.plan.path_mtu[s.interconnect].values())}
        try:
            cni = api.create_cni({"interconnect": icon, "magic": magic, "bgp": bgp})
            want = (f"{s.cf_addr}/{plen}", f"{s.cust_addr}/{plen}")
            fixed = ""
            if (cni["p2p_ip"], cni["cust_ip"]) != want:
                fixed = f" (API assigned {cni['p2p_ip']}, corrected with PUT)"
                cni = api.update_cni(cni["id"], {**cni, "p2p_ip": want[0], "cust_ip": want[1]})
        except ApiError as exc:
            raise StepFailed(str(exc), ["the API refused the CNI object: fix the field it names"]) from None
        ctx.cnis[s.key] = cni
        out.append(f"{s.key}: CNI {cni['id'][:8]} p2p {cni['p2p_ip']} cust {cni['cust_ip']} "
                   f"AS{bgp['customer_asn']} md5 {'set' if s.md5 else 'none'}{fixed}")
    return out


def _customer_bgp(ctx: Context) -> list[dict[str, Any]]:
    from cnilab.sim.routers import customer_bgp

    with contextlib.suppress(Exception):  # the daemon's view is advice material, never a failure cause
        return customer_bgp(ctx.lab)
    return []


FAIL_FAST_AFTER_REPEAT_S = 12.0
"""A non-deterministic NOTIFICATION (hold timer, cease) must persist this long - a few of the
customer's connect retries - before it is the verdict; deterministic evidence fails at once."""


FAIL_FAST = ("neighbor-address",)
"""Cross-check findings that decide a session cannot come up while the edge sees nothing (no TCP to its
address): no point waiting the full BGP timeout. An AS mismatch is left to the edge, whose
NOTIFICATION (the words Cloudflare's side will read) arrives within seconds."""


def _router_findings(ctx: Context) -> list[Any]:
    """The cross-checks of the customer's own daemon (cnilab.sim.routers.crosscheck); [] if it cannot answer."""
    from cnilab.sim.routers.crosscheck import cross_check

    with contextlib.suppress(Exception):  # a daemon that cannot answer is reported by the other steps
        return cross_check(ctx.lab, {ic.name: ic.dataplane for ic in ctx.topo.interconnects})
    return []


def as_finding(f: Any) -> Finding:
    """A cross-check finding (cnilab.sim.routers.crosscheck) in the report's terms, with what was read."""
    return Finding(severity=f.severity, check=f"router.{f.check}", subject=f.session or "",
                   cause=f.message + (f" (read: {f.evidence})" if f.evidence else ""), fix=f.fix)


def merge_findings(mine: list[Finding], edge: list[Finding]) -> list[Finding]:
    """The daemon's own view first; the edge's finding for a session is dropped when the daemon
    already explains that session (the same problem, not said twice in other words)."""
    explained = {part for f in mine for part in f.subject.split(", ") if part}
    kept = []
    for f in edge:
        left = [p for p in f.subject.split(", ") if p not in explained]
        if left:
            kept.append(f.model_copy(update={"subject": ", ".join(left)}))
    return [*mine, *kept]


def bgp_established(ctx: Context) -> list[str]:
    """Every planned session Established at the edge. Fails as soon as the evidence is deterministic
    (a refused OPEN, repeated MD5 drops) rather than at the timeout; a repeated NOTIFICATION fails
    after :data:`FAIL_FAST_AFTER_REPEAT_S`."""
    keys = [s.key for s in ctx.plan.sessions]
    t0 = time.monotonic()
    since = _wall(t0) - ctx.bgp_timeout  # evidence from just before the step counts too
    deadline = t0 + ctx.bgp_timeout
    sessions: list[SessionInfo] = []
    misconfigured: list[Any] = []
    next_check = t0 + 3
    while True:
        try:
            sessions = [s for s in ctx.edge.sessions() if s.key in keys]
        except ControlError as exc:
            raise StepFailed(f"edge driver: {exc}", ["`cnilab status` shows whether ExaBGP is running"]) from None
        if len(sessions) == len(keys) and all(s.up for s in sessions):
            return [f"{s.key}: Established with AS{s.peer_asn} at {s.peer} (md5 {'on' if s.md5 else 'off'})"
                    for s in sessions]
        down = [s for s in sessions if not s.up]
        evidence = {s.key: deterministic_evidence(s, since) for s in down}
        refused = down and all(s.last_notification is not None and s.last_notification.time >= _wall(t0)
                               for s in down)
        now = time.monotonic()
        if not misconfigured and now > next_check:  # every 3 s; the daemon has loaded its config after the first
            next_check = now + 3
            misconfigured = [f for f in _router_findings(ctx) if f.severity == "fail" and f.check in FAIL_FAST
                             and f.session in {s.key for s in down} | set(keys) - {s.key for s in sessions}]
        fast = bool(down) and all(evidence.values())
        if now > deadline or fast or misconfigured or (refused and now - t0 > FAIL_FAST_AFTER_REPEAT_S):
            missing = sorted(set(keys) - {s.key for s in sessions})
            # only what keeps BGP down belongs here; the rest is the router step's
            mine = [as_finding(f) for f in _router_findings(ctx) if f.severity == "fail" and f.check in FAIL_FAST]
            explained = {f.subject for f in mine}
            detail = (", ".join(f"{s.key} {'still starting' if s.starting and s.key not in explained else s.state}"
                                for s in down) or f"sessions {missing} not on the edge")
            # a session still starting when another's cause was found is no verdict of its own
            judged = [s for s in down if not (s.starting and now <= deadline)]
            edge = bgp_findings(judged, _customer_bgp(ctx), ctx.topo.customer.asn, ctx.asn_source)
            raise StepFailed(f"BGP not Established after {now - t0:.0f}s: {detail}"
                             + (" (stopped early: the evidence below will not change by waiting)"
                                if fast or misconfigured else ""),
                             findings=merge_findings(mine, edge))
        time.sleep(0.3)


def _wall(mono: float) -> float:
    """Epoch time of a monotonic instant (edge timestamps are epoch seconds)."""
    return time.time() - (time.monotonic() - mono)


def _kernel_routes(ctx: Context, family: int) -> set[str]:
    """Destinations the router daemon installed (FRR marks them proto bgp, BIRD proto bird)."""
    argv = ["ip", "-j"] + (["-6"] if family == 6 else []) + ["route", "show"]
    r = ctx.lab.run(CUSTOMER, argv, check=False)
    try:
        return {str(ipaddress.ip_network(x["dst"], strict=False)) for x in json.loads(r.stdout or "[]")
                if x.get("dst") not in (None, "default") and x.get("protocol") not in ("kernel", "ra")}
    except (ValueError, KeyError):
        return set()


def cloudflare_prefixes(ctx: Context, timeout: float = 20.0) -> list[str]:
    """The customer router installed every Cloudflare prefix of each family it peers in."""
    fams = sorted({s.family for s in ctx.plan.sessions})
    want = {f: {str(p) for p in ctx.plan.cf_prefixes if p.version == f} for f in fams}
    deadline = time.monotonic() + timeout
    while True:
        have = {f: _kernel_routes(ctx, f) for f in fams}
        missing = {f: sorted(want[f] - have[f]) for f in fams}
        if not any(missing.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    out = [f"IPv{f}: {len(want[f]) - len(missing[f])}/{len(want[f])} Cloudflare prefixes in the customer's "
           "kernel" for f in fams]
    # What cnilab did on the customer's behalf (e.g. GoBGP's FIB) is said next to the result it affects.
    rec = (ctx.lab.state.extra or {}).get("customer_router") or {}
    out += [f"NOTE {what}" for what in rec.get("installed_by_cnilab", [])]
    if any(missing.values()):
        miss = "; ".join(f"IPv{f}: {', '.join(m[:4])}{' ...' if len(m) > 4 else ''}" for f, m in missing.items() if m)
        raise StepFailed(f"the customer router did not install Cloudflare's prefixes ({miss})",
                         ["check your import policy from Cloudflare (FRR route-map ... in, BIRD import filter) "
                          "accepts them, and that BGP routes reach the kernel (BIRD: protocol kernel "
                          "`export where source = RTS_BGP`)"], out)
    return out


SETTLE_S = 2.0
"""The edge's view of what a customer announces is complete once nothing changed for this long
(re-advertised routes follow the customer learning Cloudflare's, one UPDATE round later)."""


def _received_settled(ctx: Context, want: set[str], timeout: float) -> None:
    """Wait until the allowed prefixes arrived and the Adj-RIB-In stopped changing (or timeout)."""
    deadline = time.monotonic() + timeout
    last: tuple[tuple[str, str, bool], ...] = ()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        received = tuple(sorted((r.session, r.prefix, r.accepted) for r in ctx.edge.routes().received))
        if received != last:
            last, stable_since = received, time.monotonic()
        accepted = {p for _s, p, ok in received if ok}
        if want <= accepted and time.monotonic() - stable_since >= SETTLE_S:
            return
        time.sleep(0.3)


def customer_prefixes(ctx: Context, timeout: float = 20.0) -> list[str]:
    """Every prefix the customer put on the wire, judged: allow-listed ones accepted, nothing refused
    that the topology did not ask for (leaks - Cloudflare's own routes, a default, link nets - fail
    with the outbound policy that stops them)."""
    fams = {s.family for s in ctx.plan.sessions}
    want = {str(p) for p in ctx.plan.customer_prefixes if p.version in fams}
    expected_refusals = {str(p) for p in ctx.topo.customer.announce_extra}
    _received_settled(ctx, want, timeout)
    sessions = [s for s in ctx.edge.sessions() if s.key in {p.key for p in ctx.plan.sessions}]
    rejected = {s.key: [r for r in s.rejected if r.prefix not in expected_refusals] for s in sessions}
    rejected = {k: v for k, v in rejected.items() if v}
    accepted = {r.prefix for r in ctx.edge.routes().received if r.accepted}
    out = [f"{s.key}: edge received {s.prefixes_received} (before policy), accepted {s.prefixes_accepted}, "
           f"rejected {s.prefixes_rejected}" for s in sessions]
    allowed = sorted(str(p) for p in ctx.plan.customer_prefixes)
    findings = rejected_findings(rejected, allowed, {s.key: str(s.cf_addr) for s in ctx.plan.sessions})
    if not want <= accepted:
        missing = ", ".join(sorted(want - accepted))
        findings.append(Finding(severity="fail", check="announce.missing", subject=missing,
                                cause=f"the edge never received {missing}",
                                fix=f"announce {missing} (FRR `network` + a route to anchor it, BIRD a static route) "
                                    "and permit it in your export policy toward Cloudflare"))
    if findings:
        refused = {r.prefix: r.rule for v in rejected.values() for r in v}
        rules = {rule: sum(1 for x in refused.values() if x == rule) for rule in dict.fromkeys(refused.values())}
        head = (f"Cloudflare refused {len(refused)} prefix(es) you announced ("
                + ", ".join(f"{n} {rule}" for rule, n in rules.items()) + ")") if refused else findings[0].cause
        raise StepFailed(head, checks=out, findings=findings)
    return [*out, f"accepted: {', '.join(sorted(want))}"]


def bfd_established(ctx: Context, timeout: float = 15.0) -> list[str]:
    """BFD Up on every session that runs it (dataplane v1 with bfd enabled); skipped otherwise."""
    bfd_sessions = [s for s in ctx.plan.sessions if s.bfd]
    if not bfd_sessions:
        raise SkipStep("no BFD on these interconnects (dataplane v2 has none, or bfd.enabled is false)")
    if not router_has_bfd(ctx.plan):
        raise SkipStep(f"{ctx.plan.customer_router.kind} has no BFD: Cloudflare's BFD toward you stays Down and "
                       f"a silent failure takes the hold time ({bfd_sessions[0].hold_time} s); see the router "
                       "step's WARN")
    peers = {str(s.cust_addr): s for s in bfd_sessions}
    deadline = time.monotonic() + timeout
    while True:
        seen = ctx.edge.bfd()
        states = {str(b.get("peer")): str(b.get("state")) for b in seen if str(b.get("peer")) in peers}
        if bfd_up(ctx.plan, seen):
            s = bfd_sessions[0]
            return [f"BFD Up with {p} ({s.bfd_tx_ms} ms x {s.bfd_multiplier} = "
                    f"{s.detection_ms} ms detection)" for p in states]
        if time.monotonic() > deadline:
            s = bfd_sessions[0]
            down = [p for p in peers if states.get(p) != "Up"]
            raise StepFailed("BFD not Up: " + ", ".join(f"{p} {states.get(p, 'absent')}" for p in peers),
                             bfd_advice(down, s.bfd_tx_ms, s.bfd_multiplier))
        time.sleep(0.3)


class SkipStep(Exception):
    """The step does not apply to this topology (reported as skipped, never as a failure)."""


# -- 6 MTU / MSS -------------------------------------------------------------------------------------
def tunnel(ctx: Context) -> list[str]:
    """The customer's GRE end reaches Cloudflare's (live ping inside the tunnel); on failure, the
    declared values that differ from Cloudflare's, each with its fix."""
    from cnilab.sim.probes.tunnel import probe_tunnel

    if not ctx.plan.tunnels:
        raise SkipStep("no GRE tunnel on these interconnects (dataplane v2 has none)")
    rep = probe_tunnel(ctx.lab)
    ctx.provenance["tunnel"] = rep.provenance
    lines = [f"{r.tunnel}: {r.ping}" + (f" (your {r.customer_ifname}, {r.declared_at})" if r.declared_at else "")
             for r in rep.results]
    if not rep.ok:
        causes = [c for r in rep.results if not r.ok for c in r.causes]
        fixes = [f for r in rep.results if not r.ok for f in r.fixes]
        detail = "nothing crosses your GRE tunnel to Cloudflare" + (": " + "; ".join(causes) if causes else "")
        raise StepFailed(detail, fixes or ["check the tunnel's local/remote, inner /31 and that it is up "
                                           "(`ip -d link show`, `ip addr` in node cust)"], lines)
    return lines


def mtu(ctx: Context) -> list[str]:
    from cnilab.sim.probes.mtu import probe_mtu

    rep = probe_mtu(ctx.lab)
    ctx.provenance["mtu"] = rep.provenance
    lines = [f"{r.direction}{' (IPv6)' if r.family == 6 else ''}: measured {r.measured} (profile {r.expected}), "
             f"PMTUD {r.pmtud}" + (", large non-DF packets black-holed" if r.large_nodf is False else "")
             for r in rep.results]
    if not rep.ok:
        raise StepFailed("path MTU differs from the profile: " + "; ".join(r.diagnosis for r in rep.results
                                                                            if not r.ok), mtu_advice(rep), lines)
    return lines


def mss(ctx: Context) -> list[str]:
    from cnilab.sim.probes.mss import probe_mss

    rep = probe_mss(ctx.lab)
    ctx.provenance["mss"] = rep.provenance
    lines = [f"{r.direction}: SYN MSS {r.syn_sent} -> {r.syn_arrived}, SYN-ACK {r.synack_sent} -> "
             f"{r.synack_arrived} (need <= {r.required})" for r in rep.results]
    if not rep.ok:
        if all(r.path_down for r in rep.results if not r.ok):
            raise StepFailed("the path is down: no SYN crossed "
                             + ", ".join(r.direction for r in rep.results if r.path_down)
                             + " (no MSS verdict)", ["fix reachability first (the failed steps above)"], lines)
        seen = sorted({v for r in rep.results for v in (r.syn_arrived, r.synack_arrived) if v is not None})
        raise StepFailed(f"TCP MSS is not clamped to {rep.required}: SYNs cross the router with MSS "
                         f"{', '.join(map(str, seen))}", mss_advice(rep, ctx.plan), lines)
    return lines


# -- 7 go live and monitoring ------------------------------------------------------------------------
DETECTION_SLACK_S = 5.0
"""Added to BFD's detection time (or the BGP hold time) before a missed detection is a verdict:
process scheduling on a loaded 2-core machine, the edge's 1 s BFD slow start after a restart."""


def _wait_detected(ctx: Context, link: str, t_fault: float) -> float:
    """Keep the fault until the edge has torn down every session of ``link``; seconds it took."""
    sessions = ctx.plan.sessions_for(link)
    detect_s, how = detection(ctx.plan, sessions)
    took, up = wait_torn_down(ctx.edge, [s.key for s in sessions], t_fault, detect_s + DETECTION_SLACK_S)
    if up:
        raise StepFailed(f"{', '.join(up)} stayed Established {took:.1f}s into the optics fault on {link} "
                         f"({how} should see it in {detect_s:g}s)",
                         ["a dead link was not detected: keep BFD on (v1) and the hold time short"])
    return took


def go_live(ctx: Context) -> list[str]:
    """Healthy; low light (-25 dBm, below the optic's floor: the link loses carrier) shows as Unhealthy
    with the reason, and is held until the edge has detected the dead link (BFD or hold time); once
    cleared, Healthy again and BGP re-established over the recovered link."""
    from cnilab.sim.faults.apply import apply_fault, clear_faults

    api, out = ctx.need_api(), []
    level = "-25dBm"
    for ic in ctx.topo.interconnects:
        icon = ctx.icons[ic.name]
        try:
            api.wait_state(icon, "Healthy", ctx.options.api_timeout)
            out.append(f"{icon}: Healthy (live)")
            t_fault = time.monotonic()
            apply_fault(ctx.lab, ic.name, "light", level)
            try:
                st = api.wait_state(icon, "Unhealthy", ctx.options.api_timeout)
                out.append(f"{icon}: light {level} (minimum {load_facts().min_rx_dbm} dBm) -> Unhealthy: "
                           f"{st.get('reason')}")
                took = _wait_detected(ctx, ic.name, t_fault)
                _detect, how = detection(ctx.plan, ctx.plan.sessions_for(ic.name))
                out.append(f"{ic.name}: the edge tore its sessions down {took * 1000:.0f} ms after the fault ({how})")
            finally:
                clear_faults(ctx.lab, ic.name, kind="light")
            api.wait_state(icon, "Healthy", ctx.options.api_timeout)
        except TimeoutError as exc:
            raise StepFailed(str(exc), ["the API's status did not follow the lab's link: check `cnilab fault list` "
                                        "and the API's /lab/v1 view of the interconnect"], out) from None
        out.append(f"{icon}: fault cleared -> Healthy")
    t_clear = time.monotonic()
    try:
        ctx.edge.wait_established([s.key for s in ctx.plan.sessions], timeout=ctx.bgp_timeout)
    except ControlError as exc:
        raise StepFailed(f"BGP did not come back after the optics fault was cleared: {exc}",
                         ["check your router retries the connection (FRR `timers connect`, BIRD "
                          "`connect retry time` and `error wait time`)"], out) from None
    out.append(f"BGP Established again {time.monotonic() - t_clear:.1f}s after the optics fault was cleared")
    return out


# -- acceptance: failover ----------------------------------------------------------------------------
def _link_in_use(ctx: Context) -> str | None:
    """The interconnect the edge forwards the customer's first IPv4 prefix over (the one to fail)."""
    v4 = next((str(p) for p in ctx.plan.customer_prefixes if p.version == 4), None)
    installed = [r for r in ctx.edge.routes().installed if r.prefix == v4]
    if not installed:
        return None
    best = min(installed, key=lambda r: r.metric)
    return next((s.interconnect for s in ctx.plan.sessions if str(s.cust_addr) == best.gateway), None)


def failover(ctx: Context) -> list[str]:
    """Traffic moves off the primary link (several paths), or BFD/BGP drops and recovers (one link)."""
    from cnilab.sim.probes.failover import measure_failover

    links = [ic.name for ic in ctx.topo.interconnects]
    keys = [s.key for s in ctx.plan.sessions]
    if len(links) > 1 or ctx.topo.internet_backup:
        primary = _link_in_use(ctx) or max(ctx.topo.interconnects, key=lambda ic: (ic.bgp.local_pref,
                                                                                    ic.priority)).name
        rep = measure_failover(ctx.lab, primary)
        lines = [f"{primary} blackholed: {d.direction} ({d.stream}): {d.summary}" for d in rep.directions]
        ok, summary = rep.ok, rep.summary
        mine = next(d for d in rep.directions if d.direction == "customer_to_cf")
        links_by_name = {ic.name for ic in ctx.topo.interconnects}
        if not mine.exercised and mine.path_before in links_by_name:
            # The customer's router sends over another link than Cloudflare's choice: fail that one
            # too, so the verdict on its own failover comes from its own traffic.
            other = mine.path_before
            ctx.warn("failover.asymmetric", f"your router sends toward Cloudflare over {other} while Cloudflare "
                     f"sends to you over {primary}: traffic is asymmetric",
                     "if unintended, give the same interconnect the higher local-pref on your side", other)
            ctx.edge.wait_established(keys, timeout=ctx.bgp_timeout)
            rep2 = measure_failover(ctx.lab, other)
            mine = next(d for d in rep2.directions if d.direction == "customer_to_cf")
            lines.append(f"{other} blackholed: {mine.direction} ({mine.stream}): {mine.summary}")
            main = next(d for d in rep.directions if d.direction == "cf_to_customer")
            ok = main.ok and mine.ok
            summary = f"Cloudflare->customer: {main.summary}; customer->Cloudflare (your router): {mine.summary}"
        if not ok:
            raise StepFailed(summary, [
                "traffic stayed on the failed path: the backup sessions must be Established and your router "
                "must prefer the primary only by local-pref/MED (not a static route); with BFD on v1 the move "
                f"should take ~{rep.expected.detection_ms} ms"], lines)
        ctx.edge.wait_established(keys, timeout=ctx.bgp_timeout)
        return [*lines, "all sessions Established again after the fault was cleared"]
    from cnilab.sim.faults.apply import apply_fault, clear_faults

    link = links[0]
    sess = ctx.plan.sessions_for(link)[0]
    detect_s, how = detection(ctx.plan, [sess])
    # Both directions: Cloudflare's edge drops the session (its BFD), and the customer's router
    # must drop it too (its own BFD), or it keeps sending toward Cloudflare into the dead link.
    t0 = time.monotonic()
    apply_fault(ctx.lab, link, "blackhole")
    took: float | None = None
    cust_took: float | None = None
    cust_known = True
    try:
        while (time.monotonic() - t0 < detect_s + DETECTION_SLACK_S
               and (took is None or (cust_known and cust_took is None))):
            if took is None and not ctx.edge.session(sess.key).up:
                took = time.monotonic() - t0
            if cust_known and cust_took is None:
                peers = {str(c.get("peer")): c for c in _customer_bgp(ctx)}
                mine = peers.get(str(sess.cf_addr))
                if mine is None:
                    cust_known = False  # an external router, or its daemon does not say: not judged
                elif mine.get("state") != "Established":
                    cust_took = time.monotonic() - t0
            time.sleep(0.05)
    finally:
        clear_faults(ctx.lab, link, kind="blackhole")
    if took is None:
        raise StepFailed(f"{sess.key} stayed Established {detect_s + DETECTION_SLACK_S:.0f}s after {link} went "
                         f"dark ({how})",
                         ["a silent failure was not detected: keep BFD on and the hold time short (the plan "
                          f"uses {sess.hold_time} s)"])
    cust_line = (f"your router dropped its session to {sess.cf_addr} after {cust_took * 1000:.0f} ms"
                 if cust_took is not None else "your router's own view of the session is not available here")
    if cust_known and cust_took is None:
        raise StepFailed(f"your router kept its session to {sess.cf_addr} Established "
                         f"{detect_s + DETECTION_SLACK_S:.0f}s after {link} went dark: it kept sending toward "
                         "Cloudflare into a dead link",
                         [f"Cloudflare detects this in {detect_s * 1000:.0f} ms ({how}); run BFD toward "
                          f"{sess.cf_addr} with the same timers (FRR `neighbor {sess.cf_addr} bfd`, BIRD "
                          "`bfd on;` + `protocol bfd`) and keep the hold time short"],
                         [f"{link} blackholed: {sess.key} down at the edge after {took * 1000:.0f} ms"])
    t1 = time.monotonic()
    try:
        ctx.edge.wait_established(keys, timeout=ctx.bgp_timeout)
    except ControlError as exc:
        cause = _recovery_cause(ctx, sess.key, time.monotonic() - t1)
        raise StepFailed(f"the session did not come back after the fault was cleared: {exc}",
                         [f"{cause.message}: {cause.fix}"] if cause else
                         ["check your router retries the connection (FRR `timers connect`, BIRD "
                          "`connect retry time` and `error wait time`)"]) from None
    back = time.monotonic() - t1
    cause = _recovery_cause(ctx, sess.key, back)
    if cause is not None:  # the customer's own back-off delayed recovery: a WARN with its fix
        ctx.pending.append(as_finding(cause).model_copy(update={"severity": "warn"}))
    return [f"{link} blackholed: {sess.key} down after {took * 1000:.0f} ms ({how} predicts "
            f"{detect_s * 1000:.0f} ms)", cust_line, f"re-established {back:.1f} s after the fault was cleared"]


def _recovery_cause(ctx: Context, key: str, took_s: float) -> Any:
    """The customer's own back-off timer that explains a slow return (a Finding), or None."""
    from cnilab.sim.routers import router_for
    from cnilab.sim.routers.crosscheck import recovery_cause

    router = router_for(ctx.lab)
    if router is None:
        return None
    with contextlib.suppress(Exception):
        return recovery_cause(ctx.plan, router.facts(), key, took_s, type(router))
    return None
