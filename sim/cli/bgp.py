"""``cnilab bgp``, ``cnilab bfd``, ``cnilab routes NODE``: what the Cloudflare edge and the nodes see.

All three read live state (the edge driver's control socket, ``ip route`` in the node) rather
than the plan, so they answer "what is actually happening" during a rehearsal. ``bgp`` exits 1
when a session is not Established, so it doubles as a CI check.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from cnilab.sim.cli.options import ATTACH_BACKEND_HELP, backend_param
from cnilab.sim.cli.output import console, emit, fail, lab_name_param
from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.handle import LabHandle
from rich.markup import escape
from rich.table import Table

LabOpt = Annotated[str | None, typer.Option("--lab", help="Lab name (default: the only running lab)",
                                           callback=lab_name_param)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
BackendOpt = Annotated[str | None, typer.Option("--backend", callback=backend_param(),
                                                help=ATTACH_BACKEND_HELP)]


def _lab(name: str | None, backend: str | None = None):
    from cnilab.sim.backends.base import BackendError
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.state import LabNotFound

    try:
        return Lab.attach(name, backend)
    except (LabNotFound, LookupError, ValueError, BackendError) as exc:
        fail(str(exc))


def _client(lab: LabHandle) -> EdgeClient:
    from cnilab.sim.edge import client_for

    return client_for(lab)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _state(s: Any) -> str:
    if s.up:
        return f"[green]{s.state}[/]"
    return "[yellow]starting[/]" if s.starting else f"[red]{s.state}[/]"


def _timers(s: Any) -> str:
    """Negotiated hold/keepalive, e.g. ``9/3 (yours 9)``; before any OPEN, Cloudflare's configured hold."""
    if s.negotiated_hold_s is None:
        return f"- (Cloudflare {s.hold_time}/-, no OPEN yet)" if s.hold_time is not None else "-"
    ka = s.keepalive_s if s.keepalive_s is not None else "-"
    theirs = f", your keepalives every {s.peer_keepalive_s:g} s" if s.peer_keepalive_s else ""
    return f"{s.negotiated_hold_s}/{ka} s (your OPEN: hold {s.peer_hold_time} s{theirs})"


def _last(transitions: list[Any], now: float) -> str:
    if not transitions:
        return "-"
    t = transitions[-1]
    return f"{t.state} {_dur(now - t.time)} ago"


def _last_bfd(transitions: list[dict[str, Any]], now: float) -> str:
    if not transitions:
        return "-"
    t = transitions[-1]
    return f"{t['state']} ({t.get('reason') or '-'}) {_dur(now - t['time'])} ago"


def render_sessions(rows: list[Any]) -> None:
    """The sessions table, then per session: timers, flaps and last change, then each refused prefix,
    warning and error (each said once). Details go below the table so it fits an 80-column terminal."""
    t = Table(title="BGP at the Cloudflare edge (AS13335)")
    for col in ("session", "state", "up/down", "sent", "rcvd", "accepted", "rejected", "BFD"):
        t.add_column(col, no_wrap=True)
    now = time.time()
    for s in rows:
        t.add_row(s.key, _state(s),
                  _dur(s.uptime_s if s.up else (now - s.since if s.since else None)),
                  str(s.prefixes_sent), str(s.prefixes_received), str(s.prefixes_accepted),
                  str(s.prefixes_rejected), (s.bfd_state or "?") if s.bfd else "-")
    console.print(t)
    for s in rows:
        bfd = f"; BFD flaps {s.bfd_flaps}" if s.bfd else ""
        console.print(f"  {s.key}: peer {s.peer} AS{s.peer_asn}; hold/keepalive {_timers(s)}; flaps {s.flaps}, "
                      f"last change {_last(s.transitions, now)}{bfd}", highlight=False, markup=False, soft_wrap=True)
        for r in s.rejected:
            console.print(f"  {s.key}: rejected ({r.rule}) {r.reason}", highlight=False, markup=False, soft_wrap=True)
        for w in s.warnings:
            console.print(f"  [yellow]WARN[/] {s.key}: {escape(w)}", highlight=False, soft_wrap=True)
        if s.last_error:
            style = "yellow" if s.starting else "red"
            console.print(f"  [{style}]{s.key}[/]: {escape(s.last_error)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("bgp")
    def bgp(lab: LabOpt = None, as_json: JsonOpt = False,
               backend: BackendOpt = None) -> None:
        """BGP sessions at the Cloudflare edge: state, uptime, prefixes and the reason for any failure."""
        from cnilab.sim.edge.control import ControlError

        handle = _lab(lab, backend)
        try:
            sessions = _client(handle).sessions()
        except ControlError as exc:
            fail(str(exc))

        def timers(edge_warned: set[str]) -> None:
            """The hold/keepalive the customer's own daemon negotiated (the edge's view is above); a WARN
            the edge already printed for a session is not repeated in other words."""
            from cnilab.sim.routers import customer_bgp
            from cnilab.sim.routers.crosscheck import MIN_HOLD_S

            try:
                mine = [n for n in customer_bgp(handle) if n.get("session") and n.get("hold_time") is not None]
            except Exception as exc:  # the daemon may be restarting: say so, the table still stands
                console.print(f"  customer router timers unavailable: {exc}", highlight=False)
                return
            for n in sorted(mine, key=lambda n: n["session"]):
                hold, ka = n["hold_time"], n["keepalive"]
                warn = (f" [yellow]WARN hold under {MIN_HOLD_S} s[/]" if 0 < hold < MIN_HOLD_S else
                        " [yellow]WARN keepalive >= hold[/]" if ka is not None and hold and ka >= hold else "")
                if n["session"] in edge_warned:
                    warn = " (see the WARN above)" if warn else ""
                console.print(f"  {n['session']}: your router negotiated hold {hold} s, keepalive {ka} s{warn}",
                              highlight=False)

        def render(rows) -> None:
            render_sessions(rows)
            timers({s.key for s in rows if s.warnings})

        emit(sessions, as_json, render)
        raise typer.Exit(0 if sessions and all(s.up for s in sessions) else 1)

    @app.command("bfd")
    def bfd(lab: LabOpt = None, as_json: JsonOpt = False,
               backend: BackendOpt = None) -> None:
        """BFD sessions of the edge's speaker: state, negotiated timers, detection time, last diagnostic."""
        from cnilab.sim.edge.control import ControlError

        try:
            rows = _client(_lab(lab, backend)).bfd()
        except ControlError as exc:
            fail(str(exc))

        def render(items) -> None:
            if not items:
                console.print("no BFD sessions (BFD is off on every interconnect, or not supported by the dataplane)")
                return
            t = Table(title="BFD at the Cloudflare edge")
            for col in ("local -> peer", "state", "remote", "tx/rx ms", "mult", "detect ms", "diag", "since"):
                t.add_column(col)
            now = time.time()
            for b in items:
                st = b.get("state", "?")
                t.add_row(f"{b.get('local')} -> {b.get('peer')}", f"[green]{st}[/]" if st == "Up" else f"[red]{st}[/]",
                          str(b.get("remote_state", "")),
                          f"{b.get('negotiated_tx_ms', 0):.0f}/{b.get('negotiated_rx_ms', 0):.0f}",
                          str(b.get("multiplier", "")), f"{b.get('detection_ms', 0):.0f}",
                          f"{b.get('local_diag_name', '')}/{b.get('remote_diag_name', '')}",
                          _dur(now - b["last_change"]) if b.get("last_change") else "-")
            console.print(t)
            for b in items:
                console.print(f"  {b.get('session') or b.get('peer')}: flaps {b.get('flaps', 0)}, last change "
                              f"{_last_bfd(b.get('transitions') or [], now)}", highlight=False, markup=False,
                              soft_wrap=True)

        emit(rows, as_json, render)

    @app.command("routes")
    def routes(node: Annotated[str, typer.Argument(help="Node: cf, cust, inet, origin, transit, colo")],
               lab: LabOpt = None, as_json: JsonOpt = False,
               backend: BackendOpt = None) -> None:
        """The routing table NODE ended up with (kernel), plus the router daemon's view for cust and
        what the edge received (with accept/reject reasons) for cf."""
        lb = _lab(lab, backend)
        if node not in {n.name for n in lb.plan.nodes}:
            fail(f"no node {node!r} in lab {lb.name} (nodes: {', '.join(n.name for n in lb.plan.nodes)})")
        out: dict[str, Any] = {"node": node}
        for fam in ("4", "6"):
            r = lb.run(node, ["ip", f"-{fam}", "route", "show"], check=False)
            out[f"ipv{fam}"] = r.stdout.splitlines() if r.returncode == 0 else [f"error: {r.stderr.strip()}"]
        if node == "cf":
            from cnilab.sim.edge.control import ControlError

            try:
                out["edge"] = _client(lb).routes().model_dump(mode="json")
            except ControlError as exc:
                out["edge_error"] = str(exc)
        if node == "cust":
            try:
                from cnilab.sim.routers import customer_routes

                out["daemon"] = customer_routes(lb)
            except Exception as exc:  # the router module is optional; say why its view is missing
                out["daemon_error"] = str(exc)

        def render(o: dict[str, Any]) -> None:
            for fam in ("ipv4", "ipv6"):
                console.print(f"[bold]{node} kernel {fam}[/]")
                for line in o[fam]:
                    console.print(f"  {line}", highlight=False)
            if "edge" in o:
                console.print("[bold]received at the edge[/]")
                for r in o["edge"]["received"]:
                    mark = "[green]accepted[/]" if r["accepted"] else "[red]rejected[/]"
                    best = " best" if r["best"] else ""
                    attrs = f" path {' '.join(map(str, r.get('as_path') or [])) or '-'}"
                    attrs += f" MED {r['med']}" if r.get("med") else ""
                    attrs += f" communities {' '.join(r['communities'])}" if r.get("communities") else ""
                    attrs += f" RPKI {r['rov']}" if r.get("rov") else ""
                    console.print(f"  {r['prefix']} from {r['session']}:{attrs}: {mark}{best} - {r['reason']}",
                                  highlight=False)
                for p, e in o["edge"].get("errors", {}).items():
                    console.print(f"  [red]{p}[/]: {e}", highlight=False)
            for key in ("edge_error", "daemon_error"):
                if key in o:
                    console.print(f"[yellow]{key.replace('_', ' ')}:[/] {o[key]}", highlight=False)
            if "daemon" in o:
                console.print("[bold]router daemon view[/]")
                console.print(o["daemon"], highlight=False, markup=False)

        emit(out, as_json, render)
