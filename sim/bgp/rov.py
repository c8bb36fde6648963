"""Route origin validation (RFC 6811) of what a customer announces, against the customer's ROAs.

The topology may list ROAs inline or point to a local RFC 8416 SLURM file (its
``locallyAddedAssertions.prefixAssertions``), so "what happens on the day if my ROA is wrong?" is a
test: the edge marks every received route valid / invalid / not-found and refuses invalid ones with
a reason naming the ROA, the max length and the origin it allows.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cnilab.sim.bgp.policy import PolicyDecision
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
RovState = Literal["valid", "invalid", "not-found"]


class Roa(BaseModel):
    """One Route Origin Authorisation: who may originate ``prefix`` and how specific."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: Network
    max_length: int | None = Field(default=None, description="Longest prefix allowed (default: the ROA's own length)")
    origin: int = Field(ge=0, le=4294967295, description="AS allowed to originate it (AS0: nobody, RFC 6483)")

    @model_validator(mode="after")
    def _max_length(self) -> Roa:
        top = 32 if self.prefix.version == 4 else 128
        ml = self.max_length if self.max_length is not None else self.prefix.prefixlen
        if not self.prefix.prefixlen <= ml <= top:
            raise ValueError(f"max_length {ml} for {self.prefix}: must be between {self.prefix.prefixlen} and {top}")
        return self

    @property
    def max_len(self) -> int:
        return self.max_length if self.max_length is not None else self.prefix.prefixlen

    def describe(self) -> str:
        return f"ROA for {self.prefix} allows max length {self.max_len}, origin AS{self.origin}"


class Rpki(BaseModel):
    """``rpki:`` in a topology: the customer's ROAs, inline and/or from a SLURM file (RFC 8416)."""

    model_config = ConfigDict(extra="forbid")

    roas: list[Roa] = Field(default_factory=list)
    slurm: Path | None = Field(default=None, description="RFC 8416 SLURM JSON, relative to the topology file")

    @model_validator(mode="after")
    def _load_slurm(self, info: ValidationInfo) -> Rpki:
        if self.slurm is None:
            return self
        base = (info.context or {}).get("base_dir") if info.context else None
        path = self.slurm if self.slurm.is_absolute() or base is None else Path(base) / self.slurm
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"slurm file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"slurm file {path}: not JSON ({exc})") from None
        asserts = (doc.get("locallyAddedAssertions") or {}).get("prefixAssertions") if isinstance(doc, dict) else None
        if not isinstance(asserts, list):
            raise ValueError(f"slurm file {path}: no locallyAddedAssertions.prefixAssertions list (RFC 8416 3.4.2)")
        for i, a in enumerate(asserts):
            try:
                self.roas.append(Roa(prefix=a["prefix"], max_length=a.get("maxPrefixLength"), origin=a["asn"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"slurm file {path}: prefixAssertions[{i}] = {a!r}: {exc}") from None
        self.slurm = path
        return self


def validate(prefix: Network, as_path: Sequence[int], roas: Sequence[Roa]) -> tuple[RovState, str]:
    """RFC 6811 2.1: covered by no ROA -> not-found; matched by one (origin and length) -> valid."""
    covering = [r for r in roas if r.prefix.version == prefix.version and prefix.subnet_of(r.prefix)]  # type: ignore[arg-type]
    if not covering:
        return "not-found", f"no ROA covers {prefix}"
    origin = as_path[-1] if as_path else None
    for r in covering:
        if origin is not None and r.origin == origin and r.origin != 0 and prefix.prefixlen <= r.max_len:
            return "valid", f"{r.describe()}: matches"
    said = "; ".join(r.describe() for r in covering)
    return "invalid", f"{said}; you announced /{prefix.prefixlen} from AS{origin}"


def apply(dec: PolicyDecision, as_path: Sequence[int], roas: Sequence[Roa] | None) -> PolicyDecision:
    """Refuse an otherwise accepted route that is RPKI invalid (no-op when ROV is not configured)."""
    if roas is None or not dec.accepted:
        return dec
    state, why = validate(dec.prefix, as_path, roas)
    if state != "invalid":
        return dec
    return PolicyDecision(prefix=dec.prefix, accepted=False, rule="rpki-invalid",
                          reason=f"{dec.prefix} is RPKI invalid: {why}")
