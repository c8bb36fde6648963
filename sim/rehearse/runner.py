"""Run a checklist (the onboarding rehearsal or the acceptance suite) with guaranteed teardown.

The runner owns every resource: a temporary API database, the mock API server, its HTTP client and
the lab all sit on one :class:`contextlib.ExitStack`, so a failed step, an exception or Ctrl-C
removes the lab and stops the server. Every step that can still run after a failure runs (a failed
MTU check must not hide BFD, MSS or failover: the engineer wants every problem before the call);
only the steps that *need* a failed one are not run, and their row names it.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnilab.sim.facts import router_kinds
from cnilab.sim.rehearse import steps as st
from cnilab.sim.rehearse.advice import StepFailed
from cnilab.sim.rehearse.model import Report, RunOptions, StepResult, Suite
from cnilab.sim.routers.registry import kinds_help, router_class
from cnilab.sim.topology.load import ConfigError, load_topology
from cnilab.sim.topology.model import CustomerRouter, Topology
from cnilab.sim.topology.plan import LabPlan, build_plan
from pydantic import ValidationError

OnBegin = Callable[[str, str], None]
OnDone = Callable[[StepResult], None]

@dataclass(frozen=True)
class StepDef:
    """One checklist row: ``needs`` are the step ids whose failure makes this one meaningless."""

    index: str
    id: str
    title: str
    fn: st.Step
    needs: tuple[str, ...] = ()


def _router_step(ctx: st.Context) -> list[str]:
    from cnilab.sim.rehearse.checks import run_checks

    ran, findings = run_checks(ctx)
    fails = [f for f in findings if f.severity == "fail"]
    ctx.pending += [f for f in findings if f.severity == "warn"]
    if fails:
        raise StepFailed(f"{len(fails)} problem(s) in your router's state", checks=ran, findings=fails)
    return ran


REHEARSAL: list[StepDef] = [
    StepDef("0", "config", "Your router config passes the daemon's own parser", lambda c: config_check(c)),
    StepDef("1", "scope", "Scope: a free slot of the right speed at the site", st.scope),
    StepDef("2", "order", "Order: create the interconnect, download the LOA", st.order, ("scope",)),
    StepDef("3", "cross-connect", "Cross-connect: lab up, interconnect bound, status Healthy", st.cross_connect,
            ("order", "config")),
    StepDef("4", "ping", "IPs and ping tests over the /31 (/127)", st.ping_tests, ("cross-connect",)),
    StepDef("4.1", "tunnel", "GRE tunnel up: your end reaches Cloudflare's", st.tunnel, ("cross-connect",)),
    StepDef("5.1", "cni", "CNI objects created (addresses, ASN, MD5)", st.create_cnis, ("cross-connect",)),
    StepDef("5.2", "bgp", "BGP call: sessions Established", st.bgp_established, ("cni",)),
    StepDef("5.3", "router", "Your router's own state agrees with the plan", _router_step, ("cni",)),
    StepDef("5.4", "cf-prefixes", "You learned Cloudflare's prefixes", st.cloudflare_prefixes, ("bgp",)),
    StepDef("5.5", "customer-prefixes", "Cloudflare accepted your prefixes, refused none", st.customer_prefixes,
            ("bgp",)),
    StepDef("5.6", "bfd", "BFD Up", st.bfd_established, ("bgp",)),
    StepDef("6.1", "mtu", "MTU probe: path MTU as the profile, PMTUD", st.mtu, ("bgp", "tunnel")),
    StepDef("6.2", "mss", "MSS probe: clamped on real TCP handshakes", st.mss, ("bgp", "tunnel")),
    StepDef("7", "go-live", "Go live + monitoring: Healthy, low light -> Unhealthy -> Healthy", st.go_live,
            ("bgp",)),
]

ACCEPTANCE: list[StepDef] = [
    StepDef("1", "config", "Router config passes the daemon's own parser", lambda c: config_check(c)),
    StepDef("2", "lab", "Lab up with your router config", lambda c: lab_up(c), ("config",)),
    StepDef("2.1", "tunnel", "Your GRE tunnel reaches Cloudflare's", st.tunnel, ("lab",)),
    StepDef("3", "peers", "Peers with Cloudflare (sessions Established)", st.bgp_established, ("lab",)),
    StepDef("4", "router", "Your router's own state agrees with the plan", _router_step, ("lab",)),
    StepDef("5", "cf-prefixes", "Accepts Cloudflare's prefixes", st.cloudflare_prefixes, ("peers",)),
    StepDef("6", "announce", "Announces only allowed prefixes (nothing refused)", st.customer_prefixes, ("peers",)),
    # BFD needs BGP: FRR's and BIRD's BGP ask their BFD for a session only for a configured, live peer
    StepDef("7", "bfd", "BFD Up", st.bfd_established, ("peers",)),
    # traffic through a v1 interconnect rides the customer's GRE tunnel: a dead tunnel is the cause
    StepDef("8", "mtu", "MTU as the profile", st.mtu, ("peers", "tunnel")),
    StepDef("9", "mss", "Clamps TCP MSS", st.mss, ("peers", "tunnel")),
    StepDef("10", "failover", "Fails over", st.failover, ("peers", "tunnel")),
    StepDef("11", "no-leaks", "Announces nothing but its own prefixes to its transit and peer", lambda c: _no_leaks(c),
            ("peers",)),
    # not after "peers": a limit that fires takes the session down, and that is this step's verdict
    StepDef("12", "max-prefix", "Limits what it accepts from Cloudflare (maximum-prefix / import limit)",
            lambda c: _max_prefix(c), ("lab",)),
]


def _no_leaks(ctx: st.Context) -> list[str]:
    from cnilab.sim.verify.steps import no_leaks

    return no_leaks(ctx)


def _max_prefix(ctx: st.Context) -> list[str]:
    from cnilab.sim.verify.steps import max_prefix

    return max_prefix(ctx)


def sniff_kind(path: Path) -> str | None:
    """The router kind from the file's own syntax (each kind's patterns in the registry's data)."""
    from cnilab.sim.routers.registry import sniff_kind as sniff

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return sniff(text)


def _kind_title(kind: str) -> str:
    cls = router_class(kind)
    return cls.info().title.split(" (")[0] if cls is not None else kind


def check_router_kind(cfg: Path, kind: str, field: str, where: Path | str) -> None:
    """Refuse a config whose own syntax says it is another daemon's, in one line, before that
    daemon's parser prints a screenful of errors about every line of it."""
    seen = sniff_kind(cfg)
    if seen is not None and seen != kind:
        what = "this file" if Path(where) == cfg else str(cfg)
        raise ConfigError(where, [f"{field} = {kind!r}, but {what} looks like {_kind_title(seen)} (its syntax): "
                                  f"use {field} {seen}, or give it a {_kind_title(kind)} config"])


def build_run_plan(opts: RunOptions, lab: str) -> tuple[Topology, LabPlan]:
    """The topology with the user's router config (and clamp) in place of the template's."""
    topo = load_topology(opts.topology)
    router = topo.customer.router.model_dump()
    if opts.customer_config is not None:
        cfg = Path(opts.customer_config).expanduser().resolve()
        if not cfg.is_file():
            raise ConfigError(cfg, [f"--customer-config = '{opts.customer_config}': file not found"])
        router["config"] = cfg
        if opts.kind is not None:
            check_router_kind(cfg, opts.kind, "--kind", cfg)
        router["kind"] = opts.kind or sniff_kind(cfg) or router["kind"]
    elif opts.kind is not None:
        router["kind"] = opts.kind
    if opts.customer_dataplane is not None:
        from cnilab.sim.topology.load import check_dataplane

        dp = Path(opts.customer_dataplane).expanduser().resolve()
        if not dp.is_file():
            raise ConfigError(dp, [f"--dataplane = '{opts.customer_dataplane}': file not found"])
        check_dataplane(dp)
        router["dataplane"] = dp
    if opts.mss_clamp is not None:
        router["mss_clamp"] = None if opts.mss_clamp == "none" else opts.mss_clamp
    try:
        new_router = CustomerRouter.model_validate(router)
    except ValidationError as exc:
        fields = dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise ConfigError(opts.topology, [f"customer.router.{f} = {router.get(f)!r}: not valid here (mss_clamp: "
                                          f"auto, none or an integer MSS; kind: {kinds_help()})" for f in fields]) \
            from None
    if router_class(new_router.kind) is None:
        raise ConfigError(opts.topology, [f"customer.router.kind = '{new_router.kind}': a rehearsal needs your router "
                                          f"in the lab; pass --customer-config FILE (and --kind {kinds_help()})"])
    topo = topo.model_copy(update={"customer": topo.customer.model_copy(update={"router": new_router})})
    try:
        plan = build_plan(topo, lab)
    except ValueError as exc:
        raise ConfigError(opts.topology, [str(exc)]) from None
    return topo, plan


def config_check(ctx: st.Context) -> list[str]:
    from cnilab.sim.routers import check_customer_config

    router = ctx.plan.customer_router
    if router.config is None:
        return [f"template {router.kind} config rendered from the topology"]
    try:
        check_customer_config(ctx.plan)
    except ConfigError as exc:
        raise StepFailed(str(exc), [f"fix the line the {router.kind.upper()} parser names in {router.config}"]) \
            from None
    return [f"{router.config} ({router.kind}) parsed by {router_kinds()[router.kind].validator}"]


def lab_up(ctx: st.Context) -> list[str]:
    st.start_lab(ctx)
    return [f"lab {ctx.lab.name}: " + "; ".join(f"{k}: {v}" for k, v in ctx.lab.state.mechanisms.items())]


def _run_step(step: StepDef, ctx: st.Context) -> StepResult:
    t0 = time.monotonic()
    res = StepResult(index=step.index, id=step.id, title=step.title, status="pass")
    ctx.take_findings()
    try:
        res.checks = step.fn(ctx)
    except StepFailed as exc:
        res.status, res.detail, res.advice, res.checks = "fail", exc.detail, exc.advice, exc.checks
        res.findings = list(exc.findings)
    except st.SkipStep as exc:
        res.status, res.detail = "skip", str(exc)
    except Exception as exc:
        res.status, res.detail = "fail", f"{type(exc).__name__}: {exc}"
        res.advice = ["an unexpected error, not a verdict on your config: `cnilab doctor` checks the machine"]
    warns = ctx.take_findings()
    res.findings += warns
    if res.status == "pass" and warns:
        res.status = "warn"
    res.seconds = round(time.monotonic() - t0, 2)
    res.provenance = ctx.provenance.pop(step.id, "")
    return res


SAME_FINDING = {"router.local-as": "bgp.bad-peer-as", "router.remote-as": "bgp.remote-as"}
"""The daemon's and the edge's names for one problem (a wrong local AS is the edge's Bad Peer AS)."""


def say_once(res: StepResult, said: dict[tuple[str, str], str]) -> None:
    """Drop findings an earlier step already printed - the same problem about the same session, even
    when the daemon and the edge word it differently or the quoted state moved on - leaving a pointer
    to where; ``said`` maps (problem, session) to the step index that said it."""
    fresh, earlier = [], []
    for f in res.findings:
        problem = SAME_FINDING.get(f.check, f.check)
        parts = [p for p in f.subject.split(", ") if p] or [""]
        if all((problem, p) in said for p in parts):
            earlier.append(f"{f.subject + ': ' if f.subject else ''}{f.check} (step {said[(problem, parts[0])]})")
            continue
        for p in parts:
            said.setdefault((problem, p), res.index)
        fresh.append(f)
    if earlier:
        res.findings = fresh
        res.advice = [f.text() for f in fresh]
        res.checks = [*res.checks, "also failing, said above: " + "; ".join(earlier)]
        if res.status == "fail":
            res.detail = (f"{res.detail} (the cause is above)" if not fresh else
                          f"{res.detail}, {len(earlier)} of them said above")
        elif res.status == "warn" and not any(f.severity == "warn" for f in fresh):
            res.status = "pass"


def blocked_by(step: StepDef, results: dict[str, StepResult], defs: list[StepDef]) -> StepResult | None:
    """The failed step (directly, or through a step that did not run) this one needs, or None."""
    for need in step.needs:
        res = results.get(need)
        if res is None:
            continue
        if res.status == "fail":
            return res
        if res.status == "not-run":
            dep = next(d for d in defs if d.id == need)
            return blocked_by(dep, results, defs)
    return None


def _run(suite: Suite, defs: list[StepDef], opts: RunOptions, on_begin: OnBegin | None,
         on_done: OnDone | None, after: Callable[[st.Context], None] | None = None) -> Report:
    lab_name = opts.lab or f"{'rh' if suite == 'rehearse' else 'ct'}-{uuid.uuid4().hex[:6]}"
    topo, plan = build_run_plan(opts, lab_name)  # bad input: ConfigError before anything exists
    t0 = time.monotonic()
    results: list[StepResult] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        ctx = st.Context(options=opts, topo=topo, plan=plan)

        def open_lab(daemons: bool) -> Any:
            from cnilab.sim.lab.lab import Lab

            lab = stack.enter_context(Lab.create(plan, topology_path=opts.topology, ready_timeout=ctx.bgp_timeout,
                                                 daemons=daemons))
            notes.extend(f"{k}: {v}" for k, v in lab.state.mechanisms.items())
            return lab

        ctx.open_lab = open_lab
        if suite == "rehearse":
            from cnilab.mock_api.testing import running_api
            from cnilab.sim.rehearse.api import CniApi

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cnilab-rehearse-"))
            api = stack.enter_context(running_api(db=Path(tmp) / "api.sqlite3"))
            ctx.api = stack.enter_context(CniApi(api.url, api.token, api.account, timeout=opts.api_timeout))
            notes.append(f"mock CNI API at {api.base_url} (account {api.account})")
        done: dict[str, StepResult] = {}
        said: dict[tuple[str, str], str] = {}
        for step in defs:
            cause = blocked_by(step, done, defs)
            if cause is not None:
                res = StepResult(index=step.index, id=step.id, title=step.title, status="not-run",
                                 detail=f"needs step {cause.index} ({cause.id}), which failed")
            else:
                if on_begin:
                    on_begin(step.index, step.title)
                res = _run_step(step, ctx)
                say_once(res, said)
            results.append(res)
            done[step.id] = res
            if on_done:
                on_done(res)
        if after is not None and ctx.lab is not None:
            after(ctx)  # still inside the stack: the lab is up (e.g. cnilab.sim.verify records an observation)
    router = plan.customer_router
    return Report(suite=suite, topology=topo.name, topology_path=str(opts.topology), lab=lab_name,
                  router_kind=router.kind, customer_config=str(router.config) if router.config else None,
                  mss_clamp=str(router.mss_clamp), passed=not any(r.status == "fail" for r in results),
                  seconds=round(time.monotonic() - t0, 2), steps=results, notes=notes,
                  warnings=sum(f.severity == "warn" for r in results for f in r.findings))


def run_rehearsal(opts: RunOptions, on_begin: OnBegin | None = None, on_done: OnDone | None = None) -> Report:
    """Walk the onboarding against a fresh lab and mock API; both are gone when this returns."""
    return _run("rehearse", REHEARSAL, opts, on_begin, on_done)


def run_acceptance(opts: RunOptions, on_begin: OnBegin | None = None, on_done: OnDone | None = None,
                   after: Callable[[st.Context], None] | None = None) -> Report:
    """The CI suite for a router config (no API): peer, prefixes both ways, BFD, MTU, MSS, failover.
    ``after(ctx)`` runs on the still-running lab once the steps are done."""
    return _run("test", ACCEPTANCE, opts, on_begin, on_done, after)
