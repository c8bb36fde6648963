"""What Cloudflare's API gateway does before a request reaches the CNI service: authenticate, rate
limit (``Ratelimit``/``Ratelimit-Policy`` headers, 429 + ``Retry-After``) and, for client testing,
optional seeded chaos. A plain ASGI middleware: it runs for unknown routes too, so a request with no
credentials gets 9106 whether or not the route exists, as on api.cloudflare.com.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from cnilab.mock_api.config import ApiSettings
from cnilab.mock_api.errors import (
    AUTH_ERROR,
    BAD_AUTH_FORMAT,
    BAD_HEADERS,
    INTERNAL,
    INVALID_TOKEN,
    MISSING_AUTH,
    RATE_LIMITED,
    UNKNOWN_KEY,
    CFError,
    error_body,
)

PROTECTED = ("/client/v4/", "/lab/v1/")
PUBLIC = frozenset({"/lab/v1/openapi.json"})
ACCOUNTS = "/client/v4/accounts/"


@dataclass
class Identity:
    """Who is calling: the accounts the credential may act on, and a key for rate limiting.

    Cloudflare counts its limit per user, whichever credential (token or email + key) the user
    sends; here the account stands for its user, so switching credential gains no quota.
    """

    accounts: frozenset[str]
    key: str


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class Gateway:
    settings: ApiSettings
    tokens: dict[str, str] = field(init=False)
    keys: dict[tuple[str, str], str] = field(init=False)
    windows: dict[str, _Window] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = {t: a.id for a in self.settings.accounts for t in a.tokens}
        self.keys = {(k.email.lower(), k.key): a.id for a in self.settings.accounts for k in a.api_keys}
        self.rng = random.Random(self.settings.chaos.seed)

    def authenticate(self, headers: dict[str, str]) -> Identity:
        auth = headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise CFError(400, BAD_HEADERS, "Invalid request headers",
                              chain=[{"code": BAD_AUTH_FORMAT, "message": "Invalid format for Authorization header"}])
            account = self.tokens.get(token.strip())
            if account is None:
                raise CFError(403, INVALID_TOKEN, "Invalid access token")
            return Identity(frozenset({account}), "user:" + account)
        email, key = headers.get("x-auth-email"), headers.get("x-auth-key")
        if email and key:
            account = self.keys.get((email.strip().lower(), key.strip()))
            if account is None:
                raise CFError(403, UNKNOWN_KEY, "Unknown X-Auth-Key or X-Auth-Email")
            return Identity(frozenset({account}), "user:" + account)
        raise CFError(400, MISSING_AUTH, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")

    def count(self, key: str, now: float) -> tuple[dict[str, str], bool]:
        """Fixed-window counter per user; returns the headers and whether the request is over."""
        rl = self.settings.rate_limit
        w = self.windows.get(key)
        if w is None or now - w.start >= rl.window_s:
            w = self.windows[key] = _Window(start=now)
        w.count += 1
        reset = max(1, math.ceil(w.start + rl.window_s - now))
        remaining = max(0, rl.quota - w.count)
        headers = {"ratelimit": f'"default";r={remaining};t={reset}',
                   "ratelimit-policy": f'"default";q={rl.quota};w={rl.window_s}'}
        over = rl.enforce and w.count > rl.quota
        if over:
            headers["retry-after"] = str(reset)
        return headers, over

    def chaos(self) -> tuple[int, dict[str, str]] | None:
        c = self.settings.chaos
        if c.rate_429 and self.rng.random() < c.rate_429:
            return 429, {"retry-after": str(c.retry_after_s)}
        if c.rate_5xx and self.rng.random() < c.rate_5xx:
            return self.rng.choice((500, 502, 503)), {}
        return None


class GatewayMiddleware:
    def __init__(self, app: Any, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED) or scope["path"] in PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        extra: dict[str, str] = {}
        try:
            ident = self.gw.authenticate(headers)
            extra, over = self.gw.count(ident.key, time.monotonic())
            if over:
                raise CFError(429, RATE_LIMITED, "Please wait and consider throttling your request speed")
            path = scope["path"]
            # The path's account must be one the credential belongs to; otherwise no data,
            # whether or not the rest of the route exists.
            if path.startswith(ACCOUNTS) and path[len(ACCOUNTS):].split("/", 1)[0] not in ident.accounts:
                raise CFError(401, AUTH_ERROR, "Authentication error")
            if scope["path"].startswith("/client/v4/"):
                if self.gw.settings.chaos.latency_ms:
                    await asyncio.sleep(self.gw.settings.chaos.latency_ms / 1000)
                hit = self.gw.chaos()
                if hit:
                    status, hdrs = hit
                    extra.update(hdrs)
                    if status == 429:
                        raise CFError(429, RATE_LIMITED, "Please wait and consider throttling your request speed")
                    raise CFError(status, INTERNAL, f"Internal server error (cnilab chaos: injected {status})")
        except CFError as exc:
            await _send_error(send, exc, extra)
            return
        scope.setdefault("state", {})["identity"] = ident

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(k.encode(), v.encode()) for k, v in extra.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _send_error(send: Any, exc: CFError, extra: dict[str, str]) -> None:
    body = json.dumps(error_body(exc.code, exc.message, exc.chain)).encode()
    hdrs = {"content-type": "application/json", "content-length": str(len(body)), **extra, **exc.headers}
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()]})
    await send({"type": "http.response.body", "body": body})
