"""What every adapter takes and answers: the request as received, and errors that carry their HTTP status."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from producers.errors import InvalidEventError
from producers.events import Event, complete_event, load_json, parse_event
from producers.webhook.config import HookConfig


@dataclass(frozen=True)
class HookRequest:
    """One received hook request, body read in full (within the size limit)."""

    method: str
    path: str
    """The request target as received: the raw path, then `?` and the raw query when there is one."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    received_at: float
    """Unix time of arrival, in seconds."""

    def json(self) -> Any:
        """The body as strict JSON whose strings are all Unicode text; raise Unmappable when it is not."""
        try:
            value = load_json(self.body)
        except InvalidEventError as exc:
            raise Unmappable(f"body: {exc.reason}") from None
        # JSON may escape half of a UTF-16 pair ("\ud800"); such a string is no text an adapter
        # can use (in an id, a URI or an event), so it is refused here, whatever field holds it.
        if _SURROGATE_ESCAPE.search(self.body) and _holds_lone_surrogate(value):
            raise Unmappable("body: a string holds a lone UTF-16 surrogate (such as \\ud800), which is not text")
        return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any string in the decoded JSON `value` (keys included) holds a surrogate code point.

    The JSON decoder joins escaped pairs into one character, so any surrogate left is alone.
    Iterative: the value may be nested as deep as the decoder allows.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class HookError(Exception):
    """A request the receiver answers with `status` and `reason` instead of publishing."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(HookError):
    """Missing or wrong signature or token, or a stale timestamp."""

    status = 401


class Unmappable(HookError):
    """A payload the adapter cannot turn into change events; the reason says why."""

    status = 400


class Ignored(HookError):
    """A valid hook that asks for no change in the index (another entity, a draft, an unmapped topic)."""

    status = 200


class Adapter(Protocol):
    """Authenticates the requests of one kind of sender and maps them to change events."""

    def check(self, hook: HookConfig) -> None:
        """Raise ConfigError when `hook` cannot work with this adapter (checked at start-up)."""

    def authenticate(self, hook: HookConfig, request: HookRequest, *, tolerance: float) -> None:
        """Raise Unauthorized unless the request comes from the holder of the hook's secret, recently."""

    def to_events(self, hook: HookConfig, request: HookRequest) -> list[Event]:
        """The change events the request asks for; raise Unmappable or Ignored."""


def finish(objects: Iterable[dict[str, Any]]) -> list[Event]:
    """Validate mapped events, filling ids and times; raise Unmappable naming the first bad one."""
    events = []
    for index, obj in enumerate(objects):
        try:
            events.append(parse_event(complete_event(obj)))
        except InvalidEventError as exc:
            raise Unmappable(f"event {index}: {exc.reason}") from None
    return events
