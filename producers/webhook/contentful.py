"""Contentful: entry topics mapped to item events, authenticated by Contentful's request signing.

Topics (header X-Contentful-Topic, `ContentManagement.Entry.<action>`): publish becomes an
item.upsert; unpublish, archive and delete become an item.delete. Other entities and actions
(unarchive included: it leaves a draft) are acknowledged and ignored. Field values are read in
the hook's locale.

The version is the time Contentful stamped on the change itself, in epoch milliseconds: the
entry's `publishedAt` for a publish, `deletedAt` for the tombstone an unpublish or delete sends,
`archivedAt` for an archive. Contentful's counters cannot order hooks: `sys.version` counts every
edit and is missing from tombstones, `sys.revision` counts publications and is missing from
archives, and both start again when a deleted id is created anew. Those times come from the body,
so a retried or repeated delivery keeps its version (and its event id), below any later change.
See docs/webhooks.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.errors import ConfigError
from producers.events import Event
from producers.webhook import mapping
from producers.webhook.adapter import HookRequest, Ignored, Unauthorized, Unmappable
from producers.webhook.config import HookConfig
from producers.webhook.signatures import SignatureError, verify_contentful

TOPIC_HEADER = "x-contentful-topic"
TOPIC_PREFIX = "ContentManagement.Entry."
UPSERT_ACTIONS = frozenset({"publish"})
DELETE_ACTIONS = frozenset({"unpublish", "archive", "delete"})
CHANGE_TIME = {"publish": "publishedAt", "unpublish": "deletedAt", "delete": "deletedAt", "archive": "archivedAt"}
"""The sys field holding the time of each action's change: the event's version and occurredAt."""
FALLBACK_TIME = "updatedAt"
"""Read when a payload lacks its action's own time: Contentful stamps it on every change."""
IGNORED_ACTIONS = {
    "unarchive": "an unarchived entry is a draft until it is published again, and its archive removed it",
}
"""Actions on entries that leave the index as it is, with why (others: 'does not change the index')."""
EXPECTED_BODIES = {
    "publish": ("Entry", False, "an Entry that is not archived"),
    "archive": ("Entry", True, "an archived Entry (with sys.archivedAt)"),
    "unpublish": ("DeletedEntry", None, "a DeletedEntry"),
    "delete": ("DeletedEntry", None, "a DeletedEntry"),
}
"""Per action, the body Contentful sends: its sys.type, whether it is archived (None: either), in words.
The topic header need not be among the signed headers, so the body, which is signed, must agree
with it: else a signed publish relabelled as a delete would remove the entry (at the same version,
where the removal wins)."""
PLACEHOLDERS = ("id", "contentType", "locale", "space", "environment")
DEFAULT_LOCALE = "en-US"
SECRET_LENGTH = 64
"""Contentful's request-verification secrets are 64 characters; its own verifier refuses any other."""


class ContentfulAdapter:
    """Contentful webhooks (entries only)."""

    def check(self, hook: HookConfig) -> None:
        mapping.check_template(hook, PLACEHOLDERS)
        if len(hook.secret_value()) != SECRET_LENGTH:
            # Said at start-up: otherwise every request would be refused as unsigned, for a typo.
            raise ConfigError(f"hook {hook.name!r}: a Contentful signing secret is {SECRET_LENGTH} characters, "
                              f"this one has {len(hook.secret_value())}; copy it from the webhook's settings")

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
            raise Ignored(f"topic {topic!r} does not change the index"
                          + (f": {IGNORED_ACTIONS[action]}" if action in IGNORED_ACTIONS else ""))
        payload = request.json()
        sys = payload.get("sys") if isinstance(payload, dict) else None
        if not isinstance(sys, dict) or not isinstance(sys.get("id"), str):
            raise Unmappable("body: expected a Contentful entry with sys.id")
        _check_body_matches(action, sys)
        locale = (hook.item.locale if hook.item else None) or DEFAULT_LOCALE
        values = {
            "id": sys["id"], "locale": locale, "contentType": _link(sys, "contentType"),
            "space": _link(sys, "space"), "environment": _link(sys, "environment"),
        }
        present = {name: value for name, value in values.items() if value is not None}
        occurred_at = _change_time(sys, CHANGE_TIME[action])
        version = mapping.epoch_millis(occurred_at)
        if action in DELETE_ACTIONS:
            return mapping.delete_event(hook, values=present, version=version, occurred_at=occurred_at)
        fields = payload.get("fields")
        if not isinstance(fields, dict):
            raise Unmappable("body: a published entry needs its fields")
        return mapping.upsert_event(
            hook, values=present, read=lambda name: _localized(fields, name, locale),
            version=version, occurred_at=occurred_at,
        )


def _check_body_matches(action: str, sys: dict[str, Any]) -> None:
    """Raise Unmappable unless the body is what Contentful sends for `action` (see EXPECTED_BODIES)."""
    body_type, archived, described = EXPECTED_BODIES[action]
    if sys.get("type") != body_type or archived not in (None, sys.get(CHANGE_TIME["archive"]) is not None):
        raise Unmappable(f"body: a {action} hook carries {described}; this one does not match its topic")
    if action == "publish" and not _just_published(sys):
        # A draft (create, save, auto_save) is an unarchived Entry too: only these counters tell them apart.
        raise Unmappable("body: a publish hook carries the entry as just published (sys.version one past "
                         "sys.publishedVersion, and sys.publishedAt); this draft does not match its topic")


def _just_published(sys: dict[str, Any]) -> bool:
    version, published = sys.get("version"), sys.get("publishedVersion")
    counters = all(isinstance(n, int) and not isinstance(n, bool) for n in (version, published))
    return counters and version == published + 1 and sys.get(CHANGE_TIME["publish"]) is not None


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


def _change_time(sys: dict[str, Any], name: str) -> datetime:
    """The time of the change: sys.`name`, else sys.updatedAt; naive times are UTC."""
    field = name if name in sys else FALLBACK_TIME
    moment = mapping.parse_time(sys.get(field))
    if moment is None:
        raise Unmappable(f"body: sys.{field} (the time of the change, its version) is missing or not an ISO 8601 date-time")
    return moment
