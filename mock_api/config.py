"""Server settings: accounts and their credentials, the database path, chaos and rate limits.

Loaded from YAML or JSON through pydantic so a typo in a config file is a clear error naming the
file, the field and the value instead of a server that silently ignores it. With no file the
server runs with one development account, like LocalStack's well-known test credentials.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEV_ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
DEV_TOKEN = "cnilab-dev-token"
DEV_EMAIL = "dev@cnilab.local"
DEV_KEY = "cnilab-dev-key"

_ACCOUNT_RE = re.compile(r"^[0-9a-f]{32}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiKey(_Strict):
    """A legacy Global API Key credential (``X-Auth-Email`` + ``X-Auth-Key``)."""

    email: str
    key: str


class Account(_Strict):
    id: str = Field(description="32-hex account tag, as Cloudflare's")
    name: str = Field(default="cnilab account", description="Printed on the LOA unless ?name= overrides it")
    tokens: list[str] = Field(default_factory=list, description="API tokens (Authorization: Bearer)")
    api_keys: list[ApiKey] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _hex_tag(cls, v: str) -> str:
        if not _ACCOUNT_RE.match(v):
            raise ValueError(f"account id must be 32 lowercase hex characters, got {v!r}")
        return v


class Chaos(_Strict):
    """Faults for testing clients' retry logic; off unless configured. Seeded, so runs repeat."""

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0)
    rate_429: float = Field(default=0.0, ge=0, le=1, description="fraction of requests answered 429")
    rate_5xx: float = Field(default=0.0, ge=0, le=1, description="fraction of requests answered 500/502/503")
    retry_after_s: int = Field(default=1, ge=0)


class RateLimit(_Strict):
    """Cloudflare's documented client API limit: 1200 requests per 5 minutes per token."""

    quota: int = Field(default=1200, ge=1)
    window_s: int = Field(default=300, ge=1)
    enforce: bool = True


class ApiSettings(_Strict):
    db: Path = Field(default=Path("cnilab-api.sqlite3"), description="SQLite file; ':memory:' is not supported")
    accounts: list[Account] = Field(default_factory=list)
    chaos: Chaos = Field(default_factory=Chaos)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    lab: str | None = Field(default=None, description="Running lab to drive (edge BGP, link state)")
    p2p_pool: str = Field(default="192.0.2.0/24", description="Where /31s for new CNIs come from when unbound")
    default_page_size: int = Field(default=100, ge=1)
    max_page_size: int = Field(default=1000, ge=1)

    @field_validator("lab")
    @classmethod
    def _lab_name(cls, v: str | None) -> str | None:
        from cnilab.sim.runtime.names import validate_lab_name

        return None if v is None else validate_lab_name(v, where="lab")

    @model_validator(mode="after")
    def _defaults(self) -> ApiSettings:
        if not self.accounts:
            self.accounts = [Account(id=DEV_ACCOUNT, name="cnilab development account", tokens=[DEV_TOKEN],
                                     api_keys=[ApiKey(email=DEV_EMAIL, key=DEV_KEY)])]
        seen: set[str] = set()
        for acc in self.accounts:
            if acc.id in seen:
                raise ValueError(f"accounts: account id {acc.id!r} is listed twice")
            seen.add(acc.id)
        owners: dict[str, str] = {}
        for acc in self.accounts:
            for tok in acc.tokens:
                if tok in owners and owners[tok] != acc.id:
                    raise ValueError(f"accounts: token {tok[:6]}... is given to two accounts")
                owners[tok] = acc.id
        return self

    @property
    def is_dev(self) -> bool:
        return [a.id for a in self.accounts] == [DEV_ACCOUNT] and DEV_TOKEN in self.accounts[0].tokens


class SettingsError(ValueError):
    """A config file problem, phrased as 'file: field: value: why'."""


def load_settings(path: Path | str | None = None, **overrides: object) -> ApiSettings:
    """Read a YAML/JSON config file (or none) and apply CLI overrides (``db=``, ``lab=``)."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read config file: {exc.strerror}") from None
        try:
            raw = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise SettingsError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ApiSettings.model_validate(raw)
    except ValidationError as err:
        where = str(path) if path else "settings"
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            problems.append(f"{loc}: {e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r})")
        raise SettingsError(f"{where}: " + "; ".join(problems)) from None
