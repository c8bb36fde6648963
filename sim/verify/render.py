"""A verdict for people (console), for GitHub (Markdown step summary / PR comment) and for CI (JUnit)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cnilab.sim.verify.model import Finding, Observation, Verdict
from rich.console import Console


def _fix_text(f: Finding) -> str:
    return "\n".join(f"{k}: {v}" for k, v in f.fix.items())


def print_observation(out: Console, obs: Observation) -> None:
    out.print(f"[bold]{obs.label}[/]: {obs.config or 'template config'} ({obs.router_kind}) on {obs.topology}; "
              f"{'converged' if obs.converged else '[red]NOT converged[/]'} in {obs.convergence_s:.1f}s, "
              f"held {obs.hold_window_s:.1f}s", highlight=False, soft_wrap=True)
    for nb in obs.neighbors.values():
        states = ", ".join(f"{s.key} {s.state}" for s in nb.sessions)
        out.print(f"  {nb.name} ({nb.kind}): {states}", highlight=False, soft_wrap=True)
        for r in nb.routes.values():
            attrs = [f"path {' '.join(map(str, r.as_path))}"]
            if r.med:
                attrs.append(f"MED {r.med}")
            if r.communities:
                attrs.append("communities " + " ".join(r.communities))
            if r.accepted is False:
                attrs.append(f"REFUSED: {r.reason}")
            if r.best:
                attrs.append("best")
            out.print(f"    {r.prefix}: {', '.join(attrs)}", highlight=False, soft_wrap=True)
    if obs.failover is not None:
        out.print(f"  failover ({obs.failover.fault} {obs.failover.link}): {_failover_text(obs)}",
                  highlight=False, soft_wrap=True)
    for n in obs.notes:
        out.print(f"  note: {n}", highlight=False, soft_wrap=True)


def _failover_text(obs: Observation) -> str:
    fo = obs.failover
    assert fo is not None
    return "; ".join(f"{d.direction} {d.path_before} -> {d.path_after}, lost {d.loss_window_ms:.0f} ms "
                     f"({'ok' if d.within_expected else 'over'} the {fo.bound_ms} ms bound: {fo.mechanism})"
                     for d in fo.directions)


def print_verdict(out: Console, v: Verdict) -> None:
    for obs in (v.baseline, v.candidate):
        print_observation(out, obs)
    out.rule("differences")
    if not v.differences:
        out.print("none: the candidate behaves exactly like the baseline")
    for d in v.differences:
        tag = "[green]declared[/]  " if d.declared else "[red]UNDECLARED[/]"
        out.print(f"{tag} {d.text}", highlight=False, soft_wrap=True)
    for u in v.unobserved:
        out.print(f"[red]NOT OBSERVED[/] {u} (declared in --expect)", highlight=False, soft_wrap=True)
    for f in v.failures:
        out.print(f"[red]FAIL[/] {f.check}: {f.text}", highlight=False, soft_wrap=True)
        for k, fix in f.fix.items():
            out.print(f"      fix ({k}): " + fix.replace("\n", "\n        "), highlight=False, soft_wrap=True)
    for f in v.warnings:
        out.print(f"[yellow]WARN[/] {f.check}: {f.text}", highlight=False, soft_wrap=True)
        for k, fix in f.fix.items():
            out.print(f"      fix ({k}): " + fix.replace("\n", "\n        "), highlight=False, soft_wrap=True)
    word = "[green]PASS[/]" if v.passed else "[red]FAIL[/]"
    out.print(f"{word} ({v.seconds:.1f}s): {len(v.differences)} difference(s), {len(v.undeclared)} undeclared, "
              f"{len(v.unobserved)} declared but not observed, {len(v.failures)} failing finding(s)")


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_markdown(v: Verdict) -> str:
    """GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY`` or a PR comment."""
    icon = "✅" if v.passed else "❌"
    c = v.candidate
    lines = [f"## {icon} cnilab verify: {'PASS' if v.passed else 'FAIL'}", "",
             f"Topology `{c.topology}`, {c.router_kind}: baseline `{v.baseline.config or 'template'}` → candidate "
             f"`{c.config or 'template'}` ({v.seconds:.1f}s).", ""]
    if v.differences or v.unobserved:
        lines += ["| | difference |", "|---|---|"]
        lines += [f"| {'declared' if d.declared else '**undeclared**'} | {_md_escape(d.text)} |"
                  for d in v.differences]
        lines += [f"| **declared, not observed** | {_md_escape(u)} |" for u in v.unobserved]
    else:
        lines.append("No difference: the candidate behaves exactly like the baseline.")
    if v.failures or v.warnings:
        lines += ["", "### Findings on the candidate", ""]
        for f in [*v.failures, *v.warnings]:
            lines.append(f"- **{f.severity.upper()}** {f.check}: {_md_escape(f.text)}")
            for k, fix in f.fix.items():
                lines += [f"  <details><summary>fix ({k})</summary>", "", "  ```", *(f"  {ln}" for ln in
                                                                                   fix.splitlines()), "  ```",
                          "  </details>"]
    lines += ["", "<details><summary>What the candidate announces</summary>", ""]
    lines += ["| neighbor | prefix | AS path | MED | communities | Cloudflare |", "|---|---|---|---|---|---|"]
    for nb in c.neighbors.values():
        for r in nb.routes.values():
            cf = "" if r.accepted is None else ("accepted" + (", best" if r.best else "") if r.accepted
                                                else f"refused: {r.reason}")
            lines.append(f"| {nb.name} | {r.prefix} | {' '.join(map(str, r.as_path))} | {r.med or 0} | "
                         f"{' '.join(r.communities)} | {_md_escape(cf)} |")
    lines += ["", "</details>", ""]
    if c.failover is not None:
        lines += [f"Failover (pull `{c.failover.link}`): {_md_escape(_failover_text(c))}", ""]
    if c.notes:
        lines += [f"> {n}" for n in c.notes] + [""]
    return "\n".join(lines)


def render_junit(v: Verdict) -> str:
    """One testcase per difference (failure when undeclared), declared-not-observed and finding."""
    root = ET.Element("testsuites")
    cases: list[tuple[str, str | None]] = [(f"difference: {d.text}", None if d.declared else "undeclared difference")
                                           for d in v.differences]
    cases += [(f"declared: {u}", "declared in --expect but not observed") for u in v.unobserved]
    cases += [(f"{f.check}: {f.subject}", f.text) for f in v.failures]
    if not cases:
        cases.append(("no difference from the baseline", None))
    suite = ET.SubElement(root, "testsuite", name=f"cnilab verify [{v.candidate.topology}]", tests=str(len(cases)),
                          failures=str(sum(1 for _, f in cases if f)), errors="0", time=f"{v.seconds:.3f}")
    for name, failure in cases:
        case = ET.SubElement(suite, "testcase", classname="cnilab.verify", name=name)
        if failure:
            ET.SubElement(case, "failure", message=failure, type="VerifyFailed").text = failure
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
