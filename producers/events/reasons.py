"""The wording of every refusal: one problem as `field.path: what was expected (got …)`.

A producer shows these reasons to a person and the worker stores them with each quarantined
event, so both sides word a problem alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from producers.events.limits import (
    EXTENSION_REGEX,
    ID_REGEX,
    KINDS,
    MAX_VERSION,
    NAME_REGEX,
    PERMISSION_MODELS,
    RUN_ID_REGEX,
    URI_REGEX,
)

_PREVIEW_CHARS = 60

_EXPECTED = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field (see docs/events.md for the fields of each kind)",
    "int_type": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected an array",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "timezone_aware": "expected a date-time with a time zone, such as 2026-11-22T10:00:00Z",
}

_PATTERN_EXPECTED = {
    URI_REGEX: "expected a URI with a scheme and no spaces or control characters, such as https://example.com/page "
               "or file://share/doc",
    ID_REGEX: "expected an id without spaces at the start, braces, '/', '?', '#' or control characters",
    NAME_REGEX: "expected text without control characters (such as a newline or NUL)",
    EXTENSION_REGEX: "expected a file extension starting with a dot, such as .html",
    RUN_ID_REGEX: "expected a run id of letters, digits, '.', '_' and '-'",
}


def describe(error: Mapping[str, Any]) -> str:
    """One pydantic validation `error` as `field.path: what was expected (got …)`."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    path = _path(tuple(error["loc"]))
    if kind == "union_tag_invalid":
        return f"kind: unknown event kind {ctx.get('tag')!r}; expected one of {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return f"kind: required field is missing; expected one of {', '.join(KINDS)}"
    if kind == "missing" and path == "version":
        return "version: required field is missing; give the item's version in the source system (an integer that grows with each change)"
    if kind == "value_error":
        return f"{path}: {error['msg'].removeprefix('Value error, ')}"
    if kind == "literal_error":
        message = f"expected {ctx.get('expected')}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        message = f"expected an integer from 0 to {MAX_VERSION}" if path == "version" else error["msg"].lower()
    elif kind == "too_short":
        return f"{path}: expected at least {ctx.get('min_length')} element(s); leave the field out rather than send it empty"
    elif kind == "string_too_short":
        message = "expected a non-empty string"
    elif kind == "string_too_long":
        message = f"expected at most {ctx.get('max_length')} characters"
    elif kind == "string_pattern_mismatch":
        message = _PATTERN_EXPECTED.get(ctx.get("pattern"), error["msg"])
    else:
        message = _EXPECTED.get(kind, error["msg"])
    if kind == "missing":
        return f"{path}: {message}"
    return f"{path}: {message}, got {_preview(value)}"


def json_type(value: Any) -> str:
    """What kind of JSON value `value` is, as a person says it ("an object", "a string", …)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def first_line(exc: BaseException) -> str:
    """`exc`'s type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def shortened(text: str) -> str:
    """`text`, cut short with an ellipsis if it is too long to quote in a reason."""
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


def _path(loc: tuple[int | str, ...]) -> str:
    # Discriminated unions put the chosen tag in the location; a person never wrote it.
    parts = [part for part in loc if part not in KINDS and part not in PERMISSION_MODELS]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "event"


def _preview(value: Any) -> str:
    if isinstance(value, str):
        return repr(shortened(value))
    if isinstance(value, (dict, list)):
        return json_type(value)
    return json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)
