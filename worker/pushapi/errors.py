"""Exceptions of the Push API client, shaped so that callers can act on the class alone.

    PushApiError
    ├── InvalidInputError            refused before any request was sent
    │   └── ItemTooLargeError        an item over the container limit
    ├── TransportError               no answer: retry          (retryable)
    │   ├── ConnectError
    │   └── TimeoutError
    └── StatusError                  the service answered an error status
        ├── ThrottledError           429, wait `retry_after`   (retryable)
        ├── ServerError              5xx                       (retryable)
        ├── QuotaError               pause the source, retrying today does not help
        │   ├── DocumentLimitExceeded        412 DOCUMENT_LIMIT_EXCEEDED
        │   └── DailyDocumentQuotaExceeded   429 TOO_MANY_DOCUMENTS_DAILY
        ├── AuthError                stop pushing: the key is wrong
        │   ├── UnauthorizedError    401
        │   └── AccessDeniedError    403
        ├── NotFoundError            404 unknown organization, source or provider
        ├── PayloadTooLargeError     413: split and send again
        ├── InvalidRequestError      400, 415 and other 4xx: dead-letter
        │   └── OrganizationPausedError  400 ORGANIZATION_IS_PAUSED
        └── ContainerExpiredError    the file container is gone: make a new one

No exception carries the API key: the client never puts it in a message, and the request
headers are not kept on the exception.
"""

from __future__ import annotations


class PushApiError(Exception):
    """Base of every error the Push API client raises."""

    retryable = False

    def __init__(self, message: str, *, operation: str = "", target: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        """The client operation that failed, e.g. `push_documents_batch`."""
        self.target = target
        """The source or provider id the operation addressed, when it had one."""
        self.file_ids: list[str] = []
        """The file containers of the batch being pushed when this happened (set by ContainerPusher)."""

    def __str__(self) -> str:
        where = " ".join(part for part in (self.operation, self.target and f"[{self.target}]") if part)
        return f"{where}: {self.message}" if where else self.message

    def log_fields(self) -> dict[str, object]:
        """The error as fields of a structured log line."""
        return {"error": type(self).__name__, "operation": self.operation}


class InvalidInputError(PushApiError, ValueError):
    """The caller's input breaks the contract; nothing was sent."""


class ItemTooLargeError(InvalidInputError):
    """An item's content or JSON is larger than one file container can hold."""

    def __init__(self, document_id: str, size: int, limit: int) -> None:
        super().__init__(f"item {document_id!r} is {size} bytes, over the {limit}-byte container limit")
        self.document_id = document_id
        self.size = size
        self.limit = limit


class TransportError(PushApiError):
    """The request got no HTTP answer."""

    retryable = True


class ConnectError(TransportError):
    """The connection could not be opened or was reset."""


class TimeoutError(TransportError):  # noqa: A001 - mirrors httpx's naming inside this namespace
    """The service did not answer within the timeout."""


class StatusError(PushApiError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: str = "",
        operation: str = "",
        target: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, target=target)
        self.status = status
        """The HTTP status the service answered."""
        self.error_code = error_code
        """The service's `errorCode`, empty when the body had none."""
        self.retry_after = retry_after
        """Seconds the service asked to wait (`Retry-After`), if it said."""

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        return f"{super().__str__()} (HTTP {self.status}{code})"

    def log_fields(self) -> dict[str, object]:
        return {**super().log_fields(), "status": self.status, "errorCode": self.error_code}


class ThrottledError(StatusError):
    """429: too many calls; wait `retry_after` seconds when given."""

    retryable = True


class ServerError(StatusError):
    """5xx: the service failed; the same request may succeed later."""

    retryable = True


class QuotaError(StatusError):
    """The organization's allowance is used up: pause the source instead of retrying."""


class DocumentLimitExceeded(QuotaError):
    """412 DOCUMENT_LIMIT_EXCEEDED: the organization holds as many items as it may."""


class DailyDocumentQuotaExceeded(QuotaError):
    """429 TOO_MANY_DOCUMENTS_DAILY: today's item allowance is spent."""


class AuthError(StatusError):
    """The API key is missing, wrong, or lacks a privilege: stop pushing."""


class UnauthorizedError(AuthError):
    """401: no key or an invalid one."""


class AccessDeniedError(AuthError):
    """403: the key lacks a privilege for this operation."""


class NotFoundError(StatusError):
    """404: unknown organization, source or provider."""


class PayloadTooLargeError(StatusError):
    """413: the request or container was too large; split it."""


class InvalidRequestError(StatusError):
    """400, 415 or another 4xx: the request itself is wrong and will not succeed as it is."""


class OrganizationPausedError(InvalidRequestError):
    """400 ORGANIZATION_IS_PAUSED: the organization must be resumed in Coveo first."""


class ContainerExpiredError(StatusError):
    """The file container expired or was consumed already: create a new one."""
