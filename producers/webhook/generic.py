"""generic: pushsync change events themselves, signed with X-Pushsync-Signature.

The body is one event or a `{"events": [...]}` envelope. Events may leave out schemaVersion,
eventId and occurredAt, never the version. Item events must target the hook's source and
identity events its provider, so one hook's secret cannot write to another source.
"""

from __future__ import annotations

from producers.events import Event
from producers.webhook.adapter import HookRequest, Unauthorized, Unmappable, finish
from producers.webhook.config import HookConfig
from producers.webhook.signatures import PUSHSYNC_HEADER, SignatureError, verify_pushsync

ITEM_PREFIX = "item."


class GenericAdapter:
    """Signed pushsync events."""

    def check(self, hook: HookConfig) -> None:
        """Every generic hook works: it needs no item mapping."""

    def authenticate(self, hook: HookConfig, request: HookRequest, *, tolerance: float) -> None:
        try:
            verify_pushsync(
                hook.secret_value(), request.headers.get(PUSHSYNC_HEADER), request.body,
                now=request.received_at, tolerance=tolerance,
            )
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None

    def to_events(self, hook: HookConfig, request: HookRequest) -> list[Event]:
        payload = request.json()
        objects = payload.get("events", payload) if isinstance(payload, dict) else None
        objects = [objects] if isinstance(objects, dict) else objects
        if not isinstance(objects, list) or not objects:
            raise Unmappable('body: expected one event, or {"events": [event, ...]} with at least one')
        events = finish(objects)
        for index, event in enumerate(events):
            allowed = hook.source_id if event.kind.startswith(ITEM_PREFIX) else hook.provider_id
            if event.target != allowed:
                what = "source" if event.kind.startswith(ITEM_PREFIX) else "provider"
                raise Unmappable(f"event {index}: targets {event.target!r}; this hook's {what} is {allowed!r}")
        return events
