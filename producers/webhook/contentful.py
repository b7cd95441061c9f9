"""Contentful: entry topics mapped to item events, authenticated by Contentful's request signing.

Topics (header X-Contentful-Topic, `ContentManagement.Entry.<action>`): publish becomes an
item.upsert; unpublish, archive and delete become an item.delete. Other entities and actions
are acknowledged and ignored. The version is the entry's `sys.revision` (`sys.version` when a
payload has no revision); field values are read in the hook's locale.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from producers.events import Event
from producers.webhook import mapping
from producers.webhook.adapter import HookRequest, Ignored, Unauthorized, Unmappable
from producers.webhook.config import HookConfig
from producers.webhook.signatures import SignatureError, verify_contentful

TOPIC_HEADER = "x-contentful-topic"
TOPIC_PREFIX = "ContentManagement.Entry."
UPSERT_ACTIONS = frozenset({"publish"})
DELETE_ACTIONS = frozenset({"unpublish", "archive", "delete"})
PLACEHOLDERS = ("id", "contentType", "locale", "space", "environment")
DEFAULT_LOCALE = "en-US"
TIME_FIELDS = ("deletedAt", "archivedAt", "publishedAt", "updatedAt")
"""Where the time of the change is read, most specific first."""


class ContentfulAdapter:
    """Contentful webhooks (entries only)."""

    def check(self, hook: HookConfig) -> None:
        mapping.check_template(hook, PLACEHOLDERS)

    def authenticate(self, hook: HookConfig, request: HookRequest, *, tolerance: float) -> None:
        try:
            verify_contentful(
                hook.secret_value(), request.method, request.path, request.headers, request.body,
                now=request.received_at, tolerance=tolerance,
            )
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None

    def to_events(self, hook: HookConfig, request: HookRequest) -> list[Event]:
        topic = request.headers.get(TOPIC_HEADER, "")
        action = topic.removeprefix(TOPIC_PREFIX) if topic.startswith(TOPIC_PREFIX) else None
        if action not in UPSERT_ACTIONS | DELETE_ACTIONS:
            raise Ignored(f"topic {topic!r} does not change the index")
        payload = request.json()
        sys = payload.get("sys") if isinstance(payload, dict) else None
        if not isinstance(sys, dict) or not isinstance(sys.get("id"), str):
            raise Unmappable("body: expected a Contentful entry with sys.id")
        locale = (hook.item.locale if hook.item else None) or DEFAULT_LOCALE
        values = {
            "id": sys["id"], "locale": locale, "contentType": _link(sys, "contentType"),
            "space": _link(sys, "space"), "environment": _link(sys, "environment"),
        }
        present = {name: value for name, value in values.items() if value is not None}
        version, occurred_at = _version(sys), _occurred_at(sys)
        if action in DELETE_ACTIONS:
            return mapping.delete_event(hook, values=present, version=version, occurred_at=occurred_at)
        fields = payload.get("fields")
        if not isinstance(fields, dict):
            raise Unmappable("body: a published entry needs its fields")
        return mapping.upsert_event(
            hook, values=present, read=lambda name: _localized(fields, name, locale),
            version=version, occurred_at=occurred_at,
        )


def _localized(fields: dict[str, Any], name: str, locale: str) -> Any:
    values = fields.get(name)
    if not isinstance(values, dict):
        return mapping.MISSING
    return values.get(locale, mapping.MISSING)


def _link(sys: dict[str, Any], name: str) -> str | None:
    link = sys.get(name)
    inner = link.get("sys") if isinstance(link, dict) else None
    value = inner.get("id") if isinstance(inner, dict) else None
    return value if isinstance(value, str) else None


def _version(sys: dict[str, Any]) -> int:
    for name in ("revision", "version"):
        value = sys.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    raise Unmappable("body: sys.revision (the entry's version) is missing or not a non-negative integer")


def _occurred_at(sys: dict[str, Any]) -> datetime:
    for name in TIME_FIELDS:
        value = sys.get(name)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                raise Unmappable(f"body: sys.{name} is not an ISO 8601 date-time") from None
    return datetime.now(timezone.utc)
