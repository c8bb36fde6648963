"""Retry-until helpers for lab tests, in the spirit of FRR topotests' ``run_and_expect``/``json_cmp``.

Labs converge; tests should wait for a condition with a deadline instead of sleeping a fixed time,
and compare JSON by subset so that a new field in an answer does not break a test.
"""

from __future__ import annotations

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


def wait_for(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.25,
             what: str | None = None) -> T:
    """Call ``fn`` until it returns a truthy value (returned) or ``timeout`` passes (raises).

    ``timeout`` is raised to :data:`MIN_TIMEOUT_S` at least.
    """
    timeout = max(timeout, MIN_TIMEOUT_S)
    deadline = time.monotonic() + timeout
    last: Any = None
    err: Exception | None = None
    while True:
        try:
            last = fn()
            err = None
            if last:
                return last
        except Exception as exc:  # conditions often raise while a lab converges
            err = exc
        if time.monotonic() >= deadline:
            detail = f"last error: {err!r}" if err else f"last value: {last!r}"
            raise WaitTimeout(f"{what or getattr(fn, '__name__', 'condition')} not met in {timeout}s; {detail}")
        time.sleep(interval)


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
        raise WaitTimeout(f"JSON did not match in {timeout}s: {'; '.join(box.get('diff', []))}") from exc
    return box["value"]
