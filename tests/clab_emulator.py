"""Test scaffolding: deploy an exported ``.clab.yml`` the way containerlab would, without containerlab.

There is no containerlab binary (and no registry) on the CI machine, yet ``--backend containerlab``
must be tested against what containerlab really leaves behind. This helper reproduces exactly that
footprint through the Docker API (podman's compatible socket here), following containerlab's docker
runtime:

* one container per node named ``<prefix>-<lab>-<node>`` (``clab-...``), privileged, with a TTY and
  open stdin (which is what keeps a ``kind: linux`` node whose image runs a shell alive), the node's
  ``env``, ``binds`` (relative host paths resolved against the topology file's directory, missing
  host dirs created as Docker does), ``sysctls``, and containerlab's own labels (``containerlab``,
  ``clab-node-name``, ``clab-topo-file``, ...) plus the node's ``labels``;
* the image's own entrypoint (the edge image starts ExaBGP, the FRR image starts FRR);
* ``/run/netns/<container>`` linked to the container's namespace;
* each ``links`` entry as a veth pair, ends named per the endpoints (``cf:eth2``) with the link MTU;
* each node's ``exec`` lines run inside the container (``docker exec``) after the links exist; a
  failing line is recorded and deployment goes on, as containerlab does.

One documented stand-in, because this kernel has no ``8021q`` module: a failing
``ip link add link P name P.V type vlan id V`` becomes ``ip link property add dev P altname P.V``
(the same honest fallback the netns/docker backends use, see :mod:`cnilab.sim.dataplane.vlan`), so the
following ``exec`` lines that name ``P.V`` work. GRE lines fail here (no ``ip_gre``) and are only
recorded. It is not a product orchestrator: no management network, no startup-config, no kinds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import yaml
from cnilab.sim.backends.docker import container_pid, wire_veth

NETNS_DIR = Path("/run/netns")
VLAN_ADD = re.compile(r"^ip link add link (\S+) name (\S+) type vlan id (\d+)$")


@dataclass
class Deployment:
    """What the emulated ``containerlab deploy`` made (and what the cleanup removes)."""

    lab: str
    topo_file: Path
    containers: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    netns_links: list[Path] = field(default_factory=list)
    bind_dirs: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    exec_failures: list[str] = field(default_factory=list)
    substitutions: list[str] = field(default_factory=list)

    def container_name(self, node: str) -> str:
        return f"clab-{self.lab}-{node}"


def _bind(spec: str, topo_dir: Path, dep: Deployment) -> str:
    """``src:dst[:mode]`` with a relative ``src`` made absolute; missing host dirs created (Docker
    does that for binds; podman refuses, containerlab users run Docker)."""
    parts = spec.split(":")
    src = Path(parts[0])
    if not src.is_absolute():
        src = (topo_dir / src).resolve()
    if not src.exists():
        parents = [p for p in src.parents if not p.exists()]
        src.mkdir(parents=True, exist_ok=True)
        dep.bind_dirs.append(src)
        dep.created_dirs += parents
    return ":".join([str(src), *parts[1:]])


def _labels(lab: str, node: str, spec: dict[str, Any], topo_file: Path) -> dict[str, str]:
    labels = {"containerlab": lab, "clab-node-name": node, "clab-node-kind": spec.get("kind", "linux"),
              "clab-node-type": "", "clab-node-group": "",
              "clab-node-lab-dir": str(topo_file.parent / f"clab-{lab}" / node),
              "clab-topo-file": str(topo_file), "clab-owner": "root"}
    labels |= {k: str(v) for k, v in (spec.get("labels") or {}).items()}
    return labels


def _exec(dep: Deployment, node: str, cmd: str) -> None:
    ctr = dep.containers[node]
    ctr.reload()
    if ctr.status != "running":  # say why instead of the engine's "container state improper"
        raise RuntimeError(f"{ctr.name} is {ctr.status}, cannot exec {cmd!r}; its log:\n"
                           + ctr.logs(tail=30).decode(errors="replace"))
    code, out = ctr.exec_run(shlex.split(cmd))
    if code == 0:
        return
    text = (out or b"").decode(errors="replace").strip()
    m = VLAN_ADD.match(cmd)
    if m and ("not supported" in text.lower() or "unknown" in text.lower() or "no such" in text.lower()):
        alt = f"ip link property add dev {m.group(1)} altname {m.group(2)}"
        code2, out2 = dep.containers[node].exec_run(shlex.split(alt))
        if code2 == 0:
            dep.substitutions.append(f"{node}: {cmd} -> {alt} ({text})")
            return
        text += f"; stand-in {alt!r} failed too: {(out2 or b'').decode(errors='replace').strip()}"
    dep.exec_failures.append(f"{node}: {cmd}: {text}")


@contextlib.contextmanager
def deploy(topo_file: Path, client: Any, *, ulimits: list[Any] | None = None) -> Iterator[Deployment]:
    """``containerlab deploy -t topo_file``, emulated; everything removed on exit, even on failure.

    ``ulimits`` stand in for containerlab's ``nofile`` limit: podman's defaults exceed this host's
    hard limit (see :func:`cnilab.sim.backends.docker._ulimits`).
    """
    topo_file = topo_file.resolve()
    doc = yaml.safe_load(topo_file.read_text())
    lab = doc["name"]
    nodes: dict[str, dict[str, Any]] = doc["topology"]["nodes"]
    dep = Deployment(lab=lab, topo_file=topo_file)
    try:
        for node, spec in nodes.items():
            name = dep.container_name(node)
            if (NETNS_DIR / name).exists() or (NETNS_DIR / name).is_symlink():
                raise RuntimeError(f"{NETNS_DIR / name} already exists")
            binds = [_bind(b, topo_file.parent, dep) for b in spec.get("binds") or []]
            ctr = client.containers.create(
                spec["image"], name=name, hostname=node, detach=True, tty=True, stdin_open=True,
                privileged=True, network_mode="none", volumes=binds,
                environment={k: str(v) for k, v in (spec.get("env") or {}).items()},
                sysctls={k: str(v) for k, v in (spec.get("sysctls") or {}).items()},
                labels=_labels(lab, node, spec, topo_file), ulimits=ulimits)
            dep.containers[node] = ctr
            ctr.start()
            dep.pids[node] = container_pid(ctr)
            NETNS_DIR.mkdir(parents=True, exist_ok=True)
            link = NETNS_DIR / name
            os.symlink(f"/proc/{dep.pids[node]}/ns/net", link)
            dep.netns_links.append(link)
        for lk in doc["topology"].get("links") or []:
            a, b = lk["endpoints"]
            mtu = int(lk.get("mtu", 9500))
            wire_veth([(dep.pids[n], str(NETNS_DIR / dep.container_name(n)), i, mtu)
                       for n, i in (e.split(":", 1) for e in (a, b))])
        for node, spec in nodes.items():
            for cmd in spec.get("exec") or []:
                _exec(dep, node, cmd)
        yield dep
    finally:
        destroy(dep)


def destroy(dep: Deployment) -> None:
    """``containerlab destroy``: containers (their veths go with their namespaces), netns links,
    and the host dirs the binds created (the edge's control-socket dir)."""
    for ctr in dep.containers.values():
        try:
            ctr.remove(force=True)
        except docker.errors.NotFound:
            continue
        except Exception:  # the engine's API went away: its CLI still reaches the containers
            for cli in ("podman", "docker"):
                if shutil.which(cli):
                    subprocess.run([cli, "rm", "-f", ctr.name], capture_output=True, timeout=60)
                    break
    for link in dep.netns_links:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
    for d in dep.bind_dirs:  # made for this deployment: everything in it is ours
        shutil.rmtree(d, ignore_errors=True)
    for d in sorted(dep.created_dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # a parent another deployment may use now: only if empty
            d.rmdir()
