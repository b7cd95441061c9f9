"""Models of Contentful's and Strapi's (4 and 5) content state, and the hooks each action fires.

A model is advanced by actions as an editor or a bulk action in the CMS would; each action
answers the hooks the CMS sends for it, with bodies built by tests/producers/payloads.py, and
`expected()` is what the index must hold afterwards: the published entries, per item. Actions
the CMS would refuse in the entry's state (publishing an archived entry, deleting a published
one) are no-ops that fire nothing. The hypothesis strategies at the end draw action sequences
and their delivery: in order, with repeated deliveries and retries arriving late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.producers import payloads

CONTENTFUL_LOCALES = ("en-US", "fr-CA")
STRAPI_LOCALES = ("en", "fr")
GAPS_MS = (1, 2, 7, 250, 1000, 60_000)
"""Milliseconds between two actions: down to one, the CMSs' clock resolution."""
MIN_ACTIONS, MAX_ACTIONS = 6, 24
STRAPI_MODEL = ("article", "api::article.article")


@dataclass(frozen=True)
class Hook:
    """One request a CMS sends: its headers (besides authentication) and its JSON body."""

    headers: dict[str, str]
    body: dict[str, Any]
    action: int
    """The index of the action that fired it: hooks of different actions are different changes."""

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


@dataclass
class Clock:
    now: datetime

    def tick(self, gap_ms: int) -> str:
        self.now += timedelta(milliseconds=gap_ms)
        return payloads.js_time(self.now)


def _texts(entry: str, edit: int, locale: str) -> tuple[str, str]:
    return f"{entry} {locale} title {edit}", f"{entry} {locale} body {edit}"


# Contentful ----------------------------------------------------------------------------------------------


@dataclass
class ContentfulEntry:
    """An entry as the Management API holds it: its counters, times and draft; the published copy."""

    id: str
    created_at: str
    version: int = 1
    draft: int = 0
    """The edit its fields show (texts derive from it)."""
    published: int | None = None
    """The edit its published copy shows; None while unpublished."""
    published_at: str | None = None
    first_published_at: str | None = None
    published_version: int | None = None
    published_counter: int = 0
    archived_at: str | None = None
    archived_version: int | None = None

    def fields(self, edit: int) -> dict[str, Any]:
        texts = {locale: _texts(self.id, edit, locale) for locale in CONTENTFUL_LOCALES}
        return {"title": {locale: title for locale, (title, _) in texts.items()},
                "body": {locale: body for locale, (_, body) in texts.items()}}

    def sys(self, updated_at: str) -> dict[str, Any]:
        sys: dict[str, Any] = {"version": self.version, "createdAt": self.created_at, "updatedAt": updated_at,
                               "publishedCounter": self.published_counter}
        if self.first_published_at:
            sys["firstPublishedAt"] = self.first_published_at
        if self.published is not None:
            sys |= {"publishedVersion": self.published_version, "publishedAt": self.published_at,
                    "revision": self.published_counter}
        if self.archived_at:
            sys |= {"archivedVersion": self.archived_version, "archivedAt": self.archived_at,
                    "archivedBy": payloads.USER}
        return sys


class ContentfulSpace:
    """Contentful's state of a few entries of one space (ids `prefix-0`, `prefix-1`, …)."""

    def __init__(self, prefix: str, start: datetime, entries: int) -> None:
        self.clock = Clock(start)
        self.ids = [f"{prefix}{n}" for n in range(entries)]
        self.entries: dict[str, ContentfulEntry] = {}
        self.edits = 0
        self.actions = 0

    def options(self, which: int) -> list[str]:
        """The actions Contentful allows on entry `which` in its state."""
        entry = self.entries.get(self.ids[which])
        if entry is None:
            return ["create"]
        if entry.archived_at is not None:
            return ["unarchive", "delete"]
        return ["save", "auto_save", "publish", "bulk_publish", "archive",
                "unpublish" if entry.published is not None else "delete"]

    def act(self, action: str, which: int, gap_ms: int) -> list[Hook]:
        entry_id = self.ids[which % len(self.ids)]
        at = self.clock.tick(gap_ms)
        self.actions += 1
        entry = self.entries.get(entry_id)
        if action == "bulk_publish":
            return [hook for one in self.entries.values() if one.archived_at is None for hook in self._publish(one, at)]
        if action == "create":
            if entry is not None:
                return []
            self.entries[entry_id] = entry = ContentfulEntry(entry_id, created_at=at)
            return [self._hook("create", payloads.contentful_entry(entry_id, entry.sys(at), entry.fields(0)))]
        if entry is None:
            return []
        if action in ("save", "auto_save") and entry.archived_at is None:
            self.edits += 1
            entry.draft, entry.version = self.edits, entry.version + 1
            return [self._hook(action, payloads.contentful_entry(entry_id, entry.sys(at), entry.fields(entry.draft)))]
        if action == "publish" and entry.archived_at is None:
            return self._publish(entry, at)
        if action == "unpublish" and entry.published is not None:
            return self._unpublish(entry, at)
        if action == "archive" and entry.archived_at is None:
            # The web app unpublishes a published entry before archiving it: two hooks.
            hooks = self._unpublish(entry, at) if entry.published is not None else []
            entry.archived_at, entry.archived_version, entry.version = at, entry.version, entry.version + 1
            body = payloads.contentful_entry(entry_id, entry.sys(at), entry.fields(entry.draft))
            return [*hooks, self._hook("archive", body)]
        if action == "unarchive" and entry.archived_at is not None:
            entry.archived_at = entry.archived_version = None
            entry.version += 1
            return [self._hook("unarchive", payloads.contentful_entry(entry_id, entry.sys(at), entry.fields(entry.draft)))]
        if action == "delete" and entry.published is None:
            # The id is free again: a later create starts its counters anew.
            del self.entries[entry_id]
            body = payloads.contentful_deleted_entry(entry_id, revision=entry.published_counter,
                                                     created_at=entry.created_at, at=at)
            return [self._hook("delete", body)]
        return []

    def _publish(self, entry: ContentfulEntry, at: str) -> list[Hook]:
        entry.published, entry.published_at, entry.published_version = entry.draft, at, entry.version
        entry.first_published_at = entry.first_published_at or at
        entry.version, entry.published_counter = entry.version + 1, entry.published_counter + 1
        return [self._hook("publish", payloads.contentful_entry(entry.id, entry.sys(at), entry.fields(entry.draft)))]

    def _unpublish(self, entry: ContentfulEntry, at: str) -> list[Hook]:
        entry.published = entry.published_at = entry.published_version = None
        entry.version += 1
        body = payloads.contentful_deleted_entry(entry.id, revision=entry.published_counter,
                                                 created_at=entry.created_at, at=at)
        return [self._hook("unpublish", body)]

    def _hook(self, action: str, body: dict[str, Any]) -> Hook:
        return Hook({"content-type": "application/vnd.contentful.management.v1+json",
                     "x-contentful-topic": payloads.CONTENTFUL_TOPIC.format(action=action)}, body, self.actions)

    def expected(self, locale: str) -> dict[str, tuple[str, str]]:
        """Entry id -> (title, body) in `locale` of every published entry."""
        return {entry.id: _texts(entry.id, entry.published, locale)
                for entry in self.entries.values() if entry.published is not None}


# Strapi --------------------------------------------------------------------------------------------------


@dataclass
class StrapiRow:
    """One row of a content type: a locale of a document, draft or published (Strapi 5), or both in one (4)."""

    id: int
    document_id: str
    locale: str
    edit: int
    created_at: str
    updated_at: str
    published_at: str | None = None

    def entry(self, v5: bool) -> dict[str, Any]:
        title, body = _texts(self.document_id, self.edit, self.locale)
        entry = {"id": self.id, "title": title, "slug": f"{self.document_id}-{self.locale}",
                 "body": [{"type": "paragraph", "children": [{"type": "text", "text": body}]}],
                 "createdAt": self.created_at, "updatedAt": self.updated_at, "publishedAt": self.published_at,
                 "locale": self.locale}
        return {"documentId": self.document_id, **entry} if v5 else entry


@dataclass
class StrapiStore:
    """Strapi's rows of one content type with Draft & Publish and i18n, as Strapi 5 or Strapi 4 keeps them.

    Strapi 5 keeps a draft row and, once published, a separate published row per locale: a publish
    replaces the published row by a copy of the draft (the draft's `updatedAt` included), an
    unpublish deletes it. Strapi 4 keeps one row per locale whose `publishedAt` is set or null, and
    an update to a published row is live at once.
    """

    prefix: str
    start: datetime
    documents: int
    v5: bool
    drafts: dict[tuple[str, str], StrapiRow] = field(default_factory=dict)
    """(documentId, locale) -> the row edits go to: Strapi 5's draft, Strapi 4's only row."""
    live: dict[tuple[str, str], StrapiRow] = field(default_factory=dict)
    """(documentId, locale) -> Strapi 5's published row."""
    next_id: int = 1
    """The id the next row gets (Strapi 4's ids are the documentId placeholder: tests give each example its own)."""
    edits: int = 0
    actions: int = 0

    def __post_init__(self) -> None:
        self.clock = Clock(self.start)
        self.ids = [f"{self.prefix}{n}" for n in range(self.documents)]
        self.used: set[str] = set()

    def options(self, which: int, locale_pick: int) -> list[str]:
        """The actions Strapi allows on a document's locale in its state."""
        key = (self.ids[which], STRAPI_LOCALES[locale_pick])
        if key not in self.drafts:
            return ["create"]
        published = key in self.live if self.v5 else self.drafts[key].published_at is not None
        republish = ["publish", "discard_draft"] if self.v5 else []
        return ["update", "bulk_publish", "delete", "delete_locale",
                *(["unpublish", "bulk_unpublish", *republish] if published else ["publish"])]

    def act(self, action: str, which: int, gap_ms: int, locale_pick: int) -> list[Hook]:
        document = self.ids[which % len(self.ids)]
        locales = [STRAPI_LOCALES[locale_pick % len(STRAPI_LOCALES)]]
        sent = self.clock.tick(gap_ms)
        self.actions += 1
        if action == "create":
            return [hook for locale in locales if (document, locale) not in self.drafts
                    for hook in self._create(document, locale, sent)]
        if action == "update":
            return [hook for locale in locales if (document, locale) in self.drafts
                    for hook in self._update(self.drafts[document, locale], sent)]
        if action in ("publish", "bulk_publish"):
            keys = self._keys(document, locales) if action == "publish" else sorted(self.drafts)
            return [hook for key in keys for hook in self._publish(key, sent, bulk=action == "bulk_publish")]
        if action in ("unpublish", "bulk_unpublish"):
            keys = self._keys(document, locales) if action == "unpublish" else sorted(self.drafts)
            return [hook for key in keys for hook in self._unpublish(key, sent)]
        if action in ("delete", "delete_locale"):
            keys = self._keys(document, locales if action == "delete_locale" else STRAPI_LOCALES)
            return [hook for key in keys for hook in self._delete(key, sent)]
        if action == "discard_draft" and self.v5:
            return [self._hook("entry.draft-discard", self._discard(key, sent), sent)
                    for key in self._keys(document, locales) if key in self.live]
        return []

    def _keys(self, document: str, locales: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
        return [(document, locale) for locale in locales if (document, locale) in self.drafts]

    def _create(self, document: str, locale: str, at: str) -> list[Hook]:
        row = StrapiRow(self._id(), document, locale, 0, at, at)
        self.drafts[document, locale] = row
        return [self._hook("entry.create", row, at)]

    def _update(self, row: StrapiRow, at: str) -> list[Hook]:
        self.edits += 1
        row.edit, row.updated_at = self.edits, at
        return [self._hook("entry.update", row, at)]

    def _publish(self, key: tuple[str, str], at: str, *, bulk: bool) -> list[Hook]:
        draft = self.drafts[key]
        if self.v5:
            self.live[key] = replace(draft, id=self._id(), published_at=at)
            return [self._hook("entry.publish", self.live[key], at)]
        if draft.published_at is not None:
            return []
        # Strapi 4's bulk publish sets publishedAt alone and sends the entry it read before.
        draft.published_at, draft.updated_at = at, draft.updated_at if bulk else at
        return [self._hook("entry.publish", draft, at)]

    def _unpublish(self, key: tuple[str, str], at: str) -> list[Hook]:
        if self.v5:
            row = self.live.pop(key, None)
            return [self._hook("entry.unpublish", row, at)] if row else []
        row = self.drafts[key]
        if row.published_at is None:
            return []
        row.published_at, row.updated_at = None, at
        return [self._hook("entry.unpublish", row, at)]

    def _delete(self, key: tuple[str, str], at: str) -> list[Hook]:
        rows = [self.drafts.pop(key), *([self.live.pop(key)] if key in self.live else [])]
        return [self._hook("entry.delete", row, at) for row in rows]

    def _discard(self, key: tuple[str, str], at: str) -> StrapiRow:
        live = self.live[key]
        self.drafts[key] = replace(live, id=self.drafts[key].id, published_at=None, updated_at=at)
        return self.drafts[key]

    def _id(self) -> int:
        self.next_id += 1
        self.used.add(str(self.next_id - 1))
        return self.next_id - 1

    def placeholder(self, document: str, locale: str) -> str:
        """The documentId placeholder's value of a document's locale: its documentId (5) or its entry id (4)."""
        return document if self.v5 else str(self.drafts[document, locale].id)

    def placeholders(self) -> set[str]:
        """Every value the documentId placeholder took: documentIds (5) or entry ids (4)."""
        return set(self.ids) if self.v5 else self.used

    def _hook(self, event: str, row: StrapiRow, sent: str) -> Hook:
        model, uid = STRAPI_MODEL
        body = payloads.strapi_hook(event, sent_at=sent, model=model, uid=uid, entry=row.entry(self.v5))
        return Hook({"content-type": "application/json", "x-strapi-event": event}, body, self.actions)

    def expected(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(the documentId placeholder's value, locale) -> (title, body) of every published row.

        The placeholder is the documentId on Strapi 5, the entry id on Strapi 4 (it has no documentId:
        each locale is an entry of its own there)."""
        rows = self.live.values() if self.v5 else [row for row in self.drafts.values() if row.published_at]
        return {(row.document_id if self.v5 else str(row.id), row.locale): _texts(row.document_id, row.edit, row.locale)
                for row in rows}


# Strategies ----------------------------------------------------------------------------------------------


@st.composite
def deliveries(draw: st.DrawFn, hooks: list[Hook]) -> list[Hook]:
    """`hooks` in the order sent, some delivered twice in a row, some retried after later ones
    (the first attempt lost or not): every hook arrives at least once."""
    out: list[Hook | None] = list(hooks)
    for _ in range(draw(st.integers(0, 4)) if hooks else 0):
        index = draw(st.integers(0, len(hooks) - 1))
        later = draw(st.integers(0, len(hooks) - index - 1))
        position = next(i for i, hook in enumerate(out) if hook is hooks[index])
        if draw(st.booleans()):
            out[position] = None  # the first attempt timed out: only the retry arrives
        out.insert(position + 1 + later, hooks[index])
    for index in draw(st.lists(st.integers(0, max(len(hooks) - 1, 0)), max_size=3)) if hooks else []:
        position = next(i for i, hook in enumerate(out) if hook is hooks[index])
        out.insert(position + 1, hooks[index])
    return [hook for hook in out if hook is not None]


@st.composite
def contentful_run(draw: st.DrawFn, space: ContentfulSpace, entries: int) -> list[Hook]:
    """Advance `space` by actions Contentful allows, on its first `entries` entries; answer the hooks fired."""
    hooks = []
    for _ in range(draw(st.integers(MIN_ACTIONS, MAX_ACTIONS))):
        which = draw(st.integers(0, entries - 1))
        hooks += space.act(draw(st.sampled_from(space.options(which))), which, draw(st.sampled_from(GAPS_MS)))
    return hooks


@st.composite
def strapi_run(draw: st.DrawFn, store: StrapiStore, documents: int) -> list[Hook]:
    """Advance `store` by actions Strapi allows, on its first `documents` documents; answer the hooks fired."""
    hooks = []
    for _ in range(draw(st.integers(MIN_ACTIONS, MAX_ACTIONS))):
        which, locale = draw(st.integers(0, documents - 1)), draw(st.integers(0, len(STRAPI_LOCALES) - 1))
        action = draw(st.sampled_from(store.options(which, locale)))
        hooks += store.act(action, which, draw(st.sampled_from(GAPS_MS)), locale)
    return hooks


# The receiver's configuration for the models' hooks ------------------------------------------------------

CONTENTFUL_SECRET = "c" * 64
STRAPI_TOKEN = "Bearer strapi-token-value"
BLOG_SOURCE = "source-blog"
SHOP_SOURCE = "source-shop"
CONTENTFUL_HOOKS = {"blog-en": "en-US", "blog-fr": "fr-CA"}
"""One Contentful webhook per locale, as Contentful is configured to call both."""
STRAPI_HOOKS = {"shop": None, "shop-en": "en"}
"""Strapi calls both: one indexes every locale as its own item, the other English only."""


def _contentful_hook(locale: str) -> dict[str, Any]:
    return {"adapter": "contentful", "secret": CONTENTFUL_SECRET, "source_id": BLOG_SOURCE,
            "item": {"document_id": "https://blog.example.com/{contentType}/{id}/{locale}", "title": "title",
                     "body": "body", "locale": locale}}


def _strapi_hook(locale: str | None) -> dict[str, Any]:
    template = "https://shop.example.com/{model}/{documentId}" + ("" if locale else "/{locale}")
    return {"adapter": "strapi", "secret": STRAPI_TOKEN, "source_id": SHOP_SOURCE,
            "item": {"document_id": template, "title": "title", "body": "body", **({"locale": locale} if locale else {})}}


HOOK_CONFIG: dict[str, Any] = {"sources": {
    **{name: _contentful_hook(locale) for name, locale in CONTENTFUL_HOOKS.items()},
    **{name: _strapi_hook(locale) for name, locale in STRAPI_HOOKS.items()},
}}


def contentful_index(space: ContentfulSpace) -> dict[str, tuple[str, str]]:
    """documentId -> (title, body): what the blog source must hold for `space`'s state."""
    return {f"https://blog.example.com/blogPost/{entry}/{locale}": texts
            for locale in CONTENTFUL_HOOKS.values() for entry, texts in space.expected(locale).items()}


def strapi_index(store: StrapiStore) -> dict[str, tuple[str, str]]:
    """documentId -> (title, body): what the shop source must hold for `store`'s state."""
    index = {}
    for (document, locale), texts in store.expected().items():
        index[f"https://shop.example.com/article/{document}/{locale}"] = texts
        if locale == STRAPI_HOOKS["shop-en"]:
            index[f"https://shop.example.com/article/{document}"] = texts
    return index
