"""Build the lab's container images (base, FRR, edge) once, cached by content hash.

Image builds are slow, so every image carries a label ``cnilab.content`` with the hash of what went
into it (Dockerfile, build args, and for the edge image the package source); an image whose label
matches is reused. Works against Docker and podman's Docker-compatible API (the ``docker`` SDK).

On a machine without a registry the base comes from ``containerlab/images/base/build-base.sh``
(debootstrap + ``podman import``) and the Dockerfiles are built ``FROM`` it.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cnilab.sim.runtime import shipped
from pydantic import BaseModel

from cnilab import sim

if TYPE_CHECKING:  # docker is imported where an image is built: `import cnilab.sim.cli.main` stays fast
    import docker

IMAGES_DIR = shipped.containerlab_dir() / "images"
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md")
SOURCE_DIRS = ("cnilab", "sim", "mock_api", "topologies", "containerlab")
"""What the edge image's build context holds: the source that ``pip wheel`` turns into cnilab."""
LOCAL_BASE = "localhost/cnilab-base:bookworm"
CONTENT_LABEL = "cnilab.content"


class ImageSet(BaseModel):
    """Which image each node role runs. Defaults are the public images an export refers to."""

    edge: str = f"cnilab/edge:{sim.__version__}"
    customer: str = "quay.io/frrouting/frr:8.4.1"
    host: str = "alpine:3.20"

    def for_role(self, role: str) -> str:
        if role == "edge":
            return self.edge
        if role == "customer":
            return self.customer
        return self.host


LOCAL_IMAGES = ImageSet(edge=f"localhost/cnilab/edge:{sim.__version__}", customer="localhost/cnilab/frr:8.4",
                        host=LOCAL_BASE)
"""The images this machine builds for itself (no registry): what the docker backend runs here."""


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the tail of the build log."""


def _hash_tree(h: hashlib._Hash, root: Path, rel: Path) -> None:
    for p in sorted((root / rel).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())


def _source() -> Path:
    src = shipped.source_tree()
    if src is None:
        raise ImageBuildError("the edge image is built from a cnilab source checkout, and this cnilab was "
                              "installed from a wheel: install it with `pip install -e CHECKOUT` (or "
                              "`pip install CHECKOUT`), or use the netns backend")
    return src


def edge_content_hash(base: str) -> str:
    src = _source()
    h = hashlib.sha256(base.encode())
    for f in ("pyproject.toml", "containerlab/images/edge/Dockerfile", "containerlab/images/edge/entrypoint.sh"):
        h.update((src / f).read_bytes())
    for d in ("sim", "mock_api"):
        if (src / d).is_dir():
            _hash_tree(h, src, Path(d))
    return h.hexdigest()[:16]


def frr_content_hash(base: str) -> str:
    h = hashlib.sha256(base.encode())
    h.update((IMAGES_DIR / "frr" / "Dockerfile").read_bytes())
    return h.hexdigest()[:16]


def _current(client: docker.DockerClient, tag: str, want: str) -> bool:
    import docker.errors

    try:
        img = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return (img.labels or {}).get(CONTENT_LABEL) == want


def _build(client: docker.DockerClient, context: Path, dockerfile: str, tag: str, base: str, content: str) -> None:
    """Build ``tag``; the image it replaces is removed, so content-hash rebuilds (the edge image is
    rebuilt whenever the package changes) do not pile up dangling images on a shared disk."""
    import docker.errors

    try:
        previous = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        previous = None
    _build_only(client, context, dockerfile, tag, base, content)
    if previous and previous != client.images.get(tag).id:
        with contextlib.suppress(docker.errors.APIError):  # still used by a container: keep it
            client.images.remove(previous, noprune=False)


def _build_only(client: docker.DockerClient, context: Path, dockerfile: str, tag: str, base: str,
                content: str) -> None:
    import docker.errors

    try:
        client.images.build(path=str(context), dockerfile=dockerfile, tag=tag, buildargs={"BASE": base},
                            labels={CONTENT_LABEL: content}, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        raise ImageBuildError(f"building {tag} from {dockerfile} failed: {exc}\n{log[-2000:]}") from exc
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {tag} from {dockerfile} failed: {exc}") from exc


def ensure_base(engine: str = "podman") -> str:
    """Build (or keep) the debootstrap base image; returns its name."""
    script = IMAGES_DIR / "base" / "build-base.sh"
    env = {"ENGINE": engine, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    res = subprocess.run([str(script)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise ImageBuildError(f"{script} failed: {(res.stderr or res.stdout).strip()[-2000:]}")
    return LOCAL_BASE


def ensure_frr(client: docker.DockerClient, tag: str, base: str) -> str:
    want = frr_content_hash(base)
    if not _current(client, tag, want):
        _build(client, IMAGES_DIR / "frr", "Dockerfile", tag, base, want)
    return tag


def ensure_edge(client: docker.DockerClient, tag: str, base: str) -> str:
    """Build the edge image from a staged context: the package source plus a local wheelhouse.

    Staging keeps the context small (no .venv, no artifacts) and the wheelhouse, built here from
    whatever index pip is configured with, lets the build run without network inside the build.
    """
    want = edge_content_hash(base)
    if _current(client, tag, want):
        return tag
    src = _source()
    with tempfile.TemporaryDirectory(prefix="cnilab-edge-ctx-") as tmp:
        ctx = Path(tmp)
        for name in SOURCE_FILES:
            if (src / name).exists():
                shutil.copy2(src / name, ctx / name)
        for d in SOURCE_DIRS:
            if (src / d).is_dir():
                shutil.copytree(src / d, ctx / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(ctx / "wheels"), str(ctx)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise ImageBuildError(f"pip wheel for the edge image failed: {res.stderr.strip()[-2000:]}")
        _build(client, ctx, "containerlab/images/edge/Dockerfile", tag, base, want)
    return tag


def ensure_local_images(client: docker.DockerClient, engine: str = "podman") -> ImageSet:
    """Everything the docker backend needs on a registry-less machine, built once and cached."""
    base = ensure_base(engine)
    ensure_frr(client, LOCAL_IMAGES.customer, base)
    ensure_edge(client, LOCAL_IMAGES.edge, base)
    return LOCAL_IMAGES
