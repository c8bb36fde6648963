"""Lab lifecycle commands: ``up``, ``status``, ``down``, ``exec``, ``doctor``, ``schema``, ``validate``.

Every command that prints data has ``--json`` with a pydantic model behind it, so scripts and the
dashboard read the same fields a person sees. Expected failures (bad topology, no such lab, a
backend that cannot build here) print one line through :func:`cnilab.sim.cli.output.fail`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from cnilab.sim.backends.base import BackendError
from cnilab.sim.backends.registry import backend_kind, backend_names, backends_help
from cnilab.sim.cli.options import ATTACH_BACKEND_OPTION, JSON_OPTION, LAB_OPTION, backend_param
from cnilab.sim.cli.output import console, emit, err_console, fail, lab_name_param
from cnilab.sim.facts import DIRECTIONS
from cnilab.sim.state import LabNotFound, LabState, list_labs
from cnilab.sim.topology.load import ConfigError, load_topology
from cnilab.sim.topology.plan import LabPlan, build_plan
from pydantic import BaseModel, Field

if TYPE_CHECKING:  # `down` does not need it: `up` imports it (startup time, issue 16)
    from cnilab.sim.edge.readiness import Readiness



# -- models behind --json ------------------------------------------------------------------------
class IfaceStatus(BaseModel):
    node: str
    name: str = Field(description="Plan interface (the L3 one: NAME.VLAN when tagged)")
    kernel_name: str = Field(description="Interface that really carries the addresses")
    mtu: int
    vlan: int | None
    addresses: list[str]


class LinkStatus(BaseModel):
    name: str
    role: str
    a: str = Field(description="node:iface")
    b: str
    mtu: int
    vlan: int | None
    gre: str | None = Field(description="GRE mode of the tunnel over this interconnect (kernel/userspace)")
    path_mtu: dict[str, int] | None = Field(
        description="direction -> expected path MTU inet <-> origin through this interconnect (plan.e2e_mtu: "
                    "the same figure the MTU probe expects; Magic Transit includes the ingress backhaul)")


class TunnelStatus(BaseModel):
    name: str
    node: str
    ifname: str
    mode: str
    pid: int | None
    alive: bool | None


class ProcessStatus(BaseModel):
    name: str
    node: str
    pid: int
    alive: bool
    log: str | None


class FaultStatus(BaseModel):
    target: str
    kind: str
    value: Any
    mechanism: str
    since: float


class NodeStatus(BaseModel):
    name: str
    role: str
    netns: str | None
    exists: bool


class LabStatus(BaseModel):
    """``cnilab status --json``: one object per lab (a list when several run and no --lab is given)."""

    lab: str
    backend: str
    status: str
    topology: str
    topology_path: str | None
    created: float
    mss_required: int
    nodes: list[NodeStatus]
    interfaces: list[IfaceStatus]
    links: list[LinkStatus]
    tunnels: list[TunnelStatus]
    processes: list[ProcessStatus]
    mechanisms: dict[str, str]
    faults: list[FaultStatus]
    notes: list[str] = Field(default_factory=list)


class UpResult(BaseModel):
    """``cnilab up --json``: the status of the new lab, how long it took, and what it waited for."""

    seconds: float
    daemons: bool
    status: LabStatus
    readiness: Readiness | None = Field(default=None, description="What `up` waited for; None with --no-wait")


class DownResult(BaseModel):
    """``cnilab down --json``: labs removed, orphans swept (``--all``), errors."""

    labs: list[str]
    orphan_namespaces: list[str] = Field(default_factory=list)
    orphan_processes: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="labs left alone (deployed by containerlab)")


def lab_status(st: LabState) -> LabStatus:
    """Build the status view from a state file (and the live system: namespaces, pids)."""
    from cnilab.sim.runtime.cleanup import netns_path

    plan = st.plan
    ifnames: dict[str, dict[str, str]] = st.extra.get("ifnames", {})
    gre_by_ic = {t.interconnect: next((r.mode for r in st.tunnels if r.name == t.name), None) for t in plan.tunnels}
    ifaces = [IfaceStatus(node=n.name, name=i.l3_name, kernel_name=ifnames.get(n.name, {}).get(i.l3_name, i.l3_name),
                          mtu=i.mtu, vlan=i.vlan, addresses=[str(a) for a in i.addresses])
              for n in plan.nodes for i in n.interfaces]
    links = []
    for lk in plan.links:
        vlan = plan.node(lk.a.node).iface(lk.a.iface).vlan
        links.append(LinkStatus(name=lk.name, role=lk.role, a=f"{lk.a.node}:{lk.a.iface}",
                                b=f"{lk.b.node}:{lk.b.iface}", mtu=lk.mtu, vlan=vlan,
                                gre=gre_by_ic.get(lk.interconnect) if lk.interconnect else None,
                                path_mtu={d: plan.e2e_mtu(lk.interconnect, d) for d in DIRECTIONS}
                                if lk.interconnect else None))
    nodes = []
    for n in plan.nodes:
        ns = st.namespaces.get(n.name)
        nodes.append(NodeStatus(name=n.name, role=n.role, netns=ns,
                                exists=bool(ns) and os.path.exists(netns_path(ns))))
    notes = [str(n) for n in st.extra.get("notes", [])]
    if plan.tunnels:
        src = st.extra.get("dataplane_source", "cnilab")
        notes.append("customer GRE end: " + ("built by cnilab from the plan (no customer.router.dataplane)"
                                             if src == "cnilab" else f"as declared in {src}"))
    return LabStatus(
        lab=st.lab, backend=st.backend, status=st.status, topology=plan.topology, topology_path=st.topology_path,
        created=st.created, mss_required=plan.mss_required, nodes=nodes, interfaces=ifaces, links=links,
        tunnels=[TunnelStatus(name=t.name, node=t.node, ifname=t.ifname, mode=t.mode,
                              pid=t.process.pid if t.process else None,
                              alive=t.process.alive() if t.process else None) for t in st.tunnels],
        processes=[ProcessStatus(name=p.name, node=p.node, pid=p.pid, alive=p.alive(), log=p.log)
                   for p in st.processes],
        mechanisms=dict(st.mechanisms),
        faults=[FaultStatus(target=f.target, kind=f.kind, value=f.value, mechanism=f.mechanism, since=f.since)
                for f in st.faults],
        notes=notes,
    )


# -- rendering -----------------------------------------------------------------------------------
def _yes(v: bool | None) -> str:
    return "-" if v is None else ("[green]yes[/]" if v else "[red]no[/]")


def render_status(s: LabStatus) -> None:
    from rich.table import Table

    console.print(f"[bold]lab {s.lab}[/] ({s.topology}, backend {s.backend}): [bold]{s.status}[/]; "
                  f"customer MSS clamp required: {s.mss_required}")
    t = Table("link", "role", "a", "b", "MTU", "VLAN", "GRE", "path MTU cf→cust / cust→cf (inet↔origin)", title="links")
    for lk in s.links:
        pm = f"{lk.path_mtu['cf_to_customer']} / {lk.path_mtu['customer_to_cf']}" if lk.path_mtu else ""
        t.add_row(lk.name, lk.role, lk.a, lk.b, str(lk.mtu), str(lk.vlan or ""), lk.gre or "", pm)
    console.print(t)
    if s.tunnels:
        t = Table("tunnel", "node", "ifname", "mode", "pid", "alive", title="GRE tunnels")
        for tu in s.tunnels:
            t.add_row(tu.name, tu.node, tu.ifname, tu.mode, str(tu.pid or ""), _yes(tu.alive))
        console.print(t)
    t = Table("node", "role", "namespace", "exists", title="nodes")
    for n in s.nodes:
        t.add_row(n.name, n.role, n.netns or "", _yes(n.exists))
    console.print(t)
    if s.processes:
        t = Table("process", "node", "pid", "alive", "log", title="processes")
        for p in s.processes:
            t.add_row(p.name, p.node, str(p.pid), _yes(p.alive), p.log or "")
        console.print(t)
    if s.faults:
        t = Table("target", "fault", "value", "mechanism", title="active faults")
        for f in s.faults:
            t.add_row(f.target, f.kind, "" if f.value is None else str(f.value), f.mechanism)
        console.print(t)
    for k, v in s.mechanisms.items():
        console.print(f"[dim]{k}:[/] {v}", highlight=False)
    for note in s.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Expected failures become one clear line, never a traceback."""
    try:
        yield
    except (ConfigError, LabNotFound, BackendError) as exc:
        fail(str(exc).strip())


def _plan(topology: Path, name: str | None, *, check_router: bool = True) -> LabPlan:
    """The plan, refused exactly as ``up`` refuses it: topology, then the customer's router config
    through the daemon's own parser (``validate`` runs the same, so "valid" means ``up`` accepts it)."""
    topo = load_topology(topology)
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", name):
        raise ConfigError(topology, [f"--name = {name!r}: lab names are lowercase letters, digits and '-', "
                                     "at most 32 characters"])
    try:
        plan = build_plan(topo, name)
    except ValueError as exc:
        raise ConfigError(topology, [str(exc)]) from exc
    if check_router and plan.customer_router.config is not None:
        from cnilab.sim.routers import check_customer_config  # also names a config of the other daemon's kind

        check_customer_config(plan)
    return plan


# -- commands ------------------------------------------------------------------------------------
def up(topology: Path = typer.Argument(..., help="Topology YAML (see topologies/)"),
       name: str = typer.Option(None, "--name", "--lab", "-n", help="Lab name (default: the topology's name)",
                               callback=lab_name_param),
       backend: str = typer.Option(backend_names(builds=True)[0], "--backend",
                                   callback=backend_param(builds=True),
                                   help=backends_help(builds=True)),
       no_daemons: bool = typer.Option(False, "--no-daemons", help="Dataplane only: no ExaBGP/FRR/BIRD"),
       gre: str = typer.Option("auto", "--gre", help="GRE implementation: auto, kernel or userspace"),
       timeout: float = typer.Option(None, "--timeout", help="Seconds to wait for every BGP session Established "
                                     "and BFD Up (default: derived from the plan's hold time and BFD timers "
                                     "plus slack)"),
       wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for BGP Established (and BFD Up where "
                                 "configured) before returning; --no-wait returns once the daemons run"),
       as_json: bool = JSON_OPTION) -> None:
    """Build a lab from TOPOLOGY and leave it running (remove it with `cnilab down`).

    Exit 0 when every session is Established (and BFD Up where configured), 1 when the lab is up but
    a session is not (the lab stays for `cnilab bgp`), 2 when the input is refused (topology, or a
    router config the daemon's parser refuses) and nothing is built.
    """
    from cnilab.sim.edge.readiness import Readiness, bring_up_budget, wait_lab_sessions
    from cnilab.sim.lab.lab import Lab

    with _errors():
        plan = _plan(topology, name)
        budget = timeout if timeout is not None else bring_up_budget(plan)
        t0 = time.monotonic()
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        readiness = None
        with err_console.status(f"bringing up {plan.lab}") as spinner:
            def progress(msg: str) -> None:
                spinner.update(f"{plan.lab}: {msg}")

            with Lab.create(plan, backend, topology_path=topology.resolve(), daemons=not no_daemons,
                            ready_timeout=budget, gre=gre, progress=progress) as lab:
                lab.detach()
            if wait and not no_daemons and plan.sessions:
                readiness = wait_lab_sessions(lab, budget, progress)
        UpResult.model_rebuild(_types_namespace={"Readiness": Readiness})
        result = UpResult(seconds=round(time.monotonic() - t0, 3), daemons=not no_daemons,
                          status=lab_status(lab.state), readiness=readiness)

    def render(r: UpResult) -> None:
        render_status(r.status)
        if r.readiness is None:
            console.print(f"[green]up[/] in {r.seconds:.2f} s" + (" (not waiting for BGP: --no-wait)"
                                                                   if not no_daemons else ""))
        elif r.readiness.ready:
            console.print(f"[green]up[/] in {r.seconds:.2f} s: every BGP session Established"
                          + (", BFD Up" if any(s.bfd for s in plan.sessions) else ""))
        else:
            how = "stopped early: waiting cannot fix this" if r.readiness.failed_fast else \
                f"not ready after {r.readiness.waited_s:.0f} s (budget {r.readiness.budget_s:.0f} s)"
            console.print(f"[red]lab {r.status.lab} is up but not ready[/] ({how}):", highlight=False)
            for p in r.readiness.problems:
                console.print(f"  {p}", highlight=False, markup=False)
            console.print(f"the lab stays up: `cnilab bgp --lab {r.status.lab}`; remove it with "
                          f"`cnilab down --lab {r.status.lab}`", highlight=False)

    emit(result, as_json, render)
    if readiness is not None and not readiness.ready:
        raise typer.Exit(1)


def status(lab: str = LAB_OPTION, as_json: bool = JSON_OPTION, backend: str = ATTACH_BACKEND_OPTION) -> None:
    """Nodes, links (MTU/VLAN/GRE), tunnels, processes, mechanisms and active faults."""
    from cnilab.sim.lab.lab import Lab, resolve_lab

    with _errors():
        attach_only = backend is not None and not backend_kind(backend).builds
        if attach_only or (lab is not None and not LabState.exists(lab)):
            from cnilab.sim.lab import attach_clab

            if attach_only or attach_clab.deployed(lab):
                emit(lab_status(Lab.attach(lab, backend or attach_clab.BACKEND).state), as_json, render_status)
                return
        if lab is None and len(list_labs()) > 1:
            states = [lab_status(LabState.load(n)) for n in list_labs()]
            emit(states, as_json, lambda ss: [render_status(s) for s in ss])
            return
        if lab is None and not list_labs():
            emit([], as_json, lambda _: console.print("no lab is running"))
            return
        st = LabState.load(resolve_lab(lab))
        if not backend_kind(st.backend).builds:  # re-read the deployment: its own tool may have changed it
            st = Lab.attach(st.lab).state
        emit(lab_status(st), as_json, render_status)


def exec_(node: str = typer.Argument(..., help="Node: cf, cust, inet, origin, transit, colo"),
          cmd: list[str] = typer.Argument(..., help="Command to run inside the node (after --)"),
          lab: str = LAB_OPTION, backend: str = ATTACH_BACKEND_OPTION) -> None:
    """Run CMD inside NODE of a lab; exits with the command's status."""
    from cnilab.sim.lab.lab import Lab

    lab, backend, cmd = split_exec_args(lab, backend, cmd)
    if not cmd:
        fail("no command given: cnilab exec NODE -- CMD...")
    with _errors():
        handle = Lab.attach(lab, backend)
        if node not in {n.name for n in handle.plan.nodes}:
            fail(f"lab {handle.name} has no node {node!r}; nodes: {', '.join(n.name for n in handle.plan.nodes)}")
        from cnilab.sim.routers import cli_argv

        code = handle.interactive(node, cli_argv(handle, node, cmd))
    raise typer.Exit(code)


EXEC_OPTIONS = {"--lab": "lab", "-l": "lab", "--backend": "backend"}


def split_exec_args(lab: str | None, backend: str | None, argv: list[str]) -> tuple[str | None, str | None,
                                                                                   list[str]]:
    """``exec NODE [--lab X] [--backend B] [--] CMD...``: cnilab's own options may follow NODE.

    Interspersed options are off so ``exec cust ip -br a`` passes ``-br`` to ip; cnilab's options are
    therefore taken from the front of the rest, up to ``--`` or the first word that is not one."""
    opts: dict[str, str | None] = {"lab": lab, "backend": backend}
    rest = list(argv)
    while rest:
        head = rest[0]
        name, _eq, value = head.partition("=")
        if name in EXEC_OPTIONS and _eq:
            opts[EXEC_OPTIONS[name]] = value
            rest = rest[1:]
        elif head in EXEC_OPTIONS:
            if len(rest) < 2:
                fail(f"{head} needs a value: cnilab exec NODE {head} VALUE -- CMD...")
            opts[EXEC_OPTIONS[head]] = rest[1]
            rest = rest[2:]
        else:
            break
    if rest and rest[0] == "--":
        rest = rest[1:]
    return opts["lab"], opts["backend"], rest


def doctor(as_json: bool = JSON_OPTION) -> None:
    """Test each kernel feature and binary for real; say what the lab uses instead of what is missing."""
    from cnilab.sim.dataplane.capabilities import DoctorReport
    from cnilab.sim.dataplane.capabilities import doctor as run_doctor

    def render(r: DoctorReport) -> None:
        from rich.table import Table

        t = Table("feature", "ok", "detail", "lab uses instead", title=f"kernel {r.kernel}")
        for f in r.features:
            t.add_row(f.name, _yes(f.ok), f.detail, f.fallback or "")
        console.print(t)
        t = Table("binary", "found", "path", title="binaries")
        for b in r.binaries:
            t.add_row(b.name, _yes(b.ok), b.path or "")
        console.print(t)
        console.print("netns labs: " + ("[green]ready[/]" if r.lab_ready else "[red]cannot be built here[/]"))

    emit(run_doctor(), as_json, render)


def schema(check: bool = typer.Option(False, "--check", help="Fail if the committed schema is stale"),
           output: Path = typer.Option(None, "--output", "-o", help="Write here instead of the repo copy")) -> None:
    """Write (or --check) topologies/schema/topology.schema.json from the pydantic Topology model."""
    from cnilab.sim.topology import schema as sch

    path = output or sch.SCHEMA_PATH
    if check:
        if not sch.schema_is_current(path):
            fail(f"{path} is out of date with sim/topology/model.py; run `cnilab schema`", code=1)
        console.print(f"{path} is current")
        return
    console.print(f"wrote {sch.write_schema(path)}")


def validate(topology: Path = typer.Argument(..., help="Topology YAML"),
             as_json: bool = JSON_OPTION) -> None:
    """Check a topology file and its router config (the same checks `up` runs) and show the lab it
    would build (nothing is created). Exit 2 when either is refused."""
    with _errors():
        plan = _plan(topology, None)
    summary = {"topology": plan.topology, "valid": True, "nodes": [n.name for n in plan.nodes],
               "links": [lk.name for lk in plan.links], "tunnels": [t.name for t in plan.tunnels],
               "sessions": [s.key for s in plan.sessions], "path_mtu": plan.path_mtu,
               "mss_required": plan.mss_required}
    emit(summary, as_json, lambda s: console.print(
        f"[green]valid[/]: {s['topology']}: nodes {', '.join(s['nodes'])}; tunnels {', '.join(s['tunnels']) or 'none'};"
        f" sessions {', '.join(s['sessions'])}; MSS clamp {s['mss_required']}"))


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(status)
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_)
    app.command()(doctor)
    app.command()(schema)
    app.command()(validate)
