"""What every Push API route checks first, and the query parameters the routes share.

Order of the checks, as a gateway in front of the service would make them: the Bearer key
(401), the organization (404), whether it is paused (400), the day's call allowance (429), the
Content-Type of operations that consume JSON (415); then each route's parameters and body.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from emulator.batchfile import BatchEntry, read_batch_file
from emulator.errors import EmulatorError, invalid
from emulator.item_body import is_uri
from emulator.jsonresponse import SafeJSONResponse
from emulator.limits import DEFAULT_QUEUE_DELAY_MINUTES
from emulator.state import Emulator, Organization

_INT64 = re.compile(r"-?\d{1,19}")
_INT64_MAX = 2**63 - 1
_BOOLEANS = {"true": True, "false": False}
JSON_MEDIA_TYPE = "application/json"


def current(request: Request) -> Emulator:
    """The emulator generation in force."""
    return request.app.state.holder.current


@dataclass(slots=True)
class PushCall:
    """A Push API call that passed the common checks."""

    emulator: Emulator
    organization: Organization
    request: Request

    def ordering_id(self) -> int:
        """The call's orderingId: the one given, else the service's epoch milliseconds now."""
        given = ordering_id_param(self.request, required=False)
        return given if given is not None else self.emulator.clock.now_ms()


async def push_call(request: Request, *, consumes_json: bool) -> PushCall:
    """Run the common checks; `consumes_json`: the Swagger lists application/json for the operation."""
    emulator = current(request)
    organization = authenticated(request, emulator)
    if organization.paused:
        raise EmulatorError(400, "ORGANIZATION_IS_PAUSED", f"organization {organization.id!r} is paused")
    emulator.quotas.count_request(emulator.limits.daily_request_limit)
    if consumes_json:
        _require_json(request.headers.get("content-type"))
    return PushCall(emulator, organization, request)


def authenticated(request: Request, emulator: Emulator) -> Organization:
    """The organization the request addresses, once its Bearer key is the emulator's (401, 404)."""
    _authenticate(request.headers.get("authorization"), emulator.config.api_key)
    return emulator.organization(request.path_params["organizationId"])


def success(status: int) -> Response:
    """A success the Swagger gives no schema (201 set status, every 202): `{}` as JSON. The file
    says these operations produce JSON, and strict clients parse every answer (Coveo's JS client
    fails on an empty 201); the service's exact body is UNCONFIRMED, an empty object is the safe one."""
    return SafeJSONResponse({}, status_code=status)


def accepted() -> Response:
    """202: accepted, not yet applied."""
    return success(202)


def required(request: Request, name: str) -> str:
    """A required query parameter, or a 400."""
    value = request.query_params.get(name)
    if not value:
        raise invalid(f"the query parameter {name} is required")
    return value


def ordering_id_param(request: Request, *, required: bool) -> int | None:
    """The orderingId parameter: an int64, never negative (it is epoch milliseconds)."""
    value = request.query_params.get("orderingId")
    if value is None and not required:
        return None
    if value is None or not _INT64.fullmatch(value) or not 0 <= int(value) <= _INT64_MAX:
        raise invalid("orderingId must be a non-negative 64-bit integer (epoch milliseconds)")
    return int(value)


def boolean(request: Request, name: str, default: bool) -> bool:
    """A true/false query parameter."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() not in _BOOLEANS:
        raise invalid(f"{name} must be true or false")
    return _BOOLEANS[value.lower()]


def choice(request: Request, name: str, allowed: tuple[str, ...], *, required: bool) -> str | None:
    """A query parameter that must be one of `allowed` (case-sensitive, as the Swagger's enums)."""
    value = request.query_params.get(name)
    if value is None and not required:
        return None
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}")
    return value


def document_uri(request: Request) -> str:
    """The documentId parameter, which must be a URI."""
    value = required(request, "documentId")
    if not is_uri(value):
        raise invalid("documentId must be a URI such as https://... or file://...")
    return value


def queue_delay_seconds(request: Request) -> int:
    """The queueDelay parameter (minutes, default 15), in seconds."""
    value = request.query_params.get("queueDelay")
    if value is None:
        return DEFAULT_QUEUE_DELAY_MINUTES * 60
    if not value.isdigit() or int(value) > 2**31 - 1:
        raise invalid("queueDelay must be a non-negative number of minutes")
    return int(value) * 60


async def batch_entries(call: PushCall, sections: frozenset[str]) -> tuple[str, int, list[BatchEntry]]:
    """A batch call's fileId, orderingId and file entries. The file's JSON and shape are checked
    here, in a worker thread (400 INVALID_JSON); its container stays unused until the call succeeds."""
    file_id = required(call.request, "fileId")
    operation_id = call.ordering_id()
    container = call.emulator.containers.check_uploaded(file_id)
    return file_id, operation_id, await asyncio.to_thread(read_batch_file, container.path, sections)


def older_than(call: PushCall, operation: Callable[[int], Awaitable[None]]) -> Response:
    """Queue an `olderthan` call: `operation` takes its orderingId and runs queueDelay minutes later."""
    threshold = ordering_id_param(call.request, required=True)
    delay = queue_delay_seconds(call.request)
    call.emulator.scheduler.submit(partial(operation, threshold), extra_delay=delay)
    return accepted()


def _authenticate(header: str | None, api_key: str) -> None:
    if header is None:
        raise EmulatorError(401, "UNAUTHORIZED", "no Authorization header: send Authorization: Bearer <API key>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EmulatorError(401, "UNAUTHORIZED", "the Authorization header must be Bearer <API key>")
    if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise EmulatorError(401, "INVALID_TOKEN", "the access token is not recognized for this organization")


def _require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        message = f"Content-Type must be {JSON_MEDIA_TYPE}, not {content_type!r}"
        raise EmulatorError(415, "UNSUPPORTED_MEDIA_TYPE", message)
