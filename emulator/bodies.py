"""Reading request bodies within the service's limits, and parsing JSON the way it does."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope

from emulator.errors import EmulatorError, invalid
from emulator.limits import MIB

DRAIN_LIMIT_BYTES = 64 * MIB
"""Over a connection that closes after the answer, a body up to this size is read to its end
before an early error answer, so that a client still sending reads the answer instead of a reset
connection; larger ones are cut short."""
MAX_NESTING_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON body may have (UNCONFIRMED: the service publishes
no limit). The deepest body of the contract, an item with the complete permission model, nests 7
levels; Python's parser would exhaust its stack at about 1,000."""


def declared_length(headers: Headers) -> int | None:
    """The Content-Length the client declared, or None (chunked or malformed)."""
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def discard(receive: Receive, limit: int = DRAIN_LIMIT_BYTES) -> None:
    """Read and drop what is left of the request body, up to `limit` bytes."""
    received = 0
    while received <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def closes_after_answer(scope: Scope) -> bool:
    """Whether the server closes the connection once it has answered (HTTP/1.0, or the client
    sent `Connection: close`). Over a connection kept open, the server itself drops the body bytes
    that arrive after the answer, so an early answer needs no draining."""
    tokens = {token.strip().lower() for token in Headers(scope=scope).get("connection", "").split(",")}
    return scope.get("http_version") == "1.0" or "close" in tokens


async def after_draining(request: Request, error: EmulatorError) -> EmulatorError:
    """`error`, to be answered now: at once over a connection kept open, else once the rest of a
    not-too-huge body was drained (see DRAIN_LIMIT_BYTES)."""
    if closes_after_answer(request.scope):
        declared = declared_length(request.headers)
        if declared is None or declared <= DRAIN_LIMIT_BYTES:
            await discard(request.receive)
    return error


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 when it is longer than `limit` bytes (the errorCode is UNCONFIRMED:
    the emulator's own name; clients act on the status). A body declared longer is refused before
    any of it is read, one sent without a length as soon as it passes the limit."""
    error = EmulatorError(413, "REQUEST_ENTITY_TOO_LARGE", f"the request body is over {limit} bytes")
    declared = declared_length(request.headers)
    if declared is not None and declared > limit:
        raise await after_draining(request, error)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise await after_draining(request, error)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> object:
    """The JSON value of a request body; anything the service's parser refuses is a 400 INVALID_JSON.

    Refused as well as syntax errors: bytes that are not UTF-8, NaN and Infinity, an object that
    gives the same key twice (at any depth), and nesting deeper than MAX_NESTING_DEPTH."""
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except RecursionError:
        raise nested_too_deep("the body") from None  # the C parser's own guard, far past the limit
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"the body is not valid JSON: {exc}") from None
    if _deeper_than(value, MAX_NESTING_DEPTH):
        raise nested_too_deep("the body")
    return value


def nested_too_deep(what: str) -> EmulatorError:
    """The 400 INVALID_JSON for `what` ("the body", ...) nesting deeper than MAX_NESTING_DEPTH."""
    return invalid(f"{what} nests arrays and objects deeper than {MAX_NESTING_DEPTH} levels")


def _deeper_than(value: object, limit: int) -> bool:
    """Whether `value` nests arrays and objects more than `limit` levels (walked without recursion,
    so that no later recursive code meets a value the stack cannot hold)."""
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {twice!r} is given twice")
    return result


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
"""Built once: json.loads would build a decoder on every call that passes hooks."""
