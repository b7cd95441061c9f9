"""Webhook payloads shaped like what Contentful and Strapi send (ids and times made up).

The builders take what varies between hooks (ids, counters, times, fields) so the CMS models of
tests/producers/cms_models.py can emit the exact body each action makes its CMS send; the
fixed samples below are built with them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

SPACE = {"sys": {"type": "Link", "linkType": "Space", "id": "yadj1kx9rmg0"}}
ENVIRONMENT = {"sys": {"id": "master", "type": "Link", "linkType": "Environment"}}
CONTENT_TYPE = {"sys": {"type": "Link", "linkType": "ContentType", "id": "blogPost"}}
USER = {"sys": {"type": "Link", "linkType": "User", "id": "7BslKh9TdKGOK41VmLDjFZ"}}
ENTRY_ID = "5KsDBWseXY6QegucYAoacS"
CONTENTFUL_TOPIC = "ContentManagement.Entry.{action}"


def js_time(moment: datetime) -> str:
    """A time as both CMSs write it (JavaScript's Date.toJSON: milliseconds, Z)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def contentful_entry(entry_id: str, sys: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Body of ContentManagement.Entry.create, save, auto_save, publish, archive and unarchive: the
    entry as the Management API answers it. `sys` holds its counters and times (version,
    createdAt, updatedAt; publishedVersion, publishedAt, … when they apply)."""
    return {
        "metadata": {"tags": [], "concepts": []},
        "sys": {"type": "Entry", "id": entry_id, "space": SPACE, "environment": ENVIRONMENT,
                "contentType": CONTENT_TYPE, "createdBy": USER, "updatedBy": USER, **sys},
        "fields": fields,
    }


def contentful_deleted_entry(entry_id: str, *, revision: int, created_at: str, at: str) -> dict[str, Any]:
    """Body of ContentManagement.Entry.unpublish and .delete: a DeletedEntry tombstone stamped `at`."""
    return {
        "sys": {
            "type": "DeletedEntry", "id": entry_id, "space": SPACE, "environment": ENVIRONMENT,
            "contentType": CONTENT_TYPE, "revision": revision, "createdAt": created_at, "updatedAt": at,
            "deletedAt": at, "deletedBy": USER,
        }
    }


def contentful_published_entry(**fields: Any) -> dict[str, Any]:
    """Body of ContentManagement.Entry.publish."""
    return contentful_entry(ENTRY_ID, {
        "publishedCounter": 2, "version": 9, "publishedVersion": 8, "revision": 4,
        "createdAt": "2026-11-20T09:12:44.123Z", "updatedAt": "2026-11-22T10:00:00.456Z",
        "firstPublishedAt": "2026-11-20T09:13:00.000Z", "publishedAt": "2026-11-22T10:00:00.456Z",
    }, {
        "title": {"en-US": "Hello, World!", "fr-CA": "Bonjour tout le monde!"},
        "body": {"en-US": {
            "nodeType": "document", "data": {},
            "content": [
                {"nodeType": "paragraph", "data": {}, "content": [
                    {"nodeType": "text", "value": "Bacon is ", "marks": [], "data": {}},
                    {"nodeType": "text", "value": "healthy!", "marks": [{"type": "bold"}], "data": {}},
                ]},
                {"nodeType": "paragraph", "data": {}, "content": [
                    {"nodeType": "text", "value": "Second paragraph.", "marks": [], "data": {}},
                ]},
            ],
        }},
        "author": {"en-US": {"sys": {"type": "Link", "linkType": "Entry", "id": "author-17"}}},
        "tags": {"en-US": ["food", "health"]},
        **fields,
    })


def contentful_archived_entry() -> dict[str, Any]:
    """Body of ContentManagement.Entry.archive: the unpublished entry, archived (no revision)."""
    return contentful_entry(ENTRY_ID, {
        "version": 14, "archivedVersion": 13, "publishedCounter": 2, "archivedBy": USER,
        "createdAt": "2026-11-20T09:12:44.123Z", "updatedAt": "2026-11-22T12:00:00.000Z",
        "firstPublishedAt": "2026-11-20T09:13:00.000Z", "archivedAt": "2026-11-22T12:00:00.000Z",
    }, {"title": {"en-US": "Hello, World!"}})


def contentful_tombstone() -> dict[str, Any]:
    """Body of ContentManagement.Entry.unpublish and .delete: a DeletedEntry."""
    return contentful_deleted_entry(ENTRY_ID, revision=5, created_at="2026-11-22T11:00:00.000Z",
                                    at="2026-11-22T11:00:00.000Z")


def strapi_hook(event: str, *, sent_at: str, model: str, uid: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A Strapi 4 or 5 webhook body: the event, the time Strapi sent it, the model and the entry."""
    return {"event": event, "createdAt": sent_at, "model": model, "uid": uid, "entry": entry}


def strapi_event(event: str, **entry: Any) -> dict[str, Any]:
    """A Strapi v5 entry webhook body."""
    return strapi_hook(event, sent_at="2026-11-22T10:00:05.000Z", model="article", uid="api::article.article", entry={
        "id": 12, "documentId": "qx0u6m5lq1yb1g5hbb4rz3c8", "title": "Hello", "slug": "hello",
        "body": [{"type": "paragraph", "children": [{"type": "text", "text": "Some text"}]}],
        "category": {"id": 3, "documentId": "cat3xyz"},
        "createdAt": "2026-11-20T09:00:00.000Z", "updatedAt": "2026-11-22T10:00:00.000Z",
        "publishedAt": "2026-11-22T10:00:00.000Z", "locale": "en",
        **entry,
    })
