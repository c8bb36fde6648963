"""The checklist as people and CI systems read it: a rich table, and JUnit XML (one testcase per step)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cnilab.sim.rehearse.model import Report, StepResult
from rich.console import Console
from rich.markup import escape
from rich.table import Table

MARK = {"pass": "[green]PASS[/]", "warn": "[yellow]WARN[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]SKIP[/]",
        "not-run": "[dim]----[/]"}
SEVERITY = {"fail": "[red]FAIL[/]", "warn": "[yellow]WARN[/]"}
INDENT = " " * 11


def step_lines(step: StepResult) -> list[tuple[str, str]]:
    """What a finished step says, as (rich style, text) lines: checks, the detail, then each finding
    once with its cause and fix (or the advice lines of a step without findings)."""
    out: list[tuple[str, str]] = [("dim", line) for line in step.checks]
    if step.provenance:
        out.append(("cyan", f"config under test: {step.provenance}"))
    if step.status == "fail":
        out.append(("red", step.detail))
    elif step.status in ("skip", "not-run") and step.detail:
        out.append(("yellow" if step.status == "skip" else "dim", step.detail))
    if step.findings:
        for f in step.findings:
            out.append((f.severity, f"{f.subject + ': ' if f.subject else ''}{f.cause}"))
            if f.fix:
                out.append(("fix", f.fix))
    elif step.status == "fail":
        out += [("fix", line) for line in step.advice]
    return out


def print_step(console: Console, step: StepResult) -> None:
    """One line per finished step, then what it checked, then its findings (cause, then -> fix).

    Details quote daemons and paths ("[/tmp/...]"): printed as text, never read as rich markup."""
    if step.status == "not-run":
        console.print(f"{MARK[step.status]} {step.index:>4} {escape(step.title)} [dim](not run: "
                      f"{escape(step.detail or 'an earlier step failed')})[/]", highlight=False)
        return
    console.print(f"{MARK[step.status]} {step.index:>4} {escape(step.title)} [dim]({step.seconds:.1f}s)[/]",
                  highlight=False)
    for style, text in step_lines(step):
        if style == "fix":
            line = f"{INDENT}  [bold]->[/] {escape(text)}"
        elif style in SEVERITY:
            line = f"{INDENT}{SEVERITY[style]} {escape(text)}"
        else:
            line = f"{INDENT}[{style}]{escape(text)}[/]"
        console.print(line, highlight=False, soft_wrap=True)


def print_checklist(console: Console, report: Report) -> None:
    table = Table(title=f"cnilab {report.suite}: {report.topology} ({report.router_kind}, "
                        f"{report.customer_config or 'template config'})")
    for col in ("#", "step", "result", "seconds"):
        table.add_column(col)
    for s in report.steps:
        table.add_row(s.index, s.title, MARK[s.status], f"{s.seconds:.1f}")
    console.print(table)
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    fails = len(report.failures)
    extra = [f"{fails} step(s) failed"] if fails else []
    extra += [f"{report.warnings} warning(s)"] if report.warnings else []
    console.print(f"{verdict} in {report.seconds:.1f}s" + (f" ({', '.join(extra)})" if extra else ""),
                  highlight=False)


def render_junit(report: Report) -> str:
    """One <testsuite>; each step a <testcase> (failure with the advice, skipped when not run)."""
    root = ET.Element("testsuites")
    fails = sum(s.status == "fail" for s in report.steps)
    skips = sum(s.status in ("skip", "not-run") for s in report.steps)
    suite = ET.SubElement(root, "testsuite", name=f"cnilab {report.suite} {report.topology}",
                          tests=str(len(report.steps)), failures=str(fails), errors="0", skipped=str(skips),
                          time=f"{report.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in {"topology": report.topology_path, "router_kind": report.router_kind,
                 "customer_config": report.customer_config or "template", "mss_clamp": report.mss_clamp,
                 "lab": report.lab, "warnings": str(report.warnings)}.items():
        ET.SubElement(props, "property", name=k, value=v)
    for s in report.steps:
        case = ET.SubElement(suite, "testcase", classname=f"cnilab.{report.suite}",
                             name=f"{s.index} {s.title}", time=f"{s.seconds:.3f}")
        # JUnit has no warning state: a WARN step passes, and its findings go to <system-out> and
        # <properties> (finding.warn) where CI report viewers show them
        if s.status == "fail":
            failure = ET.SubElement(case, "failure", message=s.detail, type="CheckFailed")
            failure.text = "\n".join(f"-> {text}" if style == "fix" else
                                      f"{style.upper()} {text}" if style in SEVERITY else text
                                      for style, text in step_lines(s))
        elif s.status == "skip":
            ET.SubElement(case, "skipped", message=s.detail or "not applicable")
        elif s.status == "not-run":
            ET.SubElement(case, "skipped", message=f"not run: {s.detail or 'an earlier step failed'}")
        warns = [f for f in s.findings if f.severity == "warn"]
        if warns or s.provenance:
            cprops = ET.SubElement(case, "properties")
            if s.provenance:
                ET.SubElement(cprops, "property", name="provenance", value=s.provenance)
            for f in warns:
                ET.SubElement(cprops, "property", name=f"warn.{f.check}", value=f.text())
        if (s.checks or warns or s.provenance) and s.status != "fail":
            ET.SubElement(case, "system-out").text = "\n".join(
                [*s.checks, *([f"config under test: {s.provenance}"] if s.provenance else []),
                 *(f"WARN {f.text()}" for f in warns)])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
