"""Cloudflare's error format and the codes its API gateway uses.

Success bodies of the CNI endpoints are bare objects, but every error - from the gateway (auth,
routing, rate limit) or from the CNI service - is the v4 failure envelope
``{success: false, errors: [{code, message}], messages: [], result: null}``. Gateway codes are the
ones Cloudflare really sends; the 1xxx service codes are this mock's own (the real service's are
not published) and are listed in mock_api/README.md.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# Gateway codes, as Cloudflare's API answers them.
MISSING_AUTH = 9106        # 400 "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
INVALID_TOKEN = 9109       # 403 "Invalid access token"
UNKNOWN_KEY = 9103         # 403 "Unknown X-Auth-Key or X-Auth-Email"
AUTH_ERROR = 10000         # 401 "Authentication error" (valid credential, not for this account)
BAD_HEADERS = 6003         # 400 "Invalid request headers", with an error_chain
BAD_AUTH_FORMAT = 6111     # chain: "Invalid format for Authorization header"
NO_ROUTE = 7003            # 404 "No route for the URI"
METHOD_NOT_ALLOWED = 7001  # 405 "Method not allowed for this endpoint"
RATE_LIMITED = 971         # 429 "Please wait and consider throttling your request speed"

# Service codes (this mock's; see README).
BAD_REQUEST = 1001
RENAMED_FIELD = 1002
NOT_FOUND = 1003
CONFLICT = 1004
INTERNAL = 1000


class CFError(Exception):
    """Raise anywhere in a request; the app turns it into Cloudflare's failure envelope."""

    def __init__(self, status: int, code: int, message: str, chain: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.chain = chain
        self.headers = headers or {}


def bad_request(message: str) -> CFError:
    return CFError(400, BAD_REQUEST, message)


def not_found(message: str) -> CFError:
    return CFError(404, NOT_FOUND, message)


def conflict(message: str) -> CFError:
    return CFError(409, CONFLICT, message)


def error_body(code: int, message: str, chain: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if chain:
        err["error_chain"] = chain
    return {"success": False, "errors": [err], "messages": [], "result": None}


def error_response(exc: CFError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.chain), status_code=exc.status, headers=exc.headers)
