"""The one error type the emulator raises, and its turning into the service's JSON error body.

Every error answer, from a route, a guard, a fault rule or Starlette's own routing, has the
body `{"errorCode": ..., "message": ...}` with a JSON content type, as the Swagger's Error
schema says. A 429 always carries `Retry-After` in seconds, a 405 `Allow` with every method the
path takes.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match

from emulator.jsonresponse import SafeJSONResponse

log = logging.getLogger("emulator")

INVALID_JSON = "INVALID_JSON"
"""The service's code for every malformed or invalid request (its only documented 400 code)."""
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
DEFAULT_RETRY_AFTER_SECONDS = 1
"""`Retry-After` sent with a 429 when nothing more precise is known."""

_ROUTING_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class EmulatorError(Exception):
    """An error answer: HTTP status, the service's `errorCode`, and a message for humans."""

    def __init__(self, status: int, error_code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status of the answer."""
        self.error_code = error_code
        """The `errorCode` field of the body."""
        self.message = message
        """The `message` field of the body."""
        self.retry_after = retry_after
        """Seconds for the `Retry-After` header; 429 answers get a default when None."""


def invalid(message: str) -> EmulatorError:
    """A 400 INVALID_JSON: the request is malformed or breaks the item/identity model."""
    return EmulatorError(400, INVALID_JSON, message)


def error_response(error: EmulatorError) -> SafeJSONResponse:
    """The JSON answer for `error`, with `Retry-After` where the status calls for it."""
    headers = {}
    retry_after = error.retry_after
    if retry_after is None and error.status == 429:
        retry_after = DEFAULT_RETRY_AFTER_SECONDS
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"errorCode": error.error_code, "message": error.message}
    return SafeJSONResponse(body, status_code=error.status, headers=headers)


async def handle_emulator_error(request: Request, exc: Exception) -> SafeJSONResponse:
    """Exception handler for `EmulatorError`."""
    assert isinstance(exc, EmulatorError)
    return error_response(exc)


async def handle_routing_error(request: Request, exc: Exception) -> SafeJSONResponse:
    """Starlette's own 404/405 (no such route or method), in the service's error shape."""
    assert isinstance(exc, HTTPException)
    code = _ROUTING_CODES.get(exc.status_code, "BAD_REQUEST")
    response = error_response(EmulatorError(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}"))
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
    return response


def allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at the request's path. Starlette's own 405 names only the
    methods of the first route that matched the path, and each method has a route of its own here."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return methods


async def handle_client_disconnect(request: Request, exc: Exception) -> SafeJSONResponse:
    """The client left before its body ended: nobody reads this answer, the request log keeps it."""
    return error_response(EmulatorError(400, "CLIENT_DISCONNECTED", "the client closed the connection mid-request"))


async def handle_unexpected(request: Request, exc: Exception) -> SafeJSONResponse:
    """A bug in the emulator: still a JSON error body, never a traceback to the client."""
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(EmulatorError(500, "INTERNAL_ERROR", "the emulator failed; see its log"))
