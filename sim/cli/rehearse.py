"""``cnilab rehearse`` (the onboarding, step by step, against a lab and the mock API) and
``cnilab test`` (the CI acceptance suite for a router config).

Both print each step as it finishes with its duration, run every step that does not depend on a
failed one, and print each finding once with its cause and fix. Exit codes, the same rule as
``cnilab up`` and ``validate``:

* 0 - every step passed (WARN findings do not fail a run);
* 1 - the lab ran and a check failed (a verdict on the config);
* 2 - the input was refused before anything ran: a bad option or topology, a router config the
  daemon's own parser refuses, or a config of the other daemon's kind. The report (``--json``,
  ``--junit``) is still written when the parser refused the config.

``--json`` prints the report model on stdout (progress then goes to stderr) and ``--junit FILE``
writes one testcase per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cnilab.sim.cli.output import console, emit, err_console, fail, lab_name_param
from cnilab.sim.facts import router_kind_names

DEFAULT_TOPOLOGY = Path("v1-gre")
"""A shipped topology's name (resolved by cnilab.sim.topology.paths), so the default works from any directory."""
EXIT_REFUSED = 2
"""Input refused before anything ran (see the module docstring)."""

TopologyOpt = Annotated[Path, typer.Option("--topology", "-t", help="Topology YAML, or a shipped topology's name")]
ConfigOpt = Annotated[Path | None, typer.Option("--customer-config", "-c",
                                                help="Your router config (replaces the template)")]
DataplaneOpt = Annotated[Path | None, typer.Option(
    "--dataplane", help="Your side of the dataplane: the ip/nft/iptables lines your router runs (GRE tunnel, "
                        "MSS clamp); cnilab then builds only Cloudflare's side")]
KindOpt = Annotated[str | None, typer.Option(
    "--kind", help=f"{' or '.join(router_kind_names(in_lab=True))} (default: from the file's syntax)")]
MssOpt = Annotated[str | None, typer.Option(
    "--mss-clamp", help="auto, none or an MSS: the clamp your router applies outside the BGP daemon "
                        "(default: the topology's customer.router.mss_clamp)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here")]
LabOpt = Annotated[str | None, typer.Option("--name", "--lab", help="Lab name (default: unique)",
                                           callback=lab_name_param)]


def _options(topology: Path, config: Path | None, kind: str | None, mss: str | None, name: str | None,
             dataplane: Path | None = None):
    from cnilab.sim.rehearse import RunOptions
    from cnilab.sim.topology.paths import resolve_topology
    from pydantic import ValidationError

    if kind is not None and kind not in router_kind_names(in_lab=True):
        fail(f"--kind = {kind!r}: choose {' or '.join(router_kind_names(in_lab=True))}")
    clamp: str | int | None = mss
    if mss is not None and mss not in ("auto", "none"):
        try:
            clamp = int(mss)
        except ValueError:
            fail(f"--mss-clamp = {mss!r}: use auto, none or an integer MSS")
    try:
        return RunOptions(topology=resolve_topology(topology), customer_config=config, kind=kind, mss_clamp=clamp,
                          lab=name, customer_dataplane=dataplane)
    except ValidationError as exc:
        fail(str(exc))


def _run(suite: str, opts, as_json: bool, junit: Path | None) -> None:
    from cnilab.sim.rehearse import render_junit, run_acceptance, run_rehearsal
    from cnilab.sim.rehearse.checklist import print_checklist, print_step
    from cnilab.sim.topology.load import ConfigError

    out = err_console if as_json else console
    runner = run_rehearsal if suite == "rehearse" else run_acceptance
    status = None

    def begin(index: str, title: str) -> None:
        nonlocal status
        status = out.status(f"{index} {title}")
        status.start()

    def done(step) -> None:
        if status is not None:
            status.stop()
        print_step(out, step)

    out.rule(f"cnilab {suite}: {opts.topology}")
    try:
        report = runner(opts, begin, done)
    except ConfigError as exc:
        fail(str(exc))
    finally:
        if status is not None:
            status.stop()
    if junit is not None:
        try:
            junit.write_text(render_junit(report), encoding="utf-8")
        except OSError as exc:
            fail(f"--junit {junit}: cannot write: {exc.strerror}")
    emit(report, as_json, lambda r: print_checklist(out, r))
    if as_json:
        print_checklist(out, report)
    raise typer.Exit(exit_code(report))


def exit_code(report) -> int:
    """0 passed, 2 the daemon's parser refused the config (nothing ran), 1 any other failure."""
    if report.passed:
        return 0
    config = next((s for s in report.steps if s.id == "config"), None)
    return EXIT_REFUSED if config is not None and config.status == "fail" else 1


def register(app: typer.Typer) -> None:
    @app.command("rehearse")
    def rehearse(
        topology: TopologyOpt = DEFAULT_TOPOLOGY,
        customer_config: ConfigOpt = None,
        kind: KindOpt = None,
        mss_clamp: MssOpt = None,
        as_json: JsonOpt = False,
        junit: JunitOpt = None,
        name: LabOpt = None,
        dataplane: DataplaneOpt = None,
    ) -> None:
        """Rehearse the onboarding: slot, order + LOA, cross-connect, ping, CNI + BGP call, MTU/MSS, go live.

        Exit 0 passed (warnings allowed), 1 a check failed, 2 input refused (incl. a router config
        the daemon's parser refuses).
        """
        _run("rehearse", _options(topology, customer_config, kind, mss_clamp, name, dataplane), as_json, junit)

    @app.command("test")
    def test(
        customer_config: ConfigOpt = None,
        topology: TopologyOpt = DEFAULT_TOPOLOGY,
        kind: KindOpt = None,
        mss_clamp: MssOpt = None,
        junit: JunitOpt = None,
        as_json: JsonOpt = False,
        name: LabOpt = None,
        dataplane: DataplaneOpt = None,
        record: Annotated[Path | None, typer.Option(
            "--record", help="Also write the converged lab's observation (for cnilab verify) here")] = None,
        baseline_observation: Annotated[Path | None, typer.Option(
            "--baseline-observation", help="Fail on any difference from this stored observation")] = None,
        expect: Annotated[Path | None, typer.Option(
            "--expect", help="With --baseline-observation: the intended differences")] = None,
        markdown: Annotated[Path | None, typer.Option(
            "--markdown", help="With --baseline-observation: write a GitHub Markdown summary")] = None,
    ) -> None:
        """Acceptance suite for a router config: peers, your router's state, prefixes both ways, BFD, MTU,
        MSS, failover.

        Exit 0 passed (warnings allowed), 1 a check failed, 2 input refused (incl. a router config
        the daemon's parser refuses).
        """
        opts = _options(topology, customer_config, kind, mss_clamp, name, dataplane)
        if record is not None or baseline_observation is not None:
            from cnilab.sim.cli.verify import test_with_observation

            test_with_observation(opts, as_json, junit, record, baseline_observation, expect, markdown)
        _run("test", opts, as_json, junit)
