"""The checklist as people and CI systems read it: a rich table, and JUnit XML (one testcase per step)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sim.rehearse.model import Report, StepResult

MARK = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]SKIP[/]", "not-run": "[dim]----[/]"}


def print_step(console: Console, step: StepResult) -> None:
    """One line per finished step, then what it checked, then (on failure) the advice."""
    console.print(f"{MARK[step.status]} {step.index:>4} {step.title} [dim]({step.seconds:.1f}s)[/]", highlight=False)
    for line in step.checks:
        console.print(f"           [dim]{escape(line)}[/]", highlight=False, soft_wrap=True)
    # Details quote daemons and paths ("[/tmp/...]"): printed as text, never read as rich markup.
    if step.provenance:
        console.print(f"           [cyan]config under test: {escape(step.provenance)}[/]", highlight=False,
                      soft_wrap=True)
    if step.status == "fail":
        console.print(f"           [red]{escape(step.detail)}[/]", highlight=False, soft_wrap=True)
        for line in step.advice:
            console.print(f"           [bold]->[/] {escape(line)}", highlight=False, soft_wrap=True)
    elif step.status == "skip" and step.detail:
        console.print(f"           [yellow]{escape(step.detail)}[/]", highlight=False, soft_wrap=True)


def print_checklist(console: Console, report: Report) -> None:
    table = Table(title=f"cnilab {report.suite}: {report.topology} ({report.router_kind}, "
                        f"{report.customer_config or 'template config'})")
    for col in ("#", "step", "result", "seconds"):
        table.add_column(col)
    for s in report.steps:
        table.add_row(s.index, s.title, MARK[s.status], f"{s.seconds:.1f}")
    console.print(table)
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    console.print(f"{verdict} in {report.seconds:.1f}s", highlight=False)


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
                 "lab": report.lab}.items():
        ET.SubElement(props, "property", name=k, value=v)
    for s in report.steps:
        case = ET.SubElement(suite, "testcase", classname=f"cnilab.{report.suite}",
                             name=f"{s.index} {s.title}", time=f"{s.seconds:.3f}")
        if s.status == "fail":
            failure = ET.SubElement(case, "failure", message=s.detail, type="CheckFailed")
            failure.text = "\n".join([s.detail, *s.checks, *(f"-> {a}" for a in s.advice),
                                      *([f"config under test: {s.provenance}"] if s.provenance else [])])
        elif s.status == "skip":
            ET.SubElement(case, "skipped", message=s.detail or "not applicable")
        elif s.status == "not-run":
            ET.SubElement(case, "skipped", message="not run: an earlier step failed")
        if s.provenance:
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="provenance", value=s.provenance)
        if (s.checks or s.provenance) and s.status != "fail":
            ET.SubElement(case, "system-out").text = "\n".join(
                [*s.checks, *([f"config under test: {s.provenance}"] if s.provenance else [])])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
