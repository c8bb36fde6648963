"""Enter a network namespace from the current thread, and come back.

Python 3.11 has no ``os.setns``; libc's ``setns(2)`` through ctypes does the same. Sockets created
inside the ``with`` block stay in that namespace after we return, which is how probes and the
fault daemons hold sockets in several nodes from one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _setns_fd(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_file(netns: str) -> str:
    """A namespace given by name (``/run/netns/<name>``) or by path, as a path."""
    return netns if "/" in netns else f"/run/netns/{netns}"


def setns(path: str) -> None:
    """Move this thread into the network namespace at ``path`` for good (daemons, helper threads)."""
    fd = os.open(netns_file(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_fd(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"setns {path}: {os.strerror(exc.errno or 0)}") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the block in the network namespace at ``path`` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns_file(path), os.O_RDONLY)
    try:
        _setns_fd(target)
        try:
            yield
        finally:
            _setns_fd(home)
    finally:
        os.close(target)
        os.close(home)


def call_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` inside namespace ``netns`` (a name under /run/netns or a path) on a throwaway thread.

    The caller's thread never leaves its own namespace, even if ``fn`` raises; sockets created by
    ``fn`` stay bound to ``netns``.
    """
    if netns is None:
        return fn()
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            setns(netns)
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
