"""What every request passes before routing: body size, content type, trailing slash, and a last
resort that turns a crash into a 500 envelope without dropping the keep-alive connection.

A plain ASGI middleware (no per-request objects beyond a closure) because it runs on every request
and is on the hot path of the benchmarks.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cnilab.mock_api.errors import BAD_REQUEST, INTERNAL, error_body
from cnilab.mock_api.limits import MAX_BODY_BYTES

log = logging.getLogger("cnilab.api")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PAYLOAD_TOO_LARGE = 413
UNSUPPORTED_MEDIA = 415


async def send_error(send: Any, status: int, code: int, message: str,
                     headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(code, message)).encode()
    hdrs = {"content-type": "application/json", "content-length": str(len(body)), **(headers or {})}
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class RequestGuard:
    def __init__(self, app: Any, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # Answer the route itself: Starlette would send an empty 307 that clients mishandle.
            scope = dict(scope, path=path.rstrip("/") or "/",
                         raw_path=scope.get("raw_path", path.encode()).rstrip(b"/") or b"/")
        if scope["method"] in _BODY_METHODS:
            receive = await self._checked_body(scope, receive, send)
            if receive is None:
                return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_error(send, 500, INTERNAL, f"Internal server error: {type(exc).__name__}")

    async def _checked_body(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Read the body (at most ``max_body`` bytes) and check its type; None if already answered."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await send_error(send, PAYLOAD_TOO_LARGE, BAD_REQUEST,
                             f"request body is {int(length)} bytes; the limit is {self.max_body}",
                             {"connection": "close"})
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_error(send, PAYLOAD_TOO_LARGE, BAD_REQUEST,
                                 f"request body is over the limit of {self.max_body} bytes", {"connection": "close"})
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if body and not (ctype == "application/json" or ctype.endswith("+json")):
            await send_error(send, UNSUPPORTED_MEDIA, BAD_REQUEST,
                             f"Content-Type: the body must be sent as application/json "
                             f"(got {ctype or 'no Content-Type header'!r})")
            return None
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
