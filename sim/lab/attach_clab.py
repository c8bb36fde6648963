"""A :class:`~cnilab.sim.lab.lab.Lab` view of a lab that containerlab deployed from a cnilab export.

``cnilab bgp|bfd|fault|probe|status --backend containerlab --lab NAME`` (or just ``--lab NAME``
when NAME has no cnilab state but ``clab-NAME-*`` namespaces or containers exist) lands here. What
the tools need is found from what containerlab leaves, most specific first:

* nodes: containers labelled ``containerlab=NAME`` (``clab-node-name``) through the Docker API,
  else the ``/run/netns/clab-NAME-<node>`` links containerlab makes;
* namespaces: ``/run/netns/<container>``, else ``/proc/<pid>/ns/net`` of the container's PID;
* the plan: ``plan.json`` in the host dir bound at ``/etc/cnilab`` in the edge container (the
  export's ``cf/``), else next to the ``clab-topo-file`` label, else ``containerlab/NAME/cf/`` here;
  it already names the container interfaces (``eth2.100``);
* the edge's control socket: the host dir bound at ``/run/cnilab`` (the export puts it at
  ``/run/cnilab/containerlab/NAME/cf``).

Faults must be listable and clearable from any shell, so a small state dir is kept under
``$CNILAB_STATE_DIR/labs/NAME`` with backend ``containerlab``; it is refreshed at every attach
(the deployment may have been redeployed) and keeps the faults. ``down`` never touches the
deployment: it refuses while the containers exist and only forgets the state dir once they are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnilab.sim.backends.base import BackendError
from cnilab.sim.backends.containerlab import ContainerlabBackend, DeployedByContainerlab
from cnilab.sim.export.containerlab import CONTROL_ROOT, EDGE_RUN_DIR
from cnilab.sim.runtime import cleanup, shipped
from cnilab.sim.runtime.paths import lab_dir
from cnilab.sim.state import LabNotFound, LabState, locked
from cnilab.sim.topology.plan import EDGE, LabPlan
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from cnilab.sim.lab.lab import Lab

BACKEND = ContainerlabBackend.name
"""The backend name a lab attached from a containerlab deployment is recorded under."""

NETNS_DIR = Path("/run/netns")
CLAB_PREFIX = "clab"
EDGE_CONFIG_DIR = "/etc/cnilab"
_PROC_NS = re.compile(r"^/proc/(\d+)/ns/net$")


class NotDeployed(LabNotFound):
    """No containerlab deployment of that name is visible on this host."""

    def __init__(self, lab: str, detail: str = "") -> None:
        super().__init__(lab)
        self.args = (f"no containerlab lab named {lab!r} is deployed here (no container or /run/netns/"
                     f"{CLAB_PREFIX}-{lab}-* found{'; ' + detail if detail else ''})",)


class ClabView(BaseModel):
    """What attaching found: where each piece of the deployment is (kept in the state's ``extra``)."""

    lab: str
    topo_file: str | None = None
    plan_path: str
    control_dir: str
    containers: dict[str, str] = Field(default_factory=dict, description="node -> container name")
    pids: dict[str, int] = Field(default_factory=dict, description="node -> container init PID")
    netns: dict[str, str] = Field(default_factory=dict, description="node -> network namespace path")

    @property
    def destroy_hint(self) -> str:
        return f"containerlab destroy -t {self.topo_file}" if self.topo_file else "containerlab destroy"


def container_name(lab: str, node: str) -> str:
    return f"{CLAB_PREFIX}-{lab}-{node}"


def _netns_links(lab: str) -> dict[str, Path]:
    """node -> /run/netns link named like containerlab's (``clab-LAB-NODE``) that still resolves."""
    from cnilab.sim.lab.lab import NODE_NAMES

    out = {}
    for node in NODE_NAMES:
        p = NETNS_DIR / container_name(lab, node)
        if p.exists():
            out[node] = p
    return out


def _engine() -> Any | None:
    """A Docker API client when an engine already answers (containerlab needs one); None otherwise.

    Never starts one: this runs for every `status`/`down`/`bgp --lab NAME` to see whether NAME is a
    containerlab deployment, and a lab deployed on an engine that is not running does not exist."""
    import docker.errors
    from cnilab.sim.backends.docker import engine_url, ping_engine

    try:
        return ping_engine(engine_url(), 10)
    except docker.errors.DockerException:
        return None


def _containers(client: Any, lab: str) -> dict[str, Any]:
    """node -> running container of the containerlab lab ``lab`` (by containerlab's labels)."""
    if client is None:
        return {}
    import docker.errors

    try:
        found = client.containers.list(filters={"label": f"containerlab={lab}"})
    except docker.errors.DockerException:
        return {}
    return {(c.labels or {}).get("clab-node-name", c.name): c for c in found}


def deployed(lab: str) -> bool:
    """Whether ``lab`` looks like a containerlab deployment (cheap check first: the netns links)."""
    if _netns_links(lab):
        return True
    client = _engine()
    try:
        return bool(_containers(client, lab))
    finally:
        if client is not None:
            client.close()


def _mount(ctr: Any, destination: str) -> Path | None:
    for m in ctr.attrs.get("Mounts") or []:
        if m.get("Destination") == destination and m.get("Source"):
            return Path(m["Source"])
    return None


def _plan_candidates(lab: str, ctrs: dict[str, Any]) -> list[Path]:
    out: list[Path] = []
    edge = ctrs.get(EDGE)
    if edge is not None and (src := _mount(edge, EDGE_CONFIG_DIR)) is not None:
        out.append(src / "plan.json")
    for c in ctrs.values():
        topo = (c.labels or {}).get("clab-topo-file")
        if topo:
            out.append(Path(topo).parent / EDGE / "plan.json")
            break
    out += [Path.cwd() / "containerlab" / lab / EDGE / "plan.json",
            shipped.containerlab_dir() / lab / EDGE / "plan.json"]
    return list(dict.fromkeys(out))


def load_plan(path: Path, lab: str) -> LabPlan:
    """The exported plan (container interface names), renamed to the deployed lab's name."""
    try:
        plan = LabPlan.model_validate_json(path.read_text())
    except OSError as exc:
        raise BackendError(f"{path}: cannot read the exported plan: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(top level)"
        raise BackendError(f"{path}: not a cnilab plan (field {where}: {first['msg']}; "
                           f"value {str(first.get('input'))[:80]!r}); regenerate with `cnilab export containerlab`"
                           ) from exc
    return plan if plan.lab == lab else plan.model_copy(update={"lab": lab})


def discover(lab: str, client: Any | None = None) -> tuple[ClabView, LabPlan]:
    """Find the deployment of ``lab``; :class:`NotDeployed` when there is none."""
    own = client is None
    client = _engine() if own else client
    try:
        ctrs = _containers(client, lab)
        links = _netns_links(lab)
        if not ctrs and not links:
            raise NotDeployed(lab, "" if client is not None else "and no container engine answers")
        candidates = _plan_candidates(lab, ctrs)
        plan_path = next((p for p in candidates if p.is_file()), None)
        if plan_path is None:
            raise BackendError(f"containerlab lab {lab}: no cnilab export found (looked for "
                               f"{', '.join(map(str, candidates))}); deploy a topology written by "
                               "`cnilab export containerlab`")
        plan = load_plan(plan_path, lab)
        edge = ctrs.get(EDGE)
        run_dir = _mount(edge, EDGE_RUN_DIR) if edge is not None else None
        view = ClabView(lab=lab, plan_path=str(plan_path),
                        control_dir=str(run_dir or Path(CONTROL_ROOT) / lab / EDGE),
                        topo_file=next(((c.labels or {}).get("clab-topo-file") for c in ctrs.values()
                                        if (c.labels or {}).get("clab-topo-file")), None))
        for node in (n.name for n in plan.nodes):
            ctr = ctrs.get(node)
            pid = int(ctr.attrs.get("State", {}).get("Pid") or 0) if ctr is not None else 0
            link = links.get(node) or (NETNS_DIR / ctr.name if ctr is not None else None)
            if not pid and link is not None and (m := _PROC_NS.match(os.readlink(link) if link.is_symlink()
                                                                    else "")):
                pid = int(m.group(1))
            if link is not None and link.exists():
                view.netns[node] = str(link)
            elif pid:
                view.netns[node] = f"/proc/{pid}/ns/net"
            else:
                continue
            view.containers[node] = ctr.name if ctr is not None else container_name(lab, node)
            if pid:
                view.pids[node] = pid
        return view, plan
    finally:
        if own and client is not None:
            client.close()


def kernel_ifnames(plan: LabPlan, netns: dict[str, str]) -> dict[str, dict[str, str]]:
    """node -> plan L3 name -> the interface that really carries it.

    Where the host has no 8021q module the VLAN sub-interface ``eth2.100`` is an *altname* of
    ``eth2`` (the same stand-in as the other backends); faults must then hook ``eth2``, since
    nftables and tc want the real name.
    """
    out: dict[str, dict[str, str]] = {}
    for node in plan.nodes:
        path = netns.get(node.name)
        if path is None:
            continue
        for iface in node.interfaces:
            if not iface.vlan:
                continue
            res = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", "link", "show", "dev", iface.l3_name],
                                 capture_output=True, text=True)
            with contextlib.suppress(ValueError, IndexError, KeyError):
                real = json.loads(res.stdout)[0]["ifname"]
                if real != iface.l3_name:
                    out.setdefault(node.name, {})[iface.l3_name] = real
    return out


def attach(lab: str) -> Any:
    """The :class:`~cnilab.sim.lab.lab.Lab` for containerlab lab ``lab``, with its state dir refreshed.

    A lab cnilab already knows but whose containers are gone is still returned (status
    ``failed``), so ``down`` can forget it; one it never saw raises :class:`NotDeployed`.
    """
    from cnilab.sim.lab.lab import Lab

    try:
        view, plan = discover(lab)
    except NotDeployed:
        if not LabState.exists(lab) or LabState.load(lab).backend != BACKEND:
            raise
        with _state(lab) as st:
            st.status = "failed"
            st.extra["notes"] = [f"the containerlab deployment of {lab} is gone (no container or netns link); "
                                 f"`cnilab down --lab {lab}` forgets this state"]
            old = ClabView.model_validate(st.extra["containerlab"]) if "containerlab" in st.extra else None
        backend = ContainerlabBackend(lab, lab_dir(lab), destroy_hint=old.destroy_hint if old else "")
        return Lab(st, backend)
    with _state(lab, plan) as st:
        st.plan = plan
        st.status = "running"
        st.namespaces = {n: (p.removeprefix(f"{NETNS_DIR}/") if p.startswith(f"{NETNS_DIR}/") else p)
                         for n, p in view.netns.items()}
        st.containers = dict(view.containers)
        st.control["edge"] = str(Path(view.control_dir) / "control.sock")
        st.extra["ifnames"] = kernel_ifnames(plan, view.netns)
        st.extra["containerlab"] = view.model_dump(mode="json")
        st.extra["notes"] = [f"deployed by containerlab (plan {view.plan_path}): cnilab owns no container, "
                             f"namespace or daemon of it; remove it with `{view.destroy_hint}`"]
        st.mechanisms["deployment"] = "containerlab (attached)"
    backend = ContainerlabBackend(lab, lab_dir(lab), view.netns, view.pids, view.destroy_hint)
    return Lab(st, backend)


@contextlib.contextmanager
def _state(lab: str, plan: LabPlan | None = None) -> Any:
    """Locked load-or-create of the attach state; refuses to shadow a lab cnilab built itself."""
    with locked(lab):
        if LabState.exists(lab):
            st = LabState.load(lab)
            if st.backend != BACKEND:
                raise BackendError(f"a cnilab lab named {lab!r} (backend {st.backend}) already uses "
                                   f"{lab_dir(lab)}; it is not a containerlab deployment")
        elif plan is not None:
            st = LabState(lab=lab, backend=BACKEND, plan=plan, status="running")
        else:  # pragma: no cover - callers pass a plan when no state exists
            raise LabNotFound(lab)
        yield st
        st.save()


def forget(lab: Lab) -> None:
    """``down`` for a containerlab lab: refused while deployed; afterwards drop cnilab's state.

    Processes cnilab itself started for it (fault helpers, probe listeners) are stopped first.
    """
    name = lab.name
    if deployed(name):
        hint = lab.backend.destroy_hint if isinstance(lab.backend, ContainerlabBackend) else "containerlab destroy"
        faults = f"; clear cnilab's faults first with `cnilab fault clear --all --lab {name}`" if lab.state.faults \
            else ""
        raise DeployedByContainerlab(f"lab {name} was deployed by containerlab: use `{hint}` to remove it "
                                     f"(cnilab only attached to it){faults}")
    st = lab.refresh()
    for rec in [*st.processes, *(f.process for f in st.faults if f.process)]:
        with contextlib.suppress(OSError):
            rec.stop()
    for f in st.faults:
        for step in f.undo.get("steps", []):
            if step.get("type") == "stop":
                from cnilab.sim.runtime.process import ProcessRecord

                with contextlib.suppress(OSError, ValueError):
                    ProcessRecord.model_validate(step["process"]).stop()
    cleanup.kill_pids(cleanup.pids_using_dir(str(lab.dir)))
    shutil.rmtree(lab.dir, ignore_errors=True)
    if lab.dir.exists():
        raise BackendError(f"lab {name}: cannot remove {lab.dir}")
