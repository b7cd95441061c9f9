"""generic: pushsync change events themselves, signed with X-Pushsync-Signature.

The body is one event or a `{"events": [...]}` envelope. Events may leave out schemaVersion,
eventId and occurredAt, never the version. Item events must target the hook's source and
identity events its provider, so one hook's secret cannot write to another source. An event
sent without an eventId gets one derived from the hook's name and the event as sent, so the
same hook delivered twice yields the same event ids.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from producers.events import Event
from producers.webhook.adapter import HookRequest, Unauthorized, Unmappable, finish
from producers.webhook.config import HookConfig
from producers.webhook.signatures import PUSHSYNC_HEADER, SignatureError, verify_pushsync

ITEM_PREFIX = "item."
EVENT_ID_NAMESPACE = uuid.UUID("0b6a3f7e-2d54-4c1f-a8e9-5c7d1e2f9a40")
"""Namespace of the uuid5 ids of events sent without one (apart from the CMS adapters' ids)."""


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
        events = finish([_with_event_id(hook, obj) for obj in objects])
        for index, event in enumerate(events):
            allowed = hook.source_id if event.kind.startswith(ITEM_PREFIX) else hook.provider_id
            if event.target != allowed:
                what = "source" if event.kind.startswith(ITEM_PREFIX) else "provider"
                raise Unmappable(f"event {index}: targets {event.target!r}; this hook's {what} is {allowed!r}")
        return events


def _with_event_id(hook: HookConfig, obj: Any) -> Any:
    """`obj` with an eventId derived from the hook's name and the event's content when it has none."""
    if not isinstance(obj, dict) or "eventId" in obj:
        return obj
    # Canonical JSON (keys sorted, no spaces): the same event gets the same id however it was laid out.
    content = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**obj, "eventId": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{hook.name}\n{content}"))}
