"""``cnilab verify``: boot the lab with a baseline and a candidate router config, compare what each
announces, installs and negotiates, and fail on any difference the ``--expect`` file does not declare.

Also the observation side of ``cnilab test`` (``--record FILE`` / ``--baseline-observation FILE``),
so a pipeline keeps the main branch's observation as an artifact and verifies pull requests against it.
Exit status: 0 exactly the declared change, 1 an undeclared difference (or a failing finding such as a
leak to the transit), 2 bad input (nothing was built).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from cnilab.sim.cli.output import console, err_console, fail
from cnilab.sim.cli.rehearse import DEFAULT_TOPOLOGY, DataplaneOpt, KindOpt, MssOpt, TopologyOpt, _options


def _write(path: Path | None, text: str, what: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{what} {path}: cannot write: {exc.strerror}")


def _declared(expect: Path | None) -> list[str]:
    from cnilab.sim.verify.expect import load_expect

    return load_expect(expect) if expect is not None else []


def finish(verdict, as_json: bool, junit: Path | None, markdown: Path | None) -> None:
    """Print/write the verdict everywhere asked and exit with its code."""
    from cnilab.sim.verify.render import print_verdict, render_junit, render_markdown

    _write(junit, render_junit(verdict), "--junit")
    _write(markdown, render_markdown(verdict), "--markdown")
    if as_json:
        print_verdict(err_console, verdict)
        console.file.write(verdict.model_dump_json(indent=1) + "\n")
    else:
        print_verdict(console, verdict)
    raise typer.Exit(verdict.exit_code)


def test_with_observation(opts, as_json: bool, junit: Path | None, record: Path | None,
                          baseline_observation: Path | None, expect: Path | None, markdown: Path | None) -> None:
    """``cnilab test`` plus an observation of the converged lab, recorded and/or judged against a baseline."""
    from cnilab.sim.rehearse import run_acceptance
    from cnilab.sim.rehearse.checklist import print_checklist, print_step
    from cnilab.sim.topology.load import ConfigError
    from cnilab.sim.verify.observe import observe
    from cnilab.sim.verify.runner import check_comparable, judge, load_observation

    out = err_console if as_json else console
    try:
        base = load_observation(baseline_observation) if baseline_observation else None
        declared = _declared(expect)
    except ConfigError as exc:
        fail(str(exc))
    holder: dict[str, object] = {}

    def after(ctx) -> None:
        holder["obs"] = observe(ctx.lab, "recorded")

    t0 = time.monotonic()
    out.rule(f"cnilab test: {opts.topology}")
    try:
        report = run_acceptance(opts, None, lambda step: print_step(out, step), after)
    except ConfigError as exc:
        fail(str(exc))
    if junit is not None and base is None:
        from cnilab.sim.rehearse import render_junit as rj

        _write(junit, rj(report), "--junit")
    print_checklist(out, report)
    obs = holder.get("obs")
    if obs is None:
        err_console.print("error: no observation: the suite stopped before the lab was up")
        raise typer.Exit(1)
    if record is not None:
        _write(record, obs.model_dump_json(indent=1) + "\n", "--record")  # type: ignore[attr-defined]
        out.print(f"observation written to {record}")
    if base is not None:
        assert baseline_observation is not None
        try:
            check_comparable(base, obs.topology, baseline_observation)  # type: ignore[attr-defined]
        except ConfigError as exc:
            fail(str(exc))
        verdict = judge(base, obs, declared, time.monotonic() - t0)  # type: ignore[arg-type]
        if not report.passed:
            verdict = verdict.model_copy(update={"passed": False, "exit_code": 1})
        finish(verdict, as_json, junit, markdown)
    if as_json:
        console.file.write(json.dumps(report.model_dump(mode="json"), indent=1) + "\n")
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        candidate: Annotated[Path, typer.Option("--candidate", help="The changed router config")],
        baseline: Annotated[Path | None, typer.Option("--baseline", help="The router config before the change")
                            ] = None,
        baseline_observation: Annotated[Path | None, typer.Option(
            "--baseline-observation", help="A stored observation (cnilab test --record) instead of --baseline")
        ] = None,
        topology: TopologyOpt = DEFAULT_TOPOLOGY,
        expect: Annotated[Path | None, typer.Option("--expect", help="The intended differences, one per line")
                          ] = None,
        kind: KindOpt = None,
        mss_clamp: MssOpt = None,
        dataplane: DataplaneOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the verdict with all evidence as JSON")] = False,
        junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here")] = None,
        markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a GitHub Markdown summary here")
                            ] = None,
        parallel: Annotated[bool, typer.Option("--parallel", help="Boot both labs side by side")] = False,
        probes: Annotated[bool, typer.Option("--probes/--no-probes", help="MTU/MSS probes in the observation")
                          ] = True,
        failover: Annotated[bool, typer.Option(
            "--failover/--no-failover", help="Pull the interconnect in use under a stream (needs probes)")] = True,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds each lab may take to converge")] = 45.0,
    ) -> None:
        """Does the candidate config change exactly what --expect declares, and nothing else?"""
        from cnilab.sim.routers import RouterError
        from cnilab.sim.topology.load import ConfigError
        from cnilab.sim.verify.runner import check_comparable, judge, load_observation, record, record_both

        if (baseline is None) == (baseline_observation is None):
            fail("give exactly one of --baseline CONFIG or --baseline-observation FILE")
        for flag, path in (("--candidate", candidate), ("--baseline", baseline)):
            if path is not None and not path.is_file():
                fail(f"{flag} {path}: file not found")
        t0 = time.monotonic()
        cand_opts = _options(topology, candidate, kind, mss_clamp, None, dataplane)
        try:
            declared = _declared(expect)
            if baseline_observation is not None:
                base = load_observation(baseline_observation)
                check_comparable(base, _topology_name(cand_opts.topology), baseline_observation)
                cand = record(cand_opts, "candidate", probes=probes, failover=failover, deadline_s=timeout)
            else:
                base_opts = _options(topology, baseline, kind, mss_clamp, None, dataplane)
                _preflight(base_opts)
                _preflight(cand_opts)
                base, cand = record_both(base_opts, cand_opts, parallel=parallel, probes=probes, failover=failover,
                                         deadline_s=timeout)
        except ConfigError as exc:
            fail(str(exc))
        except RouterError as exc:
            fail(f"the router did not start in the lab: {exc}", code=1)
        finish(judge(base, cand, declared, time.monotonic() - t0), as_json, junit, markdown)


def _topology_name(path: Path) -> str:
    from cnilab.sim.topology.load import load_topology

    return load_topology(path).name


def _preflight(opts) -> None:
    """Both configs pass the daemon's parser before either lab is built (bad input: exit 2, nothing made)."""
    from cnilab.sim.rehearse.runner import build_run_plan
    from cnilab.sim.routers import check_customer_config

    _topo, plan = build_run_plan(opts, "preflight")
    check_customer_config(plan)
