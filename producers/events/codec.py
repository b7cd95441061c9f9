"""Events to and from their wire form: strict JSON, one event, or a broker message of many.

A decoded value becomes an `Event` only through `parse_event`, so every entry point refuses
alike and words each problem as `reasons.describe` does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from producers.errors import InvalidEventError
from producers.events.limits import MAX_EVENT_BYTES, MAX_MESSAGE_BYTES, RUN_KINDS, SCHEMA_VERSION
from producers.events.models import EVENT_ADAPTER, Event
from producers.events.reasons import describe, first_line, json_type, shortened
from producers.ids import PROCESS_IDS


@dataclass(frozen=True)
class InvalidEvent:
    """An event, or a whole message, that cannot be used, with the reason a person can act on."""

    reason: str
    raw: Any
    """The JSON value as received, or the message bytes when the message itself is unusable."""
    index: int | None = None
    """Position of the event in its message; None when the whole message is unusable."""

    @property
    def target(self) -> str | None:
        """The source or provider the event named, when it named one (for quarantine listings)."""
        if isinstance(self.raw, dict):
            value = self.raw.get("source", self.raw.get("provider"))
            return value if isinstance(value, str) else None
        return None


def parse_event(obj: Any, *, max_bytes: int | None = MAX_EVENT_BYTES) -> Event:
    """Validate one decoded JSON value as an event; raise InvalidEventError naming each problem.

    `max_bytes` is the largest encoded event accepted; None leaves that check to the caller
    (`check_size`), which may then encode the event elsewhere.
    """
    if not isinstance(obj, dict):
        raise InvalidEventError([f"expected a JSON object (one event), got {json_type(obj)}"])
    try:
        event = EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise InvalidEventError([describe(error) for error in exc.errors(include_url=False)]) from None
    if max_bytes is not None:
        check_size(event, max_bytes)
    return event


def check_size(event: Event, max_bytes: int = MAX_EVENT_BYTES) -> None:
    """Raise InvalidEventError if `event` cannot be encoded, or is over `max_bytes` encoded."""
    try:
        size = event.encoded_size
    except (ValueError, UnicodeError) as exc:  # a lone surrogate (\ud800) has no UTF-8 form
        raise InvalidEventError([f"cannot be encoded as UTF-8 JSON: {first_line(exc)}"]) from None
    if size > max_bytes:
        raise InvalidEventError([
            f"event is {event.encoded_size:,} bytes encoded, over the {max_bytes:,}-byte limit "
            "(compress the content into binaryData, or raise the limit on both producers and worker)"
        ])


def load_json(data: bytes | str) -> Any:
    """Decode strict JSON: UTF-8 text, no repeated key in an object, no NaN or Infinity, and no
    number too large for a double (Python would read 1e400 as infinity, written out as null)."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise InvalidEventError([f"not UTF-8 text: byte {exc.start} cannot be decoded ({exc.reason})"]) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants,
                          parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidEventError([f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
    except ValueError as exc:  # raised by the hooks below
        raise InvalidEventError([f"not usable JSON: {exc}"]) from None
    except RecursionError:
        raise InvalidEventError(["not usable JSON: nested too deeply"]) from None


def decode_event(data: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Decode and validate one event given as JSON text; raise InvalidEventError naming each problem."""
    return parse_event(load_json(data), max_bytes=max_bytes)


def decode_message(body: bytes, *, max_event_bytes: int | None = MAX_EVENT_BYTES) -> list[Event | InvalidEvent]:
    """Decode a broker message into its events, each valid or invalid with its reason; never raises.

    A message that is not a `{"events": [...]}` envelope, or is over MAX_MESSAGE_BYTES, comes back
    as one InvalidEvent with `index=None` and the message bytes as `raw`. `max_event_bytes` as for
    `parse_event`.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        return [InvalidEvent(reason=f"message is {len(body):,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit",
                             raw=body)]
    try:
        envelope = load_json(body)
    except InvalidEventError as exc:
        return [InvalidEvent(reason=exc.reason, raw=body)]
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list) or (isinstance(envelope, dict) and len(envelope) != 1):
        return [InvalidEvent(reason='expected a message of the form {"events": [event, ...]}', raw=body)]
    decoded: list[Event | InvalidEvent] = []
    for index, obj in enumerate(events):
        try:
            decoded.append(parse_event(obj, max_bytes=max_event_bytes))
        except InvalidEventError as exc:
            decoded.append(InvalidEvent(reason=exc.reason, raw=obj, index=index))
        except (RecursionError, ValueError, TypeError, ArithmeticError) as exc:  # validation itself gave up on the value
            decoded.append(InvalidEvent(reason=f"cannot be validated: {first_line(exc)}", raw=obj, index=index))
    return decoded


def encode_message(events: Iterable[Event]) -> bytes:
    """The broker message body carrying `events`: `{"events": [...]}` in compact UTF-8 JSON."""
    return b'{"events":[' + b",".join(event.encoded for event in events) + b"]}"


def complete_event(obj: Any, *, next_version: Callable[[], int] | None = None) -> Any:
    """Fill what a producer may leave out: schemaVersion, eventId, occurredAt, and version from `next_version`.

    Anything that is not a JSON object is returned unchanged for `parse_event` to refuse.
    Without `next_version` a missing version stays missing, and is refused.
    """
    if not isinstance(obj, dict):
        return obj
    filled = dict(obj)
    filled.setdefault("schemaVersion", SCHEMA_VERSION)
    if "eventId" not in filled:
        filled["eventId"] = PROCESS_IDS.next()
    if "occurredAt" not in filled:
        filled["occurredAt"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    if next_version is not None and filled.get("version") is None and filled.get("kind") not in RUN_KINDS:
        filled["version"] = next_version()
    return filled


# The hooks of load_json raise ValueError, which it turns into the refusal's reason.


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # a repeated key: name the first one
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {shortened(text)} is too large to be a double-precision number")
    return value
