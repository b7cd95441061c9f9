"""Strapi: entry events mapped to item events, authenticated by a token header.

Events (`event` in the body): entry.create, entry.update and entry.publish become an
item.upsert; entry.unpublish and entry.delete become an item.delete. Drafts (publishedAt null)
are ignored unless the hook includes them. The version is the entry's `updatedAt` in epoch
milliseconds; a removal takes the later of that and the hook's own `createdAt`, so it is never
taken for the same change as the update before it.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Any

from producers.events import Event
from producers.webhook import mapping
from producers.webhook.adapter import HookRequest, Ignored, Unauthorized, Unmappable
from producers.webhook.config import HookConfig

UPSERT_EVENTS = frozenset({"entry.create", "entry.update", "entry.publish"})
DELETE_EVENTS = frozenset({"entry.unpublish", "entry.delete"})
PLACEHOLDERS = ("id", "documentId", "model", "uid", "locale")
MILLISECONDS = 1000


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
        updated = _time(entry, "updatedAt")
        if name in DELETE_EVENTS:
            sent = _time(payload, "createdAt", required=False) or updated
            latest = max(updated, sent)
            return mapping.delete_event(hook, values=present, version=_millis(latest), occurred_at=latest)
        if "publishedAt" in entry and entry["publishedAt"] is None and not hook.include_drafts:
            raise Ignored("entry is a draft (publishedAt is null)")
        return mapping.upsert_event(
            hook, values=present, read=lambda field: entry.get(field, mapping.MISSING),
            version=_millis(updated), occurred_at=updated,
        )


def _time(obj: dict[str, Any], name: str, *, required: bool = True) -> datetime | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise Unmappable(f"body: {name} (the entry's version) is missing or not an ISO 8601 date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * MILLISECONDS)
