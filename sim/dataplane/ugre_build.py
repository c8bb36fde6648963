"""Compile the C userspace GRE endpoint (``ugre.c``) on first use, into a cache keyed by its hash.

Why compile on demand: the lab ships as a Python package and must not depend on a build step, but a
Python endpoint cannot carry 1 Gbit/s on two cores. gcc is part of the bootstrap, so the first lab
start compiles the ~300-line C file (well under a second) and every later start reuses the binary.
The cache key is the SHA-256 of the source plus the compiler flags, so an edited ``ugre.c`` is never
mistaken for an old build, and the binary is renamed into place atomically, so parallel first starts
(two tests, two labs) never run a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

CFLAGS = ("-O2", "-std=gnu11", "-pthread", "-Wall", "-Wextra")


class BuildError(RuntimeError):
    """gcc is missing or refused ``ugre.c``; the message carries gcc's output."""


def source() -> bytes:
    return resources.files("cnilab.sim.dataplane").joinpath("ugre.c").read_bytes()


def cache_dir() -> Path:
    """``$CNILAB_CACHE_DIR``, else /var/cache/cnilab when writable (root), else ~/.cache/cnilab."""
    env = os.environ.get("CNILAB_CACHE_DIR")
    if env:
        return Path(env)
    system = Path("/var/cache/cnilab")
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    return Path.home() / ".cache" / "cnilab"


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "gcc"))


def binary_path() -> Path:
    digest = hashlib.sha256(source() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    return cache_dir() / f"ugre-{digest}"


def ensure_binary() -> Path:
    """Return the compiled endpoint, compiling it first if this source has not been built yet."""
    out = binary_path()
    if out.is_file() and os.access(out, os.X_OK):
        return out
    cc = compiler()
    if cc is None:
        raise BuildError("gcc not found (install it, or the slow pure-Python GRE endpoint is used)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ugre-build-", dir=out.parent) as tmp:
        src = Path(tmp) / "ugre.c"
        src.write_bytes(source())
        tmp_bin = Path(tmp) / "ugre"
        proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp_bin), str(src)], capture_output=True, text=True,
                              timeout=120, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{cc} failed to compile {src.name} (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()}")
        os.replace(tmp_bin, out)  # atomic: concurrent builders each install a complete binary
    return out


if __name__ == "__main__":
    print(ensure_binary())
