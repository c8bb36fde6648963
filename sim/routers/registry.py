"""The router-kind registry: kind name -> :class:`~cnilab.sim.routers.base.CustomerRouter` subclass.

As containerlab's ``nodes/<kind>`` + ``Register(kindnames, ...)``: each kind module registers its
class under its name, and ``sim/data/router-kinds.yaml`` (netlab's ``devices/<kind>.yml``) says
which module holds it, so a kind is imported only when a lab uses it. CLI choices, schema enums and
the topology Literal come from the same data (:func:`cnilab.sim.facts.router_kind_names`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from cnilab.sim.facts import router_kind_names, router_kinds
from cnilab.sim.routers.base import CustomerRouter

_KINDS: dict[str, type[CustomerRouter]] = {}
C = TypeVar("C", bound=type[CustomerRouter])


def register(*names: str) -> Callable[[C], C]:
    """Class decorator: ``@register("frr")`` makes the class the implementation of kind ``frr`` (its ``kind``)."""

    def deco(cls: C) -> C:
        cls.kind = names[0]
        for n in names:
            if n not in router_kinds():
                raise LookupError(f"router kind {n!r} has no entry in sim/data/router-kinds.yaml")
            _KINDS[n] = cls
        return cls

    return deco


def router_class(kind: str) -> type[CustomerRouter] | None:
    """The class of ``kind``, importing its module on first use; None for a kind with no module (external)."""
    info = router_kinds().get(kind)
    if info is None:
        raise LookupError(f"unknown router kind {kind!r}; known: {', '.join(router_kind_names())}")
    if info.module is None:
        return None
    if kind not in _KINDS:
        importlib.import_module(info.module)
    if kind not in _KINDS:
        raise LookupError(f"{info.module} does not register router kind {kind!r}")
    return _KINDS[kind]


def lab_kinds() -> dict[str, type[CustomerRouter]]:
    """Every kind cnilab can run in a lab, by name."""
    return {n: c for n in router_kind_names(in_lab=True) if (c := router_class(n)) is not None}


def sniff_kind(text: str) -> str | None:
    """The kind whose syntax ``text`` is written in, or None (first match in data order)."""
    return next((n for n, c in lab_kinds().items() if c.sniff(text)), None)


def kinds_help() -> str:
    """``frr, bird or gobgp``: for CLI help and error messages."""
    names = router_kind_names(in_lab=True)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
