"""``cnilab demo``: the default lab end to end, as the README's first command runs it.

Brings the lab up, waits for the BGP call to succeed (sessions Established, BFD Up, prefixes
exchanged), runs the MTU and MSS probes, pulls the link silently to show BFD detection and the
session teardown, restores it, and removes the lab. Each step prints its duration and result; the
exit status is non-zero if any step failed, so the same command is a smoke test.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from cnilab.sim.cli.output import console, fail, lab_name_param
from cnilab.sim.handle import LabHandle
from rich.table import Table


class Step:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, float, str]] = []

    def run(self, title: str, fn: Callable[[], tuple[bool, str]]) -> bool:
        t0 = time.monotonic()
        with console.status(title):
            try:
                ok, detail = fn()
            except Exception as exc:  # a demo step that blows up is a failed step, reported as such
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        dt = time.monotonic() - t0
        self.rows.append((title, ok, dt, detail))
        mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
        console.print(f"{mark} {title} [dim]({dt:.1f}s)[/] {detail}", highlight=False)
        return ok


def _bgp_up(lab: LabHandle) -> tuple[bool, str]:
    from cnilab.sim.checks import wait_bgp_up
    from cnilab.sim.edge.control import EdgeClient

    client = EdgeClient(lab.state.control["edge"])
    client.wait_established(timeout=60)
    sess = wait_bgp_up(client, lab.plan, timeout=30)
    parts = [f"{s.key} Established (sent {s.prefixes_sent}, accepted {s.prefixes_accepted})" for s in sess]
    return True, "; ".join(parts)


def _bfd_up(lab: LabHandle) -> tuple[bool, str]:
    from cnilab.sim.checks import bfd_sessions, wait_bfd_at_timers
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.testing import WaitTimeout

    if not bfd_sessions(lab.plan):
        return True, "no BFD at both ends on this dataplane"
    client = EdgeClient(lab.state.control["edge"])
    try:
        bfd = wait_bfd_at_timers(client, lab.plan, 30)
    except WaitTimeout:
        seen = [(b["peer"], b["state"], b["detection_ms"]) for b in client.bfd()]
        return False, f"BFD not Up at the configured timers: {seen}"
    return True, "; ".join(f"{b['peer']} Up, detection {b['detection_ms']:.0f} ms" for b in bfd)


def _customer_has_cf_routes(lab: LabHandle) -> tuple[bool, str]:
    from cnilab.sim.testing import WaitTimeout, wait_for

    want = sum(1 for p in lab.plan.cf_prefixes if p.version == 4)

    def count() -> int:
        out = lab.run("cust", ["ip", "-j", "route", "show", "proto", "bgp"], check=False).stdout
        return len(json.loads(out or "[]"))

    with contextlib.suppress(WaitTimeout):
        wait_for(lambda: count() >= want, timeout=20, what="Cloudflare routes in the customer's kernel")
    got = count()
    return got >= want, f"{got} IPv4 Cloudflare routes in the customer's kernel (want {want})"


def _silent_failure(lab: LabHandle) -> tuple[bool, str]:
    from cnilab.sim.checks import detection, wait_torn_down
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.faults.apply import apply_fault, clear_faults

    sess = lab.plan.sessions[0]
    client = EdgeClient(lab.state.control["edge"])
    detect_s, how = detection(lab.plan, [sess])
    t0 = time.monotonic()
    apply_fault(lab, sess.interconnect, "blackhole")
    try:
        took, up = wait_torn_down(client, [sess.key], t0, detect_s + 5)
    finally:
        clear_faults(lab, sess.interconnect)
    if up:
        return False, f"session {sess.key} still up {took:.1f}s after the link went dark ({how})"
    client.wait_established([sess.key], timeout=60)
    return True, (f"session {sess.key} torn down {took * 1000:.0f} ms after the link went dark ({how}, "
                  f"{detect_s * 1000:.0f} ms); re-established")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        topology: Annotated[Path, typer.Argument(help="Topology YAML, or a shipped topology's name")] = Path("v1-gre"),
        name: Annotated[str, typer.Option("--name", "--lab", help="Lab name", callback=lab_name_param)] = "demo",
        keep: Annotated[bool, typer.Option("--keep", help="Leave the lab running at the end")] = False,
    ) -> None:
        """Bring up a lab, rehearse the BGP call, probe MTU/MSS, fail the link once, tear down."""
        from cnilab.sim.lab.lab import Lab
        from cnilab.sim.probes.mss import probe_mss
        from cnilab.sim.probes.mtu import probe_mtu
        from cnilab.sim.topology import ConfigError, build_plan, load_topology

        try:
            plan = build_plan(load_topology(topology), name)
        except ConfigError as exc:
            fail(str(exc))
        steps = Step()
        console.rule(f"cnilab demo: {plan.topology} as lab [bold]{name}[/]")
        t_up = time.monotonic()
        try:
            with Lab.create(plan, topology_path=topology, progress=lambda m: console.print(f"  [dim]{m}[/]")) as lab:
                console.print(f"[green]PASS[/] lab up [dim]({time.monotonic() - t_up:.1f}s)[/] "
                              f"{', '.join(f'{k}: {v}' for k, v in lab.state.mechanisms.items())}")
                steps.rows.append(("lab up", True, time.monotonic() - t_up, ""))
                if steps.run("BGP sessions Established, prefixes exchanged", lambda: _bgp_up(lab)):
                    steps.run("BFD Up", lambda: _bfd_up(lab))
                    steps.run("customer learned Cloudflare's prefixes", lambda: _customer_has_cf_routes(lab))

                def mtu() -> tuple[bool, str]:
                    r = probe_mtu(lab)
                    return r.ok, "; ".join(f"{x.direction}{' IPv6' if x.family == 6 else ''} {x.measured} "
                                           f"(want {x.expected}, PMTUD {x.pmtud})" for x in r.results)

                def mss() -> tuple[bool, str]:
                    r = probe_mss(lab)
                    return r.ok, "; ".join(f"{x.direction}: {x.advice}" for x in r.results)

                steps.run("MTU probe (one-way DF sweep, PMTUD)", mtu)
                steps.run("MSS probe (real TCP handshakes)", mss)
                steps.run("silent link failure detected and recovered", lambda: _silent_failure(lab))
                if keep:
                    lab.detach()
                    console.print(f"lab [bold]{name}[/] left running: `cnilab status`, `cnilab down --lab {name}`")
        except Exception as exc:
            fail(f"{type(exc).__name__}: {exc}")
        table = Table(title="cnilab demo")
        for col in ("step", "result", "seconds", "detail"):
            table.add_column(col)
        for title, ok, dt, detail in steps.rows:
            table.add_row(title, "[green]PASS[/]" if ok else "[red]FAIL[/]", f"{dt:.1f}", detail)
        console.print(table)
        raise typer.Exit(0 if all(r[1] for r in steps.rows) else 1)
