"""The object that owns a running lab: bring-up with guaranteed undo, attach, teardown.

``Lab.create`` is a context manager built on :class:`contextlib.ExitStack`: each step registers
its own undo as it succeeds, so an exception at any point (a netlink error, a daemon that will not
start, Ctrl-C) removes exactly what had been made and nothing else. A caller that wants the lab to
outlive it (``cnilab up``) calls :meth:`Lab.detach`; the state file then owns the lab and
``cnilab down`` (from any shell) removes it. Tests simply leave the ``with`` block.

Contract for other modules (edge peer, routers, probes, faults)::

    lab.name / lab.plan / lab.state (fresh snapshot) / lab.backend
    lab.run(node, argv, check=True)          -> CompletedProcess (inside the node)
    lab.spawn(node, name, argv, log=None)    -> ProcessRecord, recorded in the state file
    lab.node_dir(node)                       -> per-node dir for configs, logs, sockets
    lab.netns_path(node)                     -> /run/netns/... (pyroute2, setns)
    lab.ifname(node, l3_name)                -> real kernel interface for a plan name (VLAN fallback)
    with lab.update() as st: ...             -> locked read-modify-write of the state file
    lab.destroy()
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cnilab.sim.backends.base import Backend, BackendError
from cnilab.sim.backends.registry import backend_kind, make_backend
from cnilab.sim.runtime import cleanup, process
from cnilab.sim.runtime.paths import lab_dir, ns_name, state_root
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.state import LabNotFound, LabState, TunnelRecord, list_labs, locked, update
from cnilab.sim.topology.plan import COLO, CUSTOMER, EDGE, INTERNET, ORIGIN, PEER, TRANSIT, LabPlan

NODE_NAMES = (EDGE, CUSTOMER, INTERNET, ORIGIN, TRANSIT, COLO, PEER)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

LAB_NS_RE = re.compile(r"cnilab-[a-z0-9][a-z0-9-]*-(" + "|".join(NODE_NAMES) + ")")
"""Untagged namespaces are only swept when named like a lab node (a crash before tagging)."""


class LabExists(BackendError):
    """``up`` with the name of a lab that already runs: refused, never clobbered."""


class Lab:
    """A running lab: its plan, its state file and the backend that built it."""

    def __init__(self, state: LabState, backend: Backend) -> None:
        self.name = state.lab
        self.plan: LabPlan = state.plan
        self.backend = backend
        self._state = state
        self._stack: contextlib.ExitStack | None = None

    # -- bring-up ---------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def create(cls, plan: LabPlan, backend: str = "netns", *, topology_path: str | Path | None = None,
               daemons: bool = True, ready_timeout: float = 60.0, gre: str = "auto",
               progress: Progress | None = None) -> Iterator[Lab]:
        """Build ``plan`` and yield the running lab; removed on exit unless :meth:`detach` was called."""
        say = progress or (lambda _msg: None)
        be = make_backend(backend, plan.lab, lab_dir(plan.lab))
        be.preflight()  # privileges, the container engine: fail before anything exists
        with contextlib.ExitStack() as stack:
            state = _claim(plan, backend, topology_path)
            lab = cls(state, be)
            # Registered first so it runs last: whatever the steps below (or daemons started by
            # other modules through lab.spawn) left, the state-file-driven teardown removes it.
            stack.callback(lab._teardown_quietly)
            lab._stack = stack
            lab._build(stack, say, gre=gre)
            stack.callback(lab._stop_processes)  # daemons get a clean SIGTERM before namespaces go
            if daemons:
                lab._start_daemons(say, ready_timeout)
            with lab.update() as st:
                st.status = "running"
            say(f"lab {plan.lab} is up")
            yield lab
            if lab._stack is None:  # detached: the state file owns the lab now
                stack.pop_all()

    def _build(self, stack: contextlib.ExitStack, say: Progress, gre: str) -> None:
        be = self.backend
        for node in self.plan.nodes:
            say(f"node {node.name}")
            be.create_node(node)
            with self.update() as st:
                st.namespaces[node.name] = ns_name(self.name, node.name)
            stack.callback(self._remove_node, node.name)
            self.node_dir(node.name)
        for link in self.plan.links:
            say(f"link {link.name}")
            be.create_link(link, self.plan)
        for node in self.plan.nodes:
            say(f"addresses and routes on {node.name}")
            be.configure_node(node)
        with self.update() as st:
            if be.vlan_mode:
                st.mechanisms["vlan"] = be.vlan_mode
            st.extra["ifnames"] = be.ifnames
        if self.plan.tunnels:
            say("GRE tunnels")
            self._build_tunnels(stack, gre)

    def _build_tunnels(self, stack: contextlib.ExitStack, requested: str) -> None:
        from cnilab.sim.dataplane import gre as gremod

        mode, reason = gremod.gre_mode(requested)
        dp = self.plan.customer_dataplane
        for tun in self.plan.tunnels:
            ends = [("cf", tun.cf_ifname, tun.cf_outer, tun.cust_outer, tun.cf_inner, tun.cf_inner6, tun.mtu)]
            if dp is None:  # no declaration: cnilab builds the customer's end too (said in every report)
                ends.append(("cust", tun.cust_ifname, tun.cust_outer, tun.cf_outer, tun.cust_inner, tun.cust_inner6,
                             tun.mtu))
            for node, ifname, local, remote, inner, inner6, mtu in ends:
                self._build_gre_end(stack, gremod, mode, node, tun.name, ifname, local, remote, inner, mtu,
                                    inner6=inner6)
        if dp is not None:
            # The customer's end exactly as declared: its name, addresses, MTU (or the kernel's
            # default), key and state; then its own route and netfilter lines, in file order.
            for d in dp.tunnels:
                self._build_gre_end(stack, gremod, mode, CUSTOMER, d.name, d.name, d.local, d.remote, d.address,
                                    d.mtu, inner6=d.address6, key=d.key, ttl=d.ttl, up=d.up)
            from cnilab.sim.dataplane.customer import run_declared_commands

            run_declared_commands(self, dp)
        with self.update() as st:
            st.mechanisms["gre"] = f"{mode}: {reason}"
            st.extra["dataplane_source"] = dp.source if dp is not None else "cnilab"

    def _build_gre_end(self, stack: contextlib.ExitStack, gremod, mode: str, node: str, name: str, ifname: str,
                       local, remote, inner, mtu: int | None, **kw) -> None:
        rec = TunnelRecord(name=name, node=node, ifname=ifname, mode=mode)
        if mode == "kernel":
            gremod.create_kernel_gre(self.netns_path(node), ifname, local, remote, inner, mtu,
                                     **{k: v for k, v in kw.items() if v is not None})
        else:
            logfile = self.node_dir(node) / f"{ifname}.log"

            def host_spawn(pname: str, argv: list[str], node: str = node, logfile: Path = logfile) -> ProcessRecord:
                return process.spawn(pname, node, argv, logfile)

            rec.process = gremod.start_userspace_gre(host_spawn, self.netns_path(node), ifname, local, remote, inner,
                                                     mtu, logfile, **kw)
            stack.callback(rec.process.stop)
        with self.update() as st:
            st.tunnels.append(rec)

    def _start_daemons(self, say: Progress, ready_timeout: float) -> None:
        """Edge peer, customer router, Magic Transit tunnels and health checks, then wait until the
        edge's driver answers."""
        from cnilab.sim.edge import start_edge, wait_ready
        from cnilab.sim.magic.lab import start_magic
        from cnilab.sim.routers import start_customer
        from cnilab.sim.transit import start_third_parties

        say("edge peer (ExaBGP, BFD) on cf")
        start_edge(self)
        say("customer router on cust")
        start_customer(self)
        say("third-party BGP speakers (transit, peer: when the plan has them)")
        start_third_parties(self)
        say("Magic tunnels and health checks")
        start_magic(self)
        say("waiting for BGP")
        wait_ready(self, ready_timeout)

    def detach(self) -> None:
        """Keep the lab running after the ``with`` block; ``cnilab down`` removes it later."""
        self._stack = None

    # -- attach -----------------------------------------------------------------------------------
    @classmethod
    def attach(cls, name: str | None = None, backend: str | None = None) -> Lab:
        """Reopen a running lab from its state file; ``name`` may be omitted when only one runs.

        ``backend="containerlab"`` (or a ``name`` with no state file whose ``clab-NAME-*``
        containers exist) attaches to a lab containerlab deployed: see :mod:`cnilab.sim.lab.attach_clab`.
        """
        external = backend is not None and not backend_kind(backend).builds
        if external or (name and not LabState.exists(name)):
            from cnilab.sim.lab import attach_clab

            if external or attach_clab.deployed(name or ""):
                if not name:
                    name = resolve_lab(None)
                return attach_clab.attach(name)
        name = resolve_lab(name)
        state = LabState.load(name)
        if not backend_kind(state.backend).builds:
            from cnilab.sim.lab import attach_clab

            return attach_clab.attach(name)
        be = make_backend(state.backend, name, lab_dir(name))
        be.adopt(list(state.namespaces) or [n.name for n in state.plan.nodes])
        be.ifnames = dict(state.extra.get("ifnames", {}))
        return cls(state, be)

    # -- contract for other modules ---------------------------------------------------------------
    @property
    def state(self) -> LabState:
        """This process's view of the state file. Direct edits of ``extra``/``control``/``mechanisms``
        are kept and written at the next :meth:`update`/:meth:`save`; other processes' changes
        appear after :meth:`refresh`. Lists (processes, tunnels, faults) change only via update()."""
        return self._state

    def _merged(self, disk: LabState) -> LabState:
        mem = self._state
        disk.extra = {**disk.extra, **mem.extra}
        disk.control = {**disk.control, **mem.control}
        disk.mechanisms = {**disk.mechanisms, **mem.mechanisms}
        return disk

    def refresh(self) -> LabState:
        """Reload the state file (keeping this process's unsaved dict edits)."""
        with contextlib.suppress(LabNotFound):
            self._state = self._merged(LabState.load(self.name))
        return self._state

    @contextlib.contextmanager
    def update(self) -> Iterator[LabState]:
        """Locked read-modify-write of the state file; also persists direct edits of ``lab.state``."""
        with update(self.name) as st:
            self._merged(st)
            yield st
        self._state = st

    def save(self) -> None:
        with self.update():
            pass

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    def node_dir(self, node: str) -> Path:
        d = self.dir / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def netns_path(self, node: str) -> str:
        return self.backend.netns_path(node)

    def ifname(self, node: str, l3_name: str) -> str:
        """Kernel name of the plan interface ``l3_name`` (``ewr1.100`` is ``ewr1`` without 8021q)."""
        return self.state.extra.get("ifnames", {}).get(node, {}).get(l3_name, l3_name)

    def run(self, node: str, argv: list[str], check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.backend.exec(node, argv, check=check, timeout=timeout, input=input)

    def spawn(self, node: str, name: str, argv: list[str], log: Path | None = None,
              env: dict[str, str] | None = None) -> ProcessRecord:
        """Start a daemon in ``node`` and record it, so ``down`` stops it even from another shell."""
        rec = self.backend.spawn(node, name, argv, log=log, env=env)
        with self.update() as st:
            st.processes.append(rec)
        return rec

    def interactive(self, node: str, argv: list[str]) -> int:
        """Run ``argv`` in ``node`` with the caller's terminal; returns its exit status."""
        return subprocess.run(self.backend.command(node, argv)).returncode

    # -- teardown ---------------------------------------------------------------------------------
    def destroy(self) -> None:
        """Stop every recorded process, remove tunnels, namespaces and the lab dir. Idempotent.

        A containerlab-deployed lab is not ours to remove: refused while it is deployed."""
        if not backend_kind(self.backend.name).builds:
            from cnilab.sim.lab.attach_clab import forget

            forget(self)
            return
        errors: list[str] = []
        with contextlib.suppress(LabNotFound, OSError), self.update() as st:
            st.status = "stopping"
        st = self.refresh()
        records = [*st.processes, *(t.process for t in st.tunnels if t.process),
                   *(f.process for f in st.faults if f.process)]
        for rec, exc in process.stop_all(list(reversed(records))):
            errors.append(f"process {rec.name} (pid {rec.pid}): {exc}")
        try:
            self.backend.destroy()
        except BackendError as exc:
            errors.append(str(exc))
        # Anything still mentioning the lab dir (a helper that escaped its namespace) goes too.
        cleanup.kill_pids(cleanup.pids_using_dir(str(self.dir)))
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():
            errors.append(f"cannot remove {self.dir}")
        if errors:
            raise BackendError(f"lab {self.name}: teardown incomplete: " + "; ".join(errors))

    def _stop_processes(self) -> None:
        for rec in reversed(self.refresh().processes):
            with contextlib.suppress(OSError):
                rec.stop()

    def _teardown_quietly(self) -> None:
        try:
            self.destroy()
        except BackendError as exc:
            log.error("%s", exc)

    def _remove_node(self, node: str) -> None:
        cleanup.remove_netns(ns_name(self.name, node))


def _claim(plan: LabPlan, backend: str, topology_path: str | Path | None) -> LabState:
    """Write the state file first (status starting), atomically refusing a name already in use."""
    try:
        return _claim_locked(plan, backend, topology_path)
    except LabExists:
        d = lab_dir(plan.lab)
        if not (d / "state.json").exists():  # only the lock file we just made: leave nothing behind
            shutil.rmtree(d, ignore_errors=True)
        raise


def _claim_locked(plan: LabPlan, backend: str, topology_path: str | Path | None) -> LabState:
    with locked(plan.lab):
        if LabState.exists(plan.lab):
            raise LabExists(f"a lab named {plan.lab!r} already exists (state {lab_dir(plan.lab) / 'state.json'}); "
                            f"run `cnilab down --lab {plan.lab}` first or choose another --name")
        clash = [ns for ns in cleanup.list_cnilab_netns(f"cnilab-{plan.lab}-")
                 if ns.removeprefix(f"cnilab-{plan.lab}-") in {n.name for n in plan.nodes}]
        if clash:
            raise LabExists(f"namespace {clash[0]} already exists: a lab named {plan.lab!r} runs from another "
                            "state dir; choose another --name")
        state = LabState(lab=plan.lab, backend=backend,  # type: ignore[arg-type]
                         topology_path=str(topology_path) if topology_path else None, plan=plan)
        state.save()
    return state


def resolve_lab(name: str | None) -> str:
    """The lab to act on: ``name``, or the only running one."""
    if name:
        if not LabState.exists(name):
            raise LabNotFound(name)
        return name
    labs = list_labs()
    if len(labs) == 1:
        return labs[0]
    exc = LabNotFound("")
    exc.args = ("no lab is running (start one with `cnilab up TOPOLOGY`)",) if not labs else (
        f"several labs are running ({', '.join(labs)}); choose one with --lab",)
    raise exc


def _owned_by_this_root(owner: Path) -> bool:
    """Whether a namespace's owner tag points into this process's state root (``CNILAB_STATE_DIR``)."""
    try:
        return owner.resolve().is_relative_to((state_root() / "labs").resolve())
    except OSError:
        return False


def lab_namespaces(name: str) -> list[str]:
    """Namespaces of lab ``name`` in *this* state root: tagged with its lab dir, or (a crash between
    creating and tagging) untagged and named exactly like one of a lab's nodes. A namespace
    another state root's lab tagged is never among them."""
    mine = lab_dir(name).resolve()
    out = []
    for ns in cleanup.list_cnilab_netns(f"cnilab-{name}-"):
        owner = cleanup.netns_owner(ns)
        tagged_mine = owner is not None and owner.resolve() == mine
        if tagged_mine or (owner is None and ns.removeprefix(f"cnilab-{name}-") in NODE_NAMES):
            out.append(ns)
    return out


def down_lab(name: str, backend: str | None = None) -> dict[str, list[str]]:
    """Remove lab ``name`` and everything tagged with it, even when its state file is missing or
    partial (a ``cnilab up`` killed at any point); report what was removed.

    The state file lists namespaces only once they are made, so it can lag the kernel by one node:
    the sweep by owner tag is what makes a killed ``up`` fully removable.
    """
    from cnilab.sim.backends.containerlab import DeployedByContainerlab

    report: dict[str, list[str]] = {"labs": [], "orphan_namespaces": [], "orphan_processes": [], "errors": [],
                                    "skipped": []}
    had_state = LabState.exists(name)
    if not had_state and backend is None:
        from cnilab.sim.lab import attach_clab

        if attach_clab.deployed(name):  # containerlab's lab: attach decides (refused while deployed)
            backend = attach_clab.BACKEND
    if had_state or (backend is not None and not backend_kind(backend).builds):
        try:
            Lab.attach(name, backend).destroy()
            report["labs"].append(name)
        except DeployedByContainerlab:
            raise
        except (BackendError, LabNotFound, ValueError) as exc:  # partial state: the sweep below finishes
            report["errors"].append(f"{name}: {exc}")
    for ns in lab_namespaces(name):
        report["orphan_processes"] += [str(p) for p in cleanup.remove_netns(ns)]
        report["orphan_namespaces"].append(ns)
    if not had_state:  # containers of a docker lab killed mid-`up`
        from cnilab.sim.backends.docker import sweep_lab

        report["orphan_namespaces"] += [f"container {c}" for c in sweep_lab(name)]
    d = lab_dir(name)
    report["orphan_processes"] += [str(p) for p in cleanup.kill_pids(cleanup.pids_using_dir(str(d)))]
    for node in NODE_NAMES:  # e.g. a userspace GRE endpoint killed before it entered its namespace
        pids = cleanup.pids_mentioning(cleanup.netns_path(ns_name(name, node)) + " ")
        report["orphan_processes"] += [str(p) for p in cleanup.kill_pids(pids)]
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
        if not had_state:
            report["labs"].append(f"{name} (state dir without a state file)")
    left = lab_namespaces(name) + ([str(d)] if d.exists() else [])
    if not left:  # a destroy() error that the sweep made good is not an error any more
        report["errors"] = []
    elif not report["errors"]:
        report["errors"].append(f"{name}: still present after teardown: {', '.join(left)}")
    if not (report["labs"] or report["orphan_namespaces"] or report["orphan_processes"] or report["errors"]):
        raise LabNotFound(name)
    return report


def down_all() -> dict[str, list[str]]:
    """Remove every lab in this state dir, then orphan namespaces and processes; report what went.

    Orphans are namespaces named ``cnilab-*`` whose owner tag points into *this* state root but no
    state file claims them, and processes whose command line names a removed lab's directory.
    Namespaces tagged by another state root are never touched (a colleague's lab, or their own
    orphan for their own ``down``), except by the machine-wide root when that state root is gone.
    """
    from cnilab.sim.backends.containerlab import DeployedByContainerlab

    report: dict[str, list[str]] = {"labs": [], "orphan_namespaces": [], "orphan_processes": [], "errors": [],
                                    "skipped": []}
    removed_dirs: list[str] = []
    private = "CNILAB_STATE_DIR" in os.environ
    for name in list_labs():
        try:
            Lab.attach(name).destroy()
            report["labs"].append(name)
        except DeployedByContainerlab as exc:  # containerlab's to remove; cnilab only attached
            report["skipped"].append(f"{name}: {exc}")
            continue
        except (BackendError, LabNotFound, ValueError) as exc:
            report["errors"].append(f"{name}: {exc}")
        removed_dirs.append(str(lab_dir(name)))
    for ns in cleanup.list_cnilab_netns():
        owner = cleanup.netns_owner(ns)
        if owner is not None and (owner / "state.json").exists():
            continue  # a live lab (possibly another CNILAB_STATE_DIR's): not ours to remove
        if owner is not None and not _owned_by_this_root(owner) and (private or owner.parent.parent.exists()):
            continue  # another state root's orphan: its own `down` removes it
        if owner is None and (not LAB_NS_RE.fullmatch(ns) or private):
            # Untagged: someone's scratch namespace, or a lab that crashed before tagging. Only the
            # machine-wide state dir sweeps those; a private state dir (tests) never touches them,
            # since /run/netns is shared with colleagues' concurrent runs.
            continue
        if owner is not None:
            removed_dirs.append(str(owner))
        killed = cleanup.remove_netns(ns)
        report["orphan_namespaces"].append(ns)
        report["orphan_processes"] += [str(p) for p in killed]
    for d in removed_dirs:
        for pid in cleanup.kill_pids(cleanup.pids_using_dir(d)):
            report["orphan_processes"].append(str(pid))
    labs_root = state_root() / "labs"
    if labs_root.is_dir():
        for d in labs_root.iterdir():  # half-written lab dirs (no state.json) from a crash
            if d.is_dir() and not (d / "state.json").exists() and not _recent(d):
                shutil.rmtree(d, ignore_errors=True)
    return report


def _recent(path: Path, seconds: float = 30.0) -> bool:
    """A lab dir younger than this may be a lab being created right now; leave it alone."""
    try:
        return time.time() - os.stat(path).st_mtime < seconds
    except OSError:
        return False
