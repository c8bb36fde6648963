"""``cnilab tunnels``: Magic tunnels as Cloudflare's edge sees them (health, priority, steering).

Reads the edge's health-check daemon's status (what the probes that really crossed the tunnels
said); ``tunnels set`` changes a route priority or health-check rate in the running lab, ``tunnels
fault`` makes the customer stop returning probes in one of the ways customers do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from cnilab.sim.cli.output import console, emit, fail, lab_name_param
from rich.table import Table

LabOpt = Annotated[str | None, typer.Option("--lab", help="Lab name (default: the only running lab)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _lab(name: str | None):
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.state import LabNotFound

    try:
        lab = Lab.attach(name)
    except (LabNotFound, LookupError, ValueError, BackendError) as exc:
        fail(str(exc))
    if lab.plan.magic is None:
        fail(f"lab {lab.name} has no Magic tunnels (its topology has no magic: section)")
    return lab


def render(status) -> None:
    now = time.time()
    t = Table(title="Magic tunnels (Cloudflare edge health checks)")
    for col in ("tunnel", "type", "check", "rate", "priority", "effective", "state", "since", "last probes"):
        t.add_column(col)
    for x in status.tunnels:
        last = "".join("+" if p.ok else "x" for p in x.last[-10:])
        color = {"healthy": "green", "degraded": "yellow", "down": "red"}[x.state]
        t.add_row(x.name, x.kind, f"{x.type}/{x.direction}", f"{x.rate} ({x.interval_s:g}s)", str(x.priority),
                  str(x.effective_priority), f"[{color}]{x.state}[/{color}]", f"{now - x.since:.0f}s ago", last)
    console.print(t)
    for prefix, hops in status.routes.items():
        console.print(f"{prefix} -> " + ", ".join(f"{h.tunnel} (prio {h.effective_priority}, weight {h.weight})"
                                                   for h in hops) + (" [ECMP]" if len(hops) > 1 else ""))
    for x in status.tunnels:
        bad = [p for p in x.last if not p.ok]
        if bad:
            console.print(f"{x.name}: last failure: {bad[-1].note}")
        for tr in x.transitions[-3:]:
            console.print(f"{x.name}: {tr.frm} -> {tr.to} {now - tr.t:.0f}s ago ({tr.reason})")


def register(app: typer.Typer) -> None:
    tunnels = typer.Typer(help="Magic tunnels: health checks, priorities, steering", invoke_without_command=True,
                          no_args_is_help=False)
    app.add_typer(tunnels, name="tunnels")

    @tunnels.callback()
    def show(ctx: typer.Context, lab: LabOpt = None, as_json: JsonOpt = False) -> None:
        """Per tunnel: type (cni/gre), priority, health state, last probe results and transitions."""
        if ctx.invoked_subcommand is not None:
            return
        from cnilab.sim.magic.lab import StaleStatus, read_status

        the_lab = _lab(lab)
        try:
            st = read_status(the_lab)
        except StaleStatus as exc:
            fail(str(exc), 1)
        if st is None:
            fail("the health-check daemon has not reported yet (see nodes/cf/magic-hcd.log in the lab dir)", 1)
        emit(st, as_json, render)
        if not as_json:
            console.print(f"GRE: {the_lab.state.mechanisms.get('gre', 'not used (no GRE tunnel in this lab)')}")
        raise typer.Exit(0 if all(x.state != "down" for x in st.tunnels) else 1)

    @tunnels.command("set")
    def set_(tunnel: str, priority: Annotated[int | None, typer.Option(help="Route priority (lower wins)")] = None,
             rate: Annotated[str | None, typer.Option(help="low | mid | high")] = None,
             hc_type: Annotated[str | None, typer.Option("--type", help="reply | request")] = None,
             lab: LabOpt = None) -> None:
        """Change a tunnel's route priority or health check in the running lab (the up-pref step)."""
        from cnilab.sim.magic.ops import set_tunnel

        try:
            set_tunnel(_lab(lab), tunnel, priority=priority, rate=rate, hc_type=hc_type)
        except ValueError as exc:
            fail(str(exc))
        console.print(f"{tunnel}: updated")

    @tunnels.command("fault")
    def fault(tunnel: str, kind: Annotated[str, typer.Argument(help="firewall | accept-local-off | rp-filter | "
                                                                   "blackhole | clear")],
              lab: LabOpt = None) -> None:
        """Make the customer's side of a tunnel stop returning probes (or clear it)."""
        from cnilab.sim.magic import faults

        the_lab = _lab(lab)
        try:
            if kind == "clear":
                for k in the_lab.state.extra.get("magic_faults", {}).get(tunnel, []):
                    faults.apply(the_lab, tunnel, k, on=False)
                console.print(f"{tunnel}: faults cleared")
            else:
                console.print(f"{tunnel}: {faults.apply(the_lab, tunnel, kind)}")
        except ValueError as exc:
            fail(str(exc))

    @tunnels.command("sim")
    def sim_(scenario: Annotated[str, typer.Argument(help="A Magic scenario (topologies/magic-scenarios/*.yml)")],
             seed: Annotated[int, typer.Option(help="Probe phases are drawn from this seed")] = 0,
             sweep_rate: Annotated[bool, typer.Option("--sweep-rate", help="Each rate over --seeds phases")] = False,
             seeds: Annotated[int, typer.Option(help="Phases per rate in a sweep")] = 100,
             as_json: JsonOpt = False) -> None:
        """Run a Magic scenario in the simulator (no root, virtual time); --sweep-rate: failover per rate."""
        from cnilab.sim.magic.scenario import load_scenario
        from cnilab.sim.magic.simulate import simulate, sweep

        try:
            sc = load_scenario(scenario)
        except ValueError as exc:
            fail(f"{scenario}: {exc}")
        if sweep_rate:
            out = {}
            for rate in ("low", "mid", "high"):
                sc.rate = rate  # type: ignore[assignment]
                out[rate] = sweep(sc, seeds)
            emit(out, as_json, _render_sweep)
            return
        res = simulate(sc, seed)
        emit(res, as_json, _render_run)
        raise typer.Exit(0 if res.passed else 1)

    @tunnels.command("run")
    def run_(scenario: str, compare: Annotated[bool, typer.Option(help="Also check against the simulator")] = False,
             as_json: JsonOpt = False) -> None:
        """Run a Magic scenario on the emulator (a fresh lab, removed afterwards); needs root."""
        from cnilab.sim.magic.emulate import compare as cmp
        from cnilab.sim.magic.emulate import emulate
        from cnilab.sim.magic.scenario import load_scenario

        try:
            sc = load_scenario(scenario)
        except ValueError as exc:
            fail(f"{scenario}: {exc}")
        res = emulate(sc)
        agreement = cmp(sc, res) if compare else []
        emit({"run": res, "agreement": agreement} if compare else res, as_json,
             lambda o: (_render_run(res), [console.print(
                 f"  {'AGREE' if a.agree else 'DIFFER'} {a.detail}: emulator {a.emulator_s} s, simulator "
                 f"{a.sim_min_s:.3f}-{a.sim_max_s:.3f} s (tolerance {a.tolerance_s} s)") for a in agreement]))
        raise typer.Exit(0 if res.passed and all(a.agree for a in agreement) else 1)

    @tunnels.command("rehearse")
    def rehearse_(topology: Annotated[str, typer.Argument(help="A topology with magic: (cni + gre tunnels)")] =
                  "magic-transit", name: Annotated[str | None, typer.Option(
                      "--name", "--lab", help="Lab name", callback=lab_name_param)] = None,
                  customer_config: Annotated[Path | None, typer.Option(
                      "--customer-config", help="Your FRR/BIRD config for the customer router")] = None,
                  kind: Annotated[str | None, typer.Option(help="frr | bird (default: sniffed)")] = None,
                  as_json: JsonOpt = False) -> None:
        """Rehearse Magic Transit over CNI: health checks return, traffic on internet GRE, up-pref to CNI
        (loss, reordering), MSS 1332, DSR egress, rollback. Stops at the first failure with cause and fix."""
        from cnilab.sim.magic.rehearse import rehearse_magic
        from cnilab.sim.topology.paths import resolve_topology

        try:
            path = resolve_topology(topology)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))

        def show(step) -> None:
            if not as_json:
                mark = {"pass": "PASS", "fail": "FAIL"}.get(step.status, step.status)
                console.print(f"{mark} {step.title} ({step.seconds:.1f}s) {step.detail}")
                if step.cause:
                    console.print(f"     cause: {step.cause}")
                for line in step.fix:
                    console.print(f"     fix:   {line}")

        edit = None
        if customer_config is not None:
            from cnilab.sim.rehearse.runner import sniff_kind
            from cnilab.sim.topology.model import CustomerRouter

            cfg = customer_config.expanduser().resolve()
            if not cfg.is_file():
                fail(f"--customer-config = '{customer_config}': file not found")
            the_kind = kind or sniff_kind(cfg) or "frr"
            if the_kind not in ("frr", "bird"):
                fail(f"--kind = {the_kind!r}: choose frr or bird")

            def edit(t):
                t.customer.router = CustomerRouter(kind=the_kind, config=cfg, mss_clamp=t.customer.router.mss_clamp)
                return t
        try:
            rep = rehearse_magic(path, lab_name=name, edit=edit, on_step=show)
        except ValueError as exc:
            fail(str(exc))
        if as_json:
            emit(rep, True, lambda _o: None)
        raise typer.Exit(0 if rep.passed else 1)


def _render_run(res) -> None:
    console.print(f"{res.scenario} on the {res.executor} (rate {res.rate}): {'PASS' if res.passed else 'FAIL'}")
    for s in res.steps:
        mark = {True: "PASS", False: "FAIL", None: "    "}[s.ok]
        took = f" after {s.measured_s:.3f}s (bound {s.bound_s:.2f}s)" if s.measured_s is not None else ""
        console.print(f"  {mark} {s.detail}{took}")


def _render_sweep(out) -> None:
    t = Table(title="Simulated time to each expectation, per health-check rate (over probe phases)")
    for col in ("rate", "expectation", "min s", "mean s", "max s", "passed"):
        t.add_column(col)
    for rate, rows in out.items():
        for r in rows:
            t.add_row(rate, r.detail, f"{r.min_s:.3f}", f"{r.mean_s:.3f}", f"{r.max_s:.3f}", f"{r.passed}/{r.n}")
    console.print(t)
