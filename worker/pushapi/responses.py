"""Turning an error answer of the service into the exception class a caller can act on."""

from __future__ import annotations

import requests

from worker.pushapi import errors
from worker.pushapi.retry import parse_retry_after

MAX_MESSAGE_CHARS = 500
"""How much of an error body is kept: enough to read, never a whole echoed batch."""
FILE_NOT_FOUND_CODE = "FILE_NOT_FOUND"
"""UNCONFIRMED: the code the service gives for a consumed or expired `fileId` is not documented;
the emulator answers 404 with this code and we treat it as "make a new container"."""

_BY_STATUS: dict[int, type[errors.StatusError]] = {
    400: errors.InvalidRequestError,
    401: errors.UnauthorizedError,
    403: errors.AccessDeniedError,
    404: errors.NotFoundError,
    412: errors.InvalidRequestError,
    413: errors.PayloadTooLargeError,
    415: errors.InvalidRequestError,
    429: errors.ThrottledError,
}
_BY_CODE: dict[tuple[int, str], type[errors.StatusError]] = {
    (412, "DOCUMENT_LIMIT_EXCEEDED"): errors.DocumentLimitExceeded,
    (429, "TOO_MANY_DOCUMENTS_DAILY"): errors.DailyDocumentQuotaExceeded,
    (400, "ORGANIZATION_IS_PAUSED"): errors.OrganizationPausedError,
}


def error_from_response(
    response: requests.Response, *, operation: str, target: str, file_id: str | None = None
) -> errors.StatusError:
    """The `StatusError` subclass for an answer of 400 or more.

    operation: the client method that sent the request.
    target: the source or provider it addressed.
    file_id: the container a batch call referenced, so a vanished one is told apart from a 404 source.
    """
    status = response.status_code
    code, message = _error_body(response)
    if file_id and code == FILE_NOT_FOUND_CODE:
        cls: type[errors.StatusError] = errors.ContainerExpiredError
    elif status >= 500:
        cls = errors.ServerError
    else:
        cls = _BY_CODE.get((status, code)) or _BY_STATUS.get(status, errors.InvalidRequestError)
    return cls(
        message or response.reason or "error",
        status=status,
        error_code=code,
        operation=operation,
        target=target,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:MAX_MESSAGE_CHARS]
    if not isinstance(body, dict):
        return "", str(body)[:MAX_MESSAGE_CHARS]
    return str(body.get("errorCode") or ""), str(body.get("message") or "")[:MAX_MESSAGE_CHARS]
