"""Onboarding rehearsal (``cnilab rehearse``) and the CI acceptance suite (``cnilab test``).

The rehearsal walks the onboarding of seeds 000-002 (scope, order and LOA, cross-connect, IPs and
ping tests, the BGP call, go live and monitoring) against a real lab and the mock CNI API, with the
same API calls and router config the engineer will use on the day. The acceptance suite proves, on
every change of a router config, that it still peers, learns Cloudflare's prefixes, announces only
what is allowed, clamps MSS, fits the profile's MTU and fails over.

Entry points::

    run_rehearsal(RunOptions(...), progress) -> Report
    run_acceptance(RunOptions(...), progress) -> Report
    render_junit(report) -> str
"""

from cnilab.sim.rehearse.checklist import render_junit
from cnilab.sim.rehearse.model import Report, RunOptions, StepResult
from cnilab.sim.rehearse.runner import run_acceptance, run_rehearsal

__all__ = ["Report", "RunOptions", "StepResult", "render_junit", "run_acceptance", "run_rehearsal"]
