"""The one rule for lab names.

A lab name becomes part of a namespace name, a state directory and (through the mock API's
``/lab/v1`` routes) a path joined from user input. One strict pattern, checked wherever a name
enters (CLI, topology, API, state directory), keeps every one of those inside its root.
"""

from __future__ import annotations

import re

LAB_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
_LAB_NAME_RE = re.compile(LAB_NAME_PATTERN)


class BadLabName(ValueError):
    """A lab name outside :data:`LAB_NAME_PATTERN`; the message names the value and the rule."""


def validate_lab_name(name: str, *, where: str = "lab name") -> str:
    """Return ``name`` unchanged if it is a valid lab name, else raise :class:`BadLabName`."""
    if not isinstance(name, str) or not _LAB_NAME_RE.fullmatch(name):
        raise BadLabName(
            f"{where} {name!r} is not a valid lab name: use 1-32 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name
