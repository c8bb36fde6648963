"""JUnit XML, so a CI system shows each scenario step as a test case (and each failure's reason)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cnilab.sim.report.model import Report


def render_junit(reports: list[Report]) -> str:
    """One <testsuite> per report; steps that check something (expect, wait_established) or failed
    become <testcase>s, with the scenario's virtual durations as times."""
    root = ET.Element("testsuites")
    for rep in reports:
        cases = [s for s in rep.steps if s.do in ("expect", "wait_established") or s.status == "fail"]
        suite = ET.SubElement(root, "testsuite", name=f"{rep.scenario} [{rep.executor}]", tests=str(len(cases)),
                              failures=str(sum(s.status == "fail" for s in cases)), errors="0",
                              time=f"{rep.duration:.3f}")
        props = ET.SubElement(suite, "properties")
        for k, v in {"seed": str(rep.seed), "topology": rep.topology, **rep.parameters}.items():
            ET.SubElement(props, "property", name=k, value=v)
        for s in cases:
            case = ET.SubElement(suite, "testcase", classname=f"cnilab.{rep.scenario}",
                                 name=f"#{s.index} {s.description}", time=f"{s.end - s.start:.3f}")
            if s.status == "fail":
                failure = ET.SubElement(case, "failure", message=s.reason or "failed", type="ExpectationFailed")
                failure.text = f"at {s.start:.3f}s: {s.description}: {s.reason}"
            elif s.measured is not None:
                ET.SubElement(case, "system-out").text = f"measured {s.measured:.3f}s"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
