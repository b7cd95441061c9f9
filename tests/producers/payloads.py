"""Webhook payloads shaped like what Contentful and Strapi send (ids and times made up)."""

from __future__ import annotations

from typing import Any

SPACE = {"sys": {"type": "Link", "linkType": "Space", "id": "yadj1kx9rmg0"}}
ENVIRONMENT = {"sys": {"id": "master", "type": "Link", "linkType": "Environment"}}
CONTENT_TYPE = {"sys": {"type": "Link", "linkType": "ContentType", "id": "blogPost"}}
USER = {"sys": {"type": "Link", "linkType": "User", "id": "7BslKh9TdKGOK41VmLDjFZ"}}
ENTRY_ID = "5KsDBWseXY6QegucYAoacS"


def contentful_published_entry(**fields: Any) -> dict[str, Any]:
    """Body of ContentManagement.Entry.publish."""
    return {
        "metadata": {"tags": [], "concepts": []},
        "sys": {
            "type": "Entry", "id": ENTRY_ID, "space": SPACE, "environment": ENVIRONMENT, "contentType": CONTENT_TYPE,
            "createdBy": USER, "updatedBy": USER, "publishedCounter": 2, "version": 9, "publishedVersion": 8,
            "revision": 4, "createdAt": "2026-11-20T09:12:44.123Z", "updatedAt": "2026-11-22T10:00:00.456Z",
            "firstPublishedAt": "2026-11-20T09:13:00.000Z", "publishedAt": "2026-11-22T10:00:00.456Z",
        },
        "fields": {
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
        },
    }


def contentful_tombstone() -> dict[str, Any]:
    """Body of ContentManagement.Entry.unpublish and .delete: a DeletedEntry."""
    return {
        "sys": {
            "type": "DeletedEntry", "id": ENTRY_ID, "space": SPACE, "environment": ENVIRONMENT,
            "contentType": CONTENT_TYPE, "revision": 5, "createdAt": "2026-11-22T11:00:00.000Z",
            "updatedAt": "2026-11-22T11:00:00.000Z", "deletedAt": "2026-11-22T11:00:00.000Z", "deletedBy": USER,
        }
    }


def strapi_event(event: str, **entry: Any) -> dict[str, Any]:
    """A Strapi v5 entry webhook body."""
    return {
        "event": event,
        "createdAt": "2026-11-22T10:00:05.000Z",
        "model": "article",
        "uid": "api::article.article",
        "entry": {
            "id": 12, "documentId": "qx0u6m5lq1yb1g5hbb4rz3c8", "title": "Hello", "slug": "hello",
            "body": [{"type": "paragraph", "children": [{"type": "text", "text": "Some text"}]}],
            "category": {"id": 3, "documentId": "cat3xyz"},
            "createdAt": "2026-11-20T09:00:00.000Z", "updatedAt": "2026-11-22T10:00:00.000Z",
            "publishedAt": "2026-11-22T10:00:00.000Z", "locale": "en",
            **entry,
        },
    }
