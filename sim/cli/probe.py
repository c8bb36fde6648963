"""``cnilab probe mtu|mss``, ``cnilab fault``, ``cnilab failover``: questions asked before and during a window.

Every command exits non-zero when the answer is bad, so a CI job can run it as a check.
"""

from __future__ import annotations

from typing import Annotated

import typer
from cnilab.sim.cli.output import console, emit, fail, lab_name_param
from cnilab.sim.faults.kinds import EXAMPLES, HELP, KINDS
from rich.table import Table


def _lab(name: str | None, backend: str | None = None):
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.state import LabNotFound

    try:
        return Lab.attach(name, backend)
    except (LabNotFound, LookupError, ValueError, BackendError) as exc:
        fail(str(exc))


LabOpt = Annotated[str | None, typer.Option("--lab", help="Lab name (default: the only running lab)",
                                           callback=lab_name_param)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="containerlab: attach to a lab containerlab deployed from a cnilab export (auto-detected "
    "when --lab has no cnilab state but clab-LAB-* containers exist)")]


def register(app: typer.Typer) -> None:
    probe = typer.Typer(help="Measure the lab: path MTU/PMTUD, TCP MSS clamping.", no_args_is_help=True,
                        rich_markup_mode=None)
    app.add_typer(probe, name="probe")

    @probe.command("mtu")
    def probe_mtu(link: Annotated[str | None, typer.Option("--link", help="One interconnect (cf <-> cust)")] = None,
                  lab: LabOpt = None, as_json: JsonOpt = False,
               backend: BackendOpt = None) -> None:
        """Path MTU in each direction by one-way DF sweep, against the profile; and whether PMTUD works."""
        from cnilab.sim.probes.mtu import probe_mtu as run

        try:
            report = run(_lab(lab, backend), link)
        except ValueError as exc:
            fail(str(exc))

        def render(r) -> None:
            t = Table(title=f"MTU probe - lab {r.lab}" + (f", interconnect {r.link}" if r.link else " (end to end)"))
            for col in ("direction", "from -> to", "expected", "measured", "PMTUD", "result"):
                t.add_column(col)
            for x in r.results:
                t.add_row(x.direction, f"{x.src} -> {x.dst} ({x.dst_addr})", str(x.expected), str(x.measured),
                          x.pmtud + (f" (ICMP mtu {x.icmp_mtu})" if x.icmp_mtu else ""),
                          "[green]ok[/]" if x.ok else "[red]FAIL[/]")
            console.print(t)
            for x in r.results:
                console.print(f"  {x.direction}{' (IPv6)' if x.family == 6 else ''}: {x.diagnosis}")
            if r.provenance:
                console.print(f"  config under test: {r.provenance}", highlight=False)

        emit(report, as_json, render)
        raise typer.Exit(0 if report.ok else 1)

    @probe.command("mss")
    def probe_mss(lab: LabOpt = None, as_json: JsonOpt = False,
               backend: BackendOpt = None) -> None:
        """Real TCP handshakes inet <-> origin; MSS seen on each side vs what the profile requires."""
        from cnilab.sim.probes.mss import probe_mss as run

        report = run(_lab(lab, backend))

        def render(r) -> None:
            t = Table(title=f"MSS probe - lab {r.lab} (required clamp {r.required})")
            for col in ("direction", "SYN sent", "SYN arrived", "SYN-ACK sent", "SYN-ACK arrived", "result"):
                t.add_column(col)
            for x in r.results:
                t.add_row(x.direction, str(x.syn_sent), str(x.syn_arrived), str(x.synack_sent),
                          str(x.synack_arrived), "[green]ok[/]" if x.ok else "[red]FAIL[/]")
            console.print(t)
            for x in r.results:
                console.print(f"  {x.direction}: {x.advice}")
            for line in r.diagnosis:
                console.print(f"  [bold]{line}[/]", highlight=False)
            if r.provenance:
                console.print(f"  config under test: {r.provenance}", highlight=False)
            if all(x.path_down for x in r.results if not x.ok) and not r.ok:
                console.print("[red]The path is down: no MSS verdict and no clamp fix until traffic crosses it[/]")
            if r.fix:
                console.print(f"[bold]Fix: clamp TCP MSS to {r.required} on the customer router[/]")
                for k, v in r.fix.items():
                    console.print(f"  {k:>16}: {v}", highlight=False)

        emit(report, as_json, render)
        raise typer.Exit(0 if report.ok else 1)

    @probe.command("tunnel")
    def probe_tunnel(lab: LabOpt = None, as_json: JsonOpt = False, backend: BackendOpt = None) -> None:
        """Ping Cloudflare's inner address through each GRE tunnel; name the declared values that differ."""
        from cnilab.sim.probes.tunnel import probe_tunnel as run

        report = run(_lab(lab, backend))

        def render(r) -> None:
            if not r.results:
                console.print("no GRE tunnel in this lab (dataplane v2 has none)")
            for x in r.results:
                console.print(("[green]ok[/] " if x.ok else "[red]FAIL[/] ") + f"{x.tunnel}: {x.ping}", highlight=False)
                for c in x.causes:
                    console.print(f"  cause: {c}", highlight=False)
                for f in x.fixes:
                    console.print(f"  fix: {f}", highlight=False)
            if r.provenance:
                console.print(f"  config under test: {r.provenance}", highlight=False)

        emit(report, as_json, render)
        raise typer.Exit(0 if report.ok else 1)

    # ignore_unknown_options: values such as -25dBm start with '-' and are arguments, not options
    @app.command("fault", epilog="Kinds:\n\n" + "\n\n".join(f"{k}: {h}" for k, h in HELP.items()),
                 context_settings={"ignore_unknown_options": True})
    def fault(
        target: Annotated[str, typer.Argument(help="Link or node name; or 'clear' / 'list'")],
        kind: Annotated[str | None, typer.Argument(help=f"One of {', '.join(KINDS)}; after clear: the link")] = None,
        value: Annotated[str | None, typer.Argument(help=f"With its unit, e.g. {EXAMPLES}")] = None,
        all_: Annotated[bool, typer.Option("--all", help="With 'clear': every fault in the lab")] = False,
        lab: LabOpt = None,
        as_json: JsonOpt = False,
        backend: BackendOpt = None,
    ) -> None:
        """Inject a fault (`cnilab fault ewr1 loss 30%`), clear it (`cnilab fault clear ewr1|--all`), or list them."""
        from cnilab.sim.faults.apply import FaultError, apply_fault, clear_faults
        from cnilab.sim.faults.kinds import parse_fault

        if target not in ("list", "clear") and kind is not None:
            try:  # a bad kind or value is refused before any lab is touched
                parse_fault(kind, value)
            except FaultError as exc:
                fail(f"fault {' '.join(filter(None, (kind, value)))}: {exc}")
        the_lab = _lab(lab, backend)
        try:
            if target == "list":
                recs = the_lab.state.faults
            elif target == "clear":
                if not all_ and not kind:
                    fail("say which link to clear (cnilab fault clear LINK) or --all")
                recs = clear_faults(the_lab, None if all_ else kind)
            else:
                if kind is None:
                    fail(f"say which fault: cnilab fault LINK KIND [VALUE] (kinds: {', '.join(KINDS)})")
                recs = [apply_fault(the_lab, target, kind, value)]
        except FaultError as exc:
            fail(str(exc))

        def render(rs) -> None:
            verb = {"clear": "cleared", "list": "active"}.get(target, "injected")
            if not rs:
                console.print(f"no faults {verb}")
            for r in rs:
                console.print(f"{verb}: [bold]{r.target}[/] {r.kind} {r.value or ''} - {r.mechanism}")

        emit(recs, as_json, render)

    @app.command("failover")
    def failover(
        link: Annotated[str, typer.Argument(help="Interconnect to fail")],
        fault_kind: Annotated[str, typer.Option("--fault", help=f"One of {', '.join(KINDS)}")]
        = "blackhole",
        rate: Annotated[int, typer.Option("--rate", help="Stream rate, packets per second")] = 200,
        keep: Annotated[bool, typer.Option("--keep", help="Leave the fault in place afterwards")] = False,
        lab: LabOpt = None,
        as_json: JsonOpt = False,
        backend: BackendOpt = None,
    ) -> None:
        """Stream UDP both ways (inet <-> origin), fail LINK, and measure loss window and time to the new path
        in each direction: Cloudflare's switchover and your router's own (BFD, local-pref)."""
        from cnilab.sim.faults import FaultError
        from cnilab.sim.probes.failover import measure_failover

        try:
            report = measure_failover(_lab(lab, backend), link, fault_kind, rate, restore=not keep)
        except (FaultError, ValueError) as exc:
            fail(str(exc))

        def render(r) -> None:
            t = Table(title=f"Failover - lab {r.lab}, {r.fault} on {r.link} at {r.rate_pps} pps")
            t.add_column("measure")
            t.add_column("value")
            rows = [("path before", r.path_before), ("path after", r.path_after),
                    ("first packet on new path", f"{r.first_packet_new_path_ms} ms"),
                    ("loss window", f"{r.loss_window_ms:.0f} ms"), ("lost / sent", f"{r.lost} / {r.sent}"),
                    ("reordered", str(r.reordered)),
                    ("expected", f"{r.expected.mechanism}: {r.expected.detection_ms} ms"),
                    ("BFD detection / hold time", f"{r.expected.bfd_detection_ms} ms / {r.expected.hold_time_ms} ms"),
                    ("measured / expected", str(r.ratio_to_expected))]
            for k, v in rows:
                t.add_row(k, str(v))
            console.print(t)
            for d in r.directions:
                console.print(f"  {d.direction} ({d.stream}, path read on the {d.observed_at}): "
                              + ("[green]" if d.ok else "[red]") + d.summary + "[/]", highlight=False)
            console.print(("[green]" if r.ok else "[red]") + r.summary + "[/]")

        emit(report, as_json, render)
        raise typer.Exit(0 if report.ok else 1)
