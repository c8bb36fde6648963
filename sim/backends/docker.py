"""The docker backend: each node is a container, links are veth pairs moved into their namespaces.

Why containers at all, when namespaces are faster: engineers' labs live in Docker, and a node that
is a container runs its own userland (the FRR image's FRR, the edge image's Python) the way it will
in their containerlab lab. The data path stays the same as the netns backend's: containers start
with ``network_mode: none`` (no Docker bridge, no NAT, no engine-chosen MTU), and each link is a
veth pair created on the host and moved into the two containers' namespaces with pyroute2 through
``/proc/<pid>/ns/net`` - exactly what containerlab does. ``/run/netns/cnilab-<lab>-<node>`` is a
symlink to that namespace, so ``ip netns exec``, probes, faults and the userspace GRE helper work on
a docker lab unchanged.

Works against the Docker Engine and podman's Docker-compatible socket (``scripts/podman-service.sh``)
through the ``docker`` SDK: ``DOCKER_HOST`` if set, else podman's socket if it exists, else Docker's.

Commands and daemons run *inside* the container (``nsenter`` into its mount, UTS, IPC, network and
PID namespaces, with its root), so they use the image's binaries. The lab's work directory and the
cnilab installation are bind-mounted at their host paths, so a command rendered on the host (config
paths, the venv's python) means the same thing in every container.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
from cnilab.sim.backends.base import Backend, BackendError
from cnilab.sim.export.images import LOCAL_IMAGES, ImageSet
from cnilab.sim.runtime import shipped
from cnilab.sim.runtime.nsenter import in_netns
from cnilab.sim.runtime.paths import lab_dir, ns_name
from cnilab.sim.topology.plan import LabPlan, Link, Node
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

NETNS_DIR = Path("/run/netns")
PODMAN_SOCK = Path("/run/podman/podman.sock")
DOCKER_SOCK = Path("/var/run/docker.sock")
LABEL_LAB, LABEL_NODE, LABEL_OWNER = "cnilab.lab", "cnilab.node", "cnilab.owner"
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
"""PID 1 of every node: does nothing, reaps orphans, exits at once on SIGTERM."""


def engine_url() -> str:
    """Which engine to talk to: DOCKER_HOST, else podman's compat socket, else Docker's socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if PODMAN_SOCK.exists():
        return f"unix://{PODMAN_SOCK}"
    return f"unix://{DOCKER_SOCK}"


def connect(url: str | None = None, timeout: int = 120) -> docker.DockerClient:
    """A client that has answered a ping. With no engine answering (and no ``DOCKER_HOST`` chosen),
    podman's Docker-compatible service is started here when podman is installed (see
    :class:`PodmanService`); otherwise BackendError names the one command to run."""
    chosen = url or engine_url()
    try:
        return ping_engine(chosen, timeout)
    except docker.errors.DockerException as exc:
        first = exc
    if url is None and not os.environ.get("DOCKER_HOST") and PodmanService.available():
        started = PodmanService.start()
        try:
            return ping_engine(f"unix://{PODMAN_SOCK}", timeout)
        except docker.errors.DockerException as exc:
            if started:
                PodmanService.stop_if_unused(force=True)
            raise BackendError(f"podman's Docker-compatible service did not answer at {PODMAN_SOCK} ({exc}); "
                               f"log: {PodmanService.log_path()}") from exc
    raise BackendError(f"no container engine answers at {chosen} ({first}); start Docker, or install podman "
                       "and run: scripts/podman-service.sh") from first


def ping_engine(url: str, timeout: int) -> docker.DockerClient:
    """A client of the engine at ``url`` if it answers now (raises DockerException otherwise); never starts one.

    A socket file whose engine just went away surfaces from the SDK as a requests ConnectionError
    (or an OSError), not a DockerException: all of them mean "no engine answers" to the callers."""
    import requests

    try:
        client = docker.DockerClient(base_url=url, timeout=timeout)
    except (requests.exceptions.RequestException, OSError) as exc:
        raise docker.errors.DockerException(f"no engine answers at {url}: {exc}") from exc
    try:
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        client.close()
        if isinstance(exc, docker.errors.DockerException):
            raise
        raise docker.errors.DockerException(f"no engine answers at {url}: {exc}") from exc
    return client


class PodmanService:
    """``podman system service`` on :data:`PODMAN_SOCK`, started by cnilab when no engine answers.

    The PID is written to ``<state root>/podman-service.pid``: only a service cnilab started is
    ever stopped, and only once no container of any cnilab lab is left on the engine (another
    state root's labs may use the same service)."""

    @staticmethod
    def available() -> bool:
        import shutil

        return shutil.which("podman") is not None

    @staticmethod
    def pid_file() -> Path:
        from cnilab.sim.runtime.paths import state_root

        return state_root() / "podman-service.pid"

    @staticmethod
    def log_path() -> Path:
        from cnilab.sim.runtime.paths import state_root

        return state_root() / "podman-service.log"

    @classmethod
    def start(cls) -> int | None:
        """Start the service unless its socket already answers; returns the PID started (or None)."""
        import subprocess

        from cnilab.sim.runtime.process import spawn

        with contextlib.suppress(docker.errors.DockerException):
            ping_engine(f"unix://{PODMAN_SOCK}", 5).close()
            return None
        PODMAN_SOCK.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            PODMAN_SOCK.unlink()
        cls.pid_file().parent.mkdir(parents=True, exist_ok=True)
        rec = spawn("podman-service", "host", ["podman", "system", "service", "--time=0", f"unix://{PODMAN_SOCK}"],
                    cls.log_path())
        cls.pid_file().write_text(str(rec.pid))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if PODMAN_SOCK.exists():
                with contextlib.suppress(docker.errors.DockerException):
                    ping_engine(f"unix://{PODMAN_SOCK}", 5).close()
                    return rec.pid
            if subprocess.run(["kill", "-0", str(rec.pid)], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        return rec.pid

    @classmethod
    def stop_if_unused(cls, client: docker.DockerClient | None = None, force: bool = False) -> bool:
        """Stop the service this state root started once no cnilab container remains; True if stopped."""
        from cnilab.sim.runtime.cleanup import kill_pids

        try:
            pid = int(cls.pid_file().read_text())
        except (OSError, ValueError):
            return False
        if not force and client is not None:
            try:
                if client.containers.list(all=True, filters={"label": [LABEL_LAB]}):
                    return False
            except docker.errors.DockerException:
                return False
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmd = []
        if cmd and b"podman" in cmd[0] and b"service" in cmd:  # never a stranger that reused the PID
            kill_pids([pid])
        cls.pid_file().unlink(missing_ok=True)
        return True


def _sysctls(node: Node) -> dict[str, str]:
    """The same per-node sysctls as the netns backend (Docker disables IPv6 by default: undo it)."""
    out = {"net/ipv6/conf/all/disable_ipv6": "0", "net/ipv6/conf/default/disable_ipv6": "0",
           "net/ipv6/conf/all/accept_dad": "0", "net/ipv6/conf/default/accept_dad": "0",
           "net/ipv6/conf/all/keep_addr_on_down": "1", "net/ipv6/conf/default/keep_addr_on_down": "1"}
    if node.forwarding:
        out |= {"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1",
                "net/ipv6/conf/default/forwarding": "1", "net/ipv4/conf/all/rp_filter": "0",
                "net/ipv4/conf/default/rp_filter": "0"}
    return out


ULIMITS = {"nofile": (resource.RLIMIT_NOFILE, 16384), "nproc": (resource.RLIMIT_NPROC, 8192)}
"""Limits every node gets (a few daemons each): modest on purpose, see :func:`_ulimits`."""


def _ulimits() -> list[docker.types.Ulimit]:
    """Explicit, modest limits. Without them podman applies its defaults (nofile/nproc 1048576+),
    which exceed the hard limits of hosts like this one, and runc refuses to start the container;
    we cannot read the engine's own limits through the API, so stay well below any sane host's."""
    out = []
    for name, (res, cap) in ULIMITS.items():
        _, hard = resource.getrlimit(res)
        value = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        out.append(docker.types.Ulimit(name=name, soft=value, hard=value))
    return out


def default_images(client: docker.DockerClient) -> ImageSet:
    """CNILAB_IMAGE_{EDGE,CUSTOMER,HOST} if set; else this machine's local builds if present;
    else the public images an export names."""
    env = {k: os.environ[f"CNILAB_IMAGE_{k.upper()}"] for k in ("edge", "customer", "host")
           if os.environ.get(f"CNILAB_IMAGE_{k.upper()}")}
    base = LOCAL_IMAGES
    for ref in (LOCAL_IMAGES.edge, LOCAL_IMAGES.customer, LOCAL_IMAGES.host):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            base = ImageSet()
            break
    return base.model_copy(update=env)


class DockerBackend(Backend):
    """Builds a :class:`LabPlan` as containers named ``cnilab-<lab>-<node>``."""

    name = "docker"

    def __init__(self, lab: str, workdir: Path, images: ImageSet | None = None,
                 client: docker.DockerClient | None = None) -> None:
        super().__init__(lab, workdir)
        self._client = client
        self._images = images
        self.nodes: list[str] = []
        self.pids: dict[str, int] = {}

    # -- engine -----------------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    @property
    def images(self) -> ImageSet:
        if self._images is None:
            self._images = default_images(self.client)
        return self._images

    def preflight(self) -> None:
        """Reach (or start) the engine before anything is built: a lab that cannot be built here
        fails with that reason alone, never with a teardown report for a lab that never existed."""
        _ = self.client

    def container_name(self, node: str) -> str:
        return ns_name(self.lab, node)

    def _owner(self) -> str:
        return str(lab_dir(self.lab).resolve())

    def _mounts(self) -> dict[str, dict[str, str]]:
        """Lab dir (rw) and the cnilab code, venv and base interpreter (ro), each at its host path,
        so host-rendered commands (``/path/.venv/bin/python -m cnilab.sim.edge.driver ...``) run as is."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        mounts = {str(self.workdir.resolve()): {"bind": str(self.workdir.resolve()), "mode": "rw"}}
        for p in sorted({*shipped.code_dirs(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}):
            if not any(p.is_relative_to(m) for m in map(Path, mounts)) and p != Path("/usr"):
                mounts[str(p)] = {"bind": str(p), "mode": "ro"}
        return mounts

    # -- nodes and links ------------------------------------------------------------------------
    def create_node(self, node: Node) -> None:
        name = self.container_name(node.name)
        link = NETNS_DIR / name
        if link.exists() or link.is_symlink():
            raise BackendError(f"namespace {name} already exists (another lab named {self.lab!r}?); "
                               "choose another --name or run `cnilab down`")
        image = self.images.for_role(node.role)
        try:
            ctr = self.client.containers.run(
                image, name=name, hostname=node.name, detach=True, network_mode="none", privileged=True,
                entrypoint=KEEPALIVE[:1], command=KEEPALIVE[1:], volumes=self._mounts(), ulimits=_ulimits(),
                labels={LABEL_LAB: self.lab, LABEL_NODE: node.name, LABEL_OWNER: self._owner(),
                        "cnilab.role": node.role},
            )
        except docker.errors.ImageNotFound as exc:
            raise BackendError(f"node {node.name}: image {image} not found; build it (containerlab/README.md) "
                               "or set CNILAB_IMAGE_" + ("EDGE" if node.role == "edge" else "CUSTOMER"
                                                         if node.role == "customer" else "HOST")) from exc
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                self.client.containers.get(name).remove(force=True)
            raise BackendError(f"node {node.name}: cannot start container {name} from {image}: {exc}") from exc
        self.nodes.append(node.name)
        try:
            pid = container_pid(ctr)
        except RuntimeError as exc:
            raise BackendError(f"node {node.name}: {exc}") from exc
        self.pids[node.name] = pid
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        os.symlink(f"/proc/{pid}/ns/net", link)
        try:
            with IPRoute(netns=name) as ipr:
                ipr.link("set", index=1, state="up", ifalias=f"cnilab:{lab_dir(self.lab)}")
            with in_netns(str(link)):
                for key, value in _sysctls(node).items():
                    Path("/proc/sys", key).write_text(value)
        except (NetlinkError, OSError) as exc:
            raise BackendError(f"node {node.name}: cannot set up the namespace of {name}: {exc}") from exc

    def _pid(self, node: str) -> int:
        if node not in self.pids:
            try:
                ctr = self.client.containers.get(self.container_name(node))
            except docker.errors.NotFound as exc:
                raise BackendError(f"node {node}: container {self.container_name(node)} does not exist") from exc
            self.pids[node] = int(ctr.attrs["State"]["Pid"])
        return self.pids[node]

    def create_link(self, link: Link, plan: LabPlan) -> None:
        """veth pair on the host under temporary names, each end moved (and renamed) into its node."""
        ends = [(link.a.node, link.a.iface), (link.b.node, link.b.iface)]
        try:
            wire_veth([(self._pid(n), self.container_name(n), i, plan.node(n).iface(i).mtu) for n, i in ends])
        except (NetlinkError, OSError, IndexError) as exc:
            raise BackendError(f"link {link.name} ({link.a.node}:{link.a.iface} - {link.b.node}:{link.b.iface}): "
                               f"{exc}") from exc

    # -- access -----------------------------------------------------------------------------------
    def netns_path(self, node: str) -> str:
        return str(NETNS_DIR / self.container_name(node))

    def command(self, node: str, argv: list[str]) -> list[str]:
        """Host argv running ``argv`` inside the container: its namespaces and root, cwd /."""
        return ["nsenter", "-t", str(self._pid(node)), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]

    # -- teardown ---------------------------------------------------------------------------------
    def _containers(self) -> list[Any]:
        """Every container of this lab (by label, so a fresh backend from another shell finds them)."""
        found = {c.id: c for c in self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_LAB}={self.lab}", f"{LABEL_OWNER}={self._owner()}"]})}
        for node in self.nodes:
            with contextlib.suppress(docker.errors.NotFound):
                c = self.client.containers.get(self.container_name(node))
                if (c.labels or {}).get(LABEL_OWNER) == self._owner():
                    found[c.id] = c
        return list(found.values())

    def destroy(self) -> None:
        """Remove every container and netns link of the lab; the veths die with the namespaces."""
        errors = []
        try:
            ctrs = self._containers()
        except docker.errors.DockerException as exc:
            raise BackendError(f"cannot list the lab's containers: {exc}") from exc
        nodes = set(self.nodes) | {(c.labels or {}).get(LABEL_NODE, "") for c in ctrs}
        for c in ctrs:
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"{c.name}: {exc}")
        for node in nodes:
            if node:
                with contextlib.suppress(FileNotFoundError):
                    (NETNS_DIR / self.container_name(node)).unlink()
        self.nodes, self.pids = [], {}
        if errors:
            raise BackendError("could not remove " + "; ".join(errors))
        PodmanService.stop_if_unused(self.client)  # the last container lab gone: stop what we started


def sweep_lab(lab: str) -> list[str]:
    """Remove every container labelled with ``lab`` and owned by its lab dir in this state root,
    when an engine already answers (never starts one: nothing can be left on an engine that is
    not running). For ``down --lab`` after a killed ``up`` whose state file is missing or partial."""
    try:
        client = ping_engine(engine_url(), 5)
    except docker.errors.DockerException:
        return []
    removed = []
    try:
        owner = str(lab_dir(lab).resolve())
        for c in client.containers.list(all=True, filters={"label": [f"{LABEL_LAB}={lab}", f"{LABEL_OWNER}={owner}"]}):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
                removed.append(c.name)
                with contextlib.suppress(FileNotFoundError):
                    (NETNS_DIR / c.name).unlink()
        if removed:
            PodmanService.stop_if_unused(client)
    finally:
        client.close()
    return removed


def container_pid(ctr: Any, timeout: float = 20.0) -> int:
    """The host pid of a started container's init, once the engine reports it running. Raises
    RuntimeError with the container's log when it exits instead, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        ctr.reload()
        st = ctr.attrs.get("State", {})
        if st.get("Running") and st.get("Pid"):
            return int(st["Pid"])
        if st.get("Status") in ("exited", "dead") or time.monotonic() > deadline:
            logs = ctr.logs(tail=20).decode(errors="replace").strip()
            raise RuntimeError(f"container {ctr.name} is {st.get('Status')!r}, not running: {logs}")
        time.sleep(0.05)


def wire_veth(ends: list[tuple[int, str, str, int]]) -> None:
    """One link between two containers, each end given as (pid, netns name under /run/netns, interface
    name, MTU): a veth pair made on the host under temporary names, each end moved into the network
    namespace of its pid, then renamed and set up there. A half-moved pair is deleted, never left."""
    tmp = [f"cv{uuid.uuid4().hex[:8]}{s}" for s in "ab"]
    with IPRoute() as host:
        host.link("add", ifname=tmp[0], kind="veth", mtu=ends[0][3], peer={"ifname": tmp[1], "mtu": ends[1][3]})
        try:
            for (pid, _, _, _), t in zip(ends, tmp, strict=True):
                fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                try:
                    host.link("set", index=host.link_lookup(ifname=t)[0], net_ns_fd=fd)
                finally:
                    os.close(fd)
        except BaseException:
            for t in tmp:  # a half-moved pair: delete whatever end is still here
                for idx in host.link_lookup(ifname=t):
                    with contextlib.suppress(NetlinkError):
                        host.link("del", index=idx)
            raise
    for (_, netns, iface, _), t in zip(ends, tmp, strict=True):
        with IPRoute(netns=netns) as ipr:
            idx = ipr.link_lookup(ifname=t)[0]
            ipr.link("set", index=idx, ifname=iface)
            ipr.link("set", index=idx, state="up")
