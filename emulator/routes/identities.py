"""Security identity operations: identities, aliases, disabling, batches, old identities."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import indexing
from emulator.batchfile import BatchEntry
from emulator.bodies import parse_json, read_limited
from emulator.identities import Provider
from emulator.identity_body import (
    BATCH_SECTIONS,
    IdentityUpdate,
    parse_alias_body,
    parse_disable_body,
    parse_identity_body,
)
from emulator.limits import REQUEST_BODY_LIMIT_BYTES
from emulator.paths import ORGANIZATION_PREFIX
from emulator.routes.calls import PushCall, accepted, batch_entries, older_than, push_call

PROVIDER = ORGANIZATION_PREFIX + "/providers/{providerId}"


def _single(parse: Callable[[object], IdentityUpdate]) -> Callable[[Request], Awaitable[Response]]:
    """A route that applies one identity body, read within the 6 MB request limit."""

    async def endpoint(request: Request) -> Response:
        call = await push_call(request, consumes_json=True)
        provider = call.organization.provider(request.path_params["providerId"])
        operation_id = call.ordering_id()
        update = parse(parse_json(await read_limited(request, REQUEST_BODY_LIMIT_BYTES)))
        return _submit(call, provider, [update], operation_id)

    endpoint.__doc__ = parse.__doc__
    return endpoint


async def put_batch(request: Request) -> Response:
    """PUT .../permissions/batch?fileId=: a batch file of members, mappings and deleted entries,
    each judged when the batch is applied (an invalid one is rejected alone, after the 202)."""
    call = await push_call(request, consumes_json=True)
    provider = call.organization.provider(request.path_params["providerId"])
    file_id, operation_id, entries = await batch_entries(call, BATCH_SECTIONS)
    call.emulator.containers.take_all([file_id])[file_id].unlink(missing_ok=True)
    return _submit(call, provider, entries, operation_id)


async def disable_older_than(request: Request) -> Response:
    """DELETE .../permissions/olderthan?orderingId=&queueDelay=: disable identities older than orderingId."""
    call = await push_call(request, consumes_json=False)
    provider = call.organization.provider(request.path_params["providerId"])
    return older_than(call, partial(indexing.disable_older_than, provider))


def _submit(call: PushCall, provider: Provider, updates: list[IdentityUpdate] | list[BatchEntry],
            operation_id: int) -> Response:
    call.emulator.scheduler.submit(partial(indexing.apply_identities, call.emulator, provider, updates, operation_id))
    return accepted()


ROUTES = [
    Route(PROVIDER + "/permissions", _single(parse_identity_body), methods=["PUT"]),
    Route(PROVIDER + "/permissions", _single(parse_disable_body), methods=["DELETE"]),
    Route(PROVIDER + "/permissions/batch", put_batch, methods=["PUT"]),
    Route(PROVIDER + "/permissions/olderthan", disable_older_than, methods=["DELETE"]),
    Route(PROVIDER + "/mappings", _single(parse_alias_body), methods=["PUT"]),
]
