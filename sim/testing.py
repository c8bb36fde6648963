"""Retry-until helpers for lab tests, in the spirit of FRR topotests' ``run_and_expect``/``json_cmp``.

Labs converge; tests should wait for a condition with a deadline instead of sleeping a fixed time,
and compare JSON by subset so that a new field in an answer does not break a test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


MIN_TIMEOUT_S = 5.0
"""The shortest a wait gives up after, as FRR's topotests floor theirs: a wait bounds how long to keep
trying, it is not a timing assertion (measure the time and compare it to physics plus slack for
that), and on a loaded 2-core machine anything shorter fails for reasons that are not the lab's."""


class WaitTimeout(AssertionError):
    """The condition did not hold in time; the message carries the last value seen."""


def json_subset(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Differences where ``actual`` does not contain ``expected`` (empty list: it does).

    Dicts match when every expected key matches; lists match element-wise when the same length,
    otherwise every expected element must match some actual element; ``None`` in expected means
    "the key must be absent or null".
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {type(actual).__name__}"]
        diffs: list[str] = []
        for k, v in expected.items():
            if v is None:
                if actual.get(k) is not None:
                    diffs.append(f"{path}.{k}: expected absent, got {actual[k]!r}")
            elif k not in actual:
                diffs.append(f"{path}.{k}: missing")
            else:
                diffs += json_subset(v, actual[k], f"{path}.{k}")
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {type(actual).__name__}"]
        if len(expected) == len(actual):
            out: list[str] = []
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                out += json_subset(e, a, f"{path}[{i}]")
            if not out:
                return []
        missing = [e for e in expected if not any(not json_subset(e, a) for a in actual)]
        return [f"{path}: no element matches {m!r}" for m in missing]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


class _Attempts:
    """The bookkeeping :func:`wait_for` and :func:`wait_for_async` share: the floored deadline, the
    last value or error seen, and the message that says both when time runs out."""

    def __init__(self, fn: Callable[[], Any], timeout: float, what: str | None) -> None:
        self.fn = fn
        self.timeout = max(timeout, MIN_TIMEOUT_S)
        self.deadline = time.monotonic() + self.timeout
        self.what = what or getattr(fn, "__name__", "condition")
        self.last: Any = None
        self.err: Exception | None = None

    def attempt(self) -> bool:
        try:
            self.last = self.fn()
            self.err = None
        except Exception as exc:  # conditions often raise while a lab converges
            self.err = exc
            return False
        return bool(self.last)

    def give_up(self) -> None:
        """Raise :class:`WaitTimeout` once the deadline has passed."""
        if time.monotonic() >= self.deadline:
            detail = f"last error: {self.err!r}" if self.err else f"last value: {self.last!r}"
            raise WaitTimeout(f"{self.what} not met in {self.timeout}s; {detail}")


def wait_for(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.25,
             what: str | None = None) -> T:
    """Call ``fn`` until it returns a truthy value (returned) or ``timeout`` passes (raises).

    ``timeout`` is raised to :data:`MIN_TIMEOUT_S` at least.
    """
    tries = _Attempts(fn, timeout, what)
    while not tries.attempt():
        tries.give_up()
        time.sleep(interval)
    return tries.last


async def wait_for_async(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
                         what: str | None = None) -> T:
    """:func:`wait_for` for code under test that runs in the caller's event loop (it keeps running
    between attempts). ``fn`` is a plain callable, checked between loop turns."""
    tries = _Attempts(fn, timeout, what)
    while not tries.attempt():
        tries.give_up()
        await asyncio.sleep(interval)
    return tries.last


def wait_json(fn: Callable[[], Any], expected: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
    """Poll ``fn`` until its JSON result contains ``expected`` (see :func:`json_subset`)."""
    box: dict[str, Any] = {}

    def check() -> bool:
        box["value"] = fn()
        box["diff"] = json_subset(expected, box["value"])
        return not box["diff"]

    try:
        wait_for(check, timeout, interval)
    except WaitTimeout as exc:
        diff = "; ".join(box.get("diff", []))
        raise WaitTimeout(f"JSON did not match in {max(timeout, MIN_TIMEOUT_S)}s: {diff}") from exc
    return box["value"]
