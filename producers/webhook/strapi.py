"""Strapi: entry events mapped to item events, authenticated by a token header.

Events (`event` in the body): entry.create, entry.update and entry.publish become an
item.upsert; entry.unpublish and entry.delete become an item.delete. Drafts (publishedAt null)
are ignored unless the hook includes them; such a hook ignores entry.unpublish, since the entry
stays as a draft.

The version is the hook's own `createdAt` in epoch milliseconds: Strapi (4 and 5) stamps it when
it sends the hook, one hook after the other in the order of the changes, and it is in the body,
so a repeated delivery keeps its version and event id. The entry's `updatedAt` cannot order
hooks: a publish copies the draft, older `updatedAt` included (Strapi 5, and bulk publish from
the list view), and an unpublish or delete carries the entry as it was. `updatedAt` is read only
from a body without `createdAt`. See docs/webhooks.md.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from producers.events import Event
from producers.webhook import mapping
from producers.webhook.adapter import HookRequest, Ignored, Unauthorized, Unmappable
from producers.webhook.config import HookConfig

UPSERT_EVENTS = frozenset({"entry.create", "entry.update", "entry.publish"})
UNPUBLISH_EVENT = "entry.unpublish"
DELETE_EVENTS = frozenset({UNPUBLISH_EVENT, "entry.delete"})
PLACEHOLDERS = ("id", "documentId", "model", "uid", "locale")
SENT_AT = "createdAt"
"""The body's field Strapi fills with the time it sent the hook: the version."""
FALLBACK_TIME = "updatedAt"
"""The entry's field read when a body has no `createdAt`."""


class StrapiAdapter:
    """Strapi webhooks (v4 and v5 entry events)."""

    def check(self, hook: HookConfig) -> None:
        mapping.check_template(hook, PLACEHOLDERS)

    def authenticate(self, hook: HookConfig, request: HookRequest, *, tolerance: float) -> None:
        # Strapi sends the configured headers as they are: no timestamp, so no replay window.
        token = request.headers.get(hook.token_header.lower(), "")
        if not hmac.compare_digest(token.encode(), hook.secret_value().encode()):
            raise Unauthorized(f"missing or wrong token in the {hook.token_header} header")

    def to_events(self, hook: HookConfig, request: HookRequest) -> list[Event]:
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
            raise Unmappable("body: expected a Strapi webhook with an event name")
        name = payload["event"]
        if name not in UPSERT_EVENTS | DELETE_EVENTS:
            raise Ignored(f"event {name!r} does not change the index")
        entry = payload.get("entry")
        if not isinstance(entry, dict) or "id" not in entry:
            raise Unmappable("body: expected the entry, with its id")
        locale = hook.item.locale if hook.item else None
        if locale and entry.get("locale") not in (None, locale):
            raise Ignored(f"entry is in locale {entry.get('locale')!r}; this hook takes {locale!r}")
        values = {
            "id": entry["id"], "documentId": entry.get("documentId", entry["id"]),
            "model": payload.get("model"), "uid": payload.get("uid"), "locale": entry.get("locale"),
        }
        present = {key: str(value) for key, value in values.items() if value is not None}
        if name in UPSERT_EVENTS and entry.get("publishedAt", "") is None and not hook.include_drafts:
            raise Ignored("entry is a draft (publishedAt is null)")
        if name == UNPUBLISH_EVENT and hook.include_drafts:
            raise Ignored("an unpublished entry is a draft again, and this hook indexes drafts")
        sent = _time(payload, SENT_AT, "the hook's") if payload.get(SENT_AT) is not None else None
        moment = sent or _time(entry, FALLBACK_TIME, "the entry's")
        version = mapping.epoch_millis(moment)
        if name in DELETE_EVENTS:
            return mapping.delete_event(hook, values=present, version=version, occurred_at=moment)
        return mapping.upsert_event(
            hook, values=present, read=lambda field: entry.get(field, mapping.MISSING),
            version=version, occurred_at=moment,
        )


def _time(obj: dict[str, Any], name: str, whose: str) -> datetime:
    """obj[`name`] as a timezone-aware time (naive times are UTC); `whose` names obj in the error."""
    moment = mapping.parse_time(obj.get(name))
    if moment is None:
        raise Unmappable(f"body: {whose} {name} (the version) is missing or not an ISO 8601 date-time")
    return moment
