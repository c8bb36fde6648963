"""Checks of the customer's router against the plan: the ``router`` step of ``cnilab test``/``rehearse``.

Each check is a function ``(Context) -> list[Finding]`` registered with :func:`router_check`; the
step runs every registered check (a check that raises becomes a WARN saying it could not run, never
a silent pass) and fails when any finding has severity ``fail``. Checks read real state: the edge's
view of each session (negotiated timers, flaps) here, the customer daemon's own state (FRR
``show bgp neighbors json``, BIRD ``show protocols all``) in checks other modules register. Adding a
check is one decorated function in any module listed in :data:`CHECK_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnilab.sim.rehearse.model import Finding

if TYPE_CHECKING:
    from cnilab.sim.rehearse.steps import Context

RouterCheck = Callable[["Context"], list[Finding]]


@dataclass(frozen=True)
class RegisteredCheck:
    id: str
    title: str
    fn: RouterCheck


class CheckRegistry:
    """Named checks in registration order (an id registered twice is a programming error)."""

    def __init__(self) -> None:
        self._checks: dict[str, RegisteredCheck] = {}

    def register(self, check_id: str, title: str) -> Callable[[RouterCheck], RouterCheck]:
        def deco(fn: RouterCheck) -> RouterCheck:
            if check_id in self._checks and self._checks[check_id].fn is not fn:
                raise ValueError(f"router check {check_id!r} registered twice")
            self._checks[check_id] = RegisteredCheck(check_id, title, fn)
            return fn
        return deco

    def all(self) -> list[RegisteredCheck]:
        for mod in CHECK_MODULES:
            importlib.import_module(mod)
        return list(self._checks.values())


CHECK_MODULES: tuple[str, ...] = ("cnilab.sim.rehearse.checks",)
"""Modules whose import registers checks; listed here so the runner finds them without if-chains."""

REGISTRY = CheckRegistry()
router_check = REGISTRY.register


def run_checks(ctx: Context, checks: list[RegisteredCheck] | None = None) -> tuple[list[str], list[Finding]]:
    """Run every check; returns (what ran, findings). A check that raises is a WARN, not a pass; one
    that does not apply raises SkipStep and says why; info findings are context lines, not verdicts."""
    from cnilab.sim.rehearse.steps import SkipStep

    ran: list[str] = []
    findings: list[Finding] = []
    for c in checks if checks is not None else REGISTRY.all():
        try:
            got = c.fn(ctx)
        except SkipStep as exc:
            ran.append(f"{c.title}: not checked: {exc}")
            continue
        except Exception as exc:  # a broken check must be visible, and must not hide the others
            findings.append(Finding(severity="warn", check=f"{c.id}.not-run", subject=c.title,
                                    cause=f"this check could not run: {type(exc).__name__}: {exc}",
                                    fix="not a verdict on your config; report it if it persists"))
            ran.append(f"{c.title}: could not run")
            continue
        # the same finding about the same session from two sources (the daemon's timers and the
        # edge's) is said once: the first registered, the daemon's own view, wins
        seen = {(f.check, f.subject) for f in findings}
        verdicts = [f for f in got if f.severity != "info" and (f.check, f.subject) not in seen]
        ran.append(f"{c.title}: " + (", ".join(dict.fromkeys(f"{f.severity.upper()} {f.check}" for f in verdicts))
                                     or "ok"))
        ran += [f"  {f.subject + ': ' if f.subject else ''}{f.cause}" for f in got if f.severity == "info"]
        findings += verdicts
    return ran, findings


# -- the customer daemon's own state ------------------------------------------------------------------
@router_check("router.crosscheck", "Your daemon's own state (neighbors, policies, BFD, timers)")
def daemon_state(ctx: Context) -> list[Finding]:
    """cnilab.sim.routers.crosscheck: what the daemon reports, against the plan (it names its evidence)."""
    from cnilab.sim.rehearse.steps import SkipStep, _router_findings, as_finding
    from cnilab.sim.routers import router_for

    if router_for(ctx.lab) is None:
        raise SkipStep("the customer router runs outside the lab: cnilab cannot read its state")
    return [as_finding(f) for f in _router_findings(ctx)]


# -- built-in checks: what the edge measured on the wire -----------------------------------------------
@router_check("router.timers", "BGP timers (negotiated hold time, your keepalive)")
def timers(ctx: Context) -> list[Finding]:
    out = []
    for s in ctx.edge.sessions():
        for w in s.warnings:
            out.append(Finding(severity="warn", check="router.timers", subject=s.key, cause=w.split(": ", 1)[0],
                               fix=w.split(": ", 1)[1] if ": " in w else ""))
    return out


@router_check("router.flaps", "Sessions stay up once Established")
def flaps(ctx: Context) -> list[Finding]:
    out = []
    for s in ctx.edge.sessions():
        if s.flaps:
            last = next((t for t in reversed(s.transitions) if t.state != "Established"), None)
            reason = last.reason if last else ""
            fix = "see `cnilab bgp` (transitions) and your router's log for the reason"
            if "customer router sent BFD Down" in reason and ctx.plan.customer_router.kind == "frr":
                fix = (f"FRR re-registers BFD when the session comes up unless it knows the source address, and the "
                       f"new BFD session starts Down: add `neighbor {s.local} update-source {s.peer}` and declare "
                       f"the peer under `bfd` (`peer {s.local} local-address {s.peer} interface IFNAME`)")
            out.append(Finding(severity="warn", check="router.flaps", subject=s.key,
                               cause=f"the session went down {s.flaps} time(s) after Established without a fault"
                                     + (f" (last: {reason})" if reason else ""), fix=fix))
    return out
