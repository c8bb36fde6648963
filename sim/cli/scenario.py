"""`cnilab sim`, `cnilab run`, `cnilab compare`, `cnilab scenario schema`.

Exit status: 0 when every expectation held, 1 when one failed (the report says which and why),
2 for bad input or an executor that cannot run here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from cnilab.sim.cli.output import console, emit, fail
from cnilab.sim.report.html import render_html
from cnilab.sim.report.junit import render_junit
from cnilab.sim.report.model import Report
from cnilab.sim.scenario.executor import ExecutorUnavailable, emulator_factory, open_sim
from cnilab.sim.scenario.loader import LoadedScenario, load_scenario, scenario_json_schema, write_schema
from cnilab.sim.scenario.runner import run_scenario
from cnilab.sim.topology.load import ConfigError
from rich.table import Table

SCENARIO_ARG = typer.Argument(..., help="Scenario file (topologies/scenarios/*.yml)")
JSON_OPT = typer.Option(False, "--json", help="Print the report as JSON")
HTML_OPT = typer.Option(None, "--html", help="Write a self-contained HTML report here")
JUNIT_OPT = typer.Option(None, "--junit", help="Write JUnit XML here (for CI)")
SEED_OPT = typer.Option(None, "--seed", help="RNG seed (default: the scenario's)")


def _load(path: Path) -> LoadedScenario:
    try:
        return load_scenario(path)
    except ConfigError as exc:
        fail(str(exc))


def _render(report: Report) -> None:
    colour = "green" if report.passed else "red"
    console.print(f"[bold]{report.scenario}[/] on [bold]{report.executor}[/] (seed {report.seed}, "
                  f"{report.duration:.1f}s): [bold {colour}]{'PASS' if report.passed else 'FAIL'}[/]")
    table = Table(show_edge=False)
    for col in ("#", "at", "step", "result", "measured", "detail"):
        table.add_column(col)
    for s in report.steps:
        style = {"pass": "green", "fail": "bold red"}.get(s.status, "")
        table.add_row(str(s.index), f"{s.start:.3f}s", s.description, f"[{style}]{s.status}[/]" if style else s.status,
                      "" if s.measured is None else f"{s.measured:.3f}s", s.reason)
    console.print(table)
    for n in report.notes:
        console.print(f"note: {n}")
    for s in report.failures:
        console.print(f"[bold red]FAILED[/] #{s.index} {s.description}: {s.reason}")


def _outputs(reports: list[Report], as_json: bool, html: Path | None, junit: Path | None) -> None:
    if as_json:
        emit(reports[0] if len(reports) == 1 else reports, True, _render)
    else:
        for r in reports:
            _render(r)
    if html is not None:
        html.write_text(render_html(reports[0]), encoding="utf-8")
    if junit is not None:
        junit.write_text(render_junit(reports), encoding="utf-8")


def _run_sim(loaded: LoadedScenario, seed: int) -> Report:
    with open_sim(loaded, seed) as ex:
        return run_scenario(loaded, ex, seed)


def _run_emu(loaded: LoadedScenario, seed: int) -> Report:
    """Raises ExecutorUnavailable with the reason when the emulator cannot run here."""
    if os.geteuid() != 0:
        raise ExecutorUnavailable("the emulator needs root (network namespaces); run as root or use `cnilab sim`")
    factory = emulator_factory()
    with factory(loaded, seed) as ex:
        return run_scenario(loaded, ex, seed)


def _sweep(loaded: LoadedScenario, specs: list[str], seed: int, as_json: bool) -> None:
    from cnilab.sim.scenario.sweep import sweep

    started = time.perf_counter()
    try:
        rows = sweep(loaded, specs, seed)
    except (ValueError, ConfigError) as exc:
        fail(str(exc))
    wall = time.perf_counter() - started
    if as_json:
        emit(rows, True, print)
    else:
        table = Table(show_edge=False)
        for col in (*rows[0].params, "result", "failover", "loss window", "lost"):
            table.add_column(col)
        for r in rows:
            table.add_row(*(str(v) for v in r.params.values()),
                          "[green]pass[/]" if r.passed else "[red]fail[/]",
                          "" if r.failover_s is None else f"{r.failover_s:.3f}s",
                          "" if r.loss_window_s is None else f"{r.loss_window_s:.3f}s", str(r.lost or 0))
        console.print(table)
        console.print(f"{len(rows)} variants in {wall:.2f}s ({len(rows) / wall:.0f}/s); "
                      f"{sum(r.passed for r in rows)} passed")
    raise SystemExit(0 if all(r.passed for r in rows) else 1)


def register(app: typer.Typer) -> None:
    @app.command("sim")
    def sim_cmd(
        scenario: Path = SCENARIO_ARG,
        seed: int | None = SEED_OPT,
        as_json: bool = JSON_OPT,
        html: Path | None = HTML_OPT,
        junit: Path | None = JUNIT_OPT,
        sweep: list[str] = typer.Option(
            [], "--sweep", help="FIELD=VALUES to vary, e.g. ewr1+ewr2.bfd.tx_ms=50:1000:50 (repeatable)"),
    ) -> None:
        """Predict a scenario with the discrete-event simulator (no root, no daemons, virtual time)."""
        loaded = _load(scenario)
        seed = loaded.scenario.seed if seed is None else seed
        if sweep:
            _sweep(loaded, sweep, seed, as_json)
        report = _run_sim(loaded, seed)
        _outputs([report], as_json, html, junit)
        raise SystemExit(0 if report.passed else 1)

    @app.command("run")
    def run_cmd(
        scenario: Path = SCENARIO_ARG,
        seed: int | None = SEED_OPT,
        as_json: bool = JSON_OPT,
        html: Path | None = HTML_OPT,
        junit: Path | None = JUNIT_OPT,
    ) -> None:
        """Run a scenario on the emulator (the real lab: namespaces, FRR, ExaBGP, BFD)."""
        loaded = _load(scenario)
        seed = loaded.scenario.seed if seed is None else seed
        try:
            report = _run_emu(loaded, seed)
        except ExecutorUnavailable as exc:
            fail(f"cannot run {scenario} on the emulator: {exc}")
        _outputs([report], as_json, html, junit)
        raise SystemExit(0 if report.passed else 1)

    @app.command("compare")
    def compare_cmd(
        scenario: Path = SCENARIO_ARG,
        seed: int | None = SEED_OPT,
        as_json: bool = JSON_OPT,
        junit: Path | None = JUNIT_OPT,
        tolerance: float = typer.Option(0.5, "--tolerance", help="Allowed |predicted - measured| in seconds"),
    ) -> None:
        """Run on the simulator and the emulator; show predicted vs measured per step."""
        loaded = _load(scenario)
        seed = loaded.scenario.seed if seed is None else seed
        predicted = _run_sim(loaded, seed)
        measured: Report | None = None
        skipped = ""
        try:
            measured = _run_emu(loaded, seed)
        except ExecutorUnavailable as exc:
            skipped = str(exc)
        rows = []
        agree = True
        for p in predicted.steps:
            m = measured.steps[p.index] if measured else None
            delta = None
            if m is not None and p.measured is not None and m.measured is not None:
                delta = m.measured - p.measured
            step_tol = getattr(loaded.scenario.timeline[p.index], "compare_tolerance", None)
            tol = tolerance if step_tol is None else max(tolerance, step_tol)
            ok = None if m is None else (p.status == m.status and (delta is None or abs(delta) <= tol))
            agree = agree and ok is not False
            # The tight physical bound is kept; the emulator's slack is shown, not folded into it.
            rows.append({"index": p.index, "step": p.description, "predicted": p.measured, "predicted_status": p.status,
                         "measured": m.measured if m else None, "measured_status": m.status if m else None,
                         "delta": delta, "agrees": ok, "limit": p.limit,
                         "predicted_ratio": p.ratio, "measured_ratio": m.ratio if m else None,
                         "emulator_slack": m.slack if m else None})
        result = {"scenario": loaded.name, "tolerance_s": tolerance, "emulator": "ran" if measured else "skipped",
                  "skipped_because": skipped, "rows": rows}
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            table = Table(title=f"{loaded.name}: simulator vs emulator (tolerance {tolerance:g}s)", show_edge=False)
            for col in ("#", "step", "predicted", "measured", "delta", "limit", "measured/limit", "agrees"):
                table.add_column(col)
            for r in rows:
                fmt = (lambda v: "" if v is None else f"{v:.3f}s")  # noqa: E731
                ratio = "" if r["measured_ratio"] is None else (
                    f"{r['measured_ratio']:.2f}" + ("" if r["emulator_slack"] is None
                                                    else f" (slack {r['emulator_slack']:.2f}s)"))
                table.add_row(str(r["index"]), r["step"], f"{fmt(r['predicted'])} {r['predicted_status']}",
                              "skipped" if not measured else f"{fmt(r['measured'])} {r['measured_status']}",
                              fmt(r["delta"]), fmt(r["limit"]), ratio,
                              {None: "-", True: "[green]yes[/]", False: "[red]NO[/]"}[r["agrees"]])
            console.print(table)
            if skipped:
                console.print(f"[yellow]emulator skipped:[/] {skipped}")
        if junit is not None:
            junit.write_text(render_junit([predicted] + ([measured] if measured else [])), encoding="utf-8")
        raise SystemExit(0 if agree and predicted.passed and (measured is None or measured.passed) else 1)

    scenario_app = typer.Typer(help="Scenario files: schema.", no_args_is_help=True)

    @scenario_app.command("schema")
    def schema_cmd(
        write: bool = typer.Option(False, "--write", help="Write topologies/schema/scenario.schema.json"),
    ) -> None:
        """Print (or write) the JSON schema of scenario files."""
        if write:
            console.print(f"wrote {write_schema()}")
        else:
            print(json.dumps(scenario_json_schema(), indent=2))

    app.add_typer(scenario_app, name="scenario")
