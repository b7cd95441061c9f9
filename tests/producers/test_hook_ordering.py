"""CMS hooks order as the CMS's own state does: the adapters' versions under the worker's ranking rule.

Pure logic, no servers: each sequence of actions is run on a model of the CMS
(tests/producers/cms_models.py), its hooks are delivered in order with repeated deliveries and
late retries, each is mapped by the real adapter and ranked by the rule the worker applies
(`worker.store.ranks.rank`, newest rank wins, a removal wins a tie), and the resulting index must
equal the CMS's published state. `PUSHSYNC_HOOK_EXAMPLES=N` (the end-to-end twin's count, see
test_hook_ordering_e2e.py) runs LOGIC_FACTOR × N examples per adapter here.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.webhook.adapter import HookRequest, Ignored
from producers.webhook.app import ADAPTERS
from producers.webhook.config import parse_config
from tests.producers import cms_models, payloads
from tests.producers.cms_models import ContentfulSpace, Hook, StrapiStore
from worker.store.ranks import is_newer, rank

LOGIC_FACTOR = 15
"""Pure-logic examples per end-to-end one: a few hundred in the default profile, in about a second."""
EXAMPLES = LOGIC_FACTOR * int(os.environ.get("PUSHSYNC_HOOK_EXAMPLES", "20"))
CONFIG = parse_config(cms_models.HOOK_CONFIG)
START = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PUSHSYNC_HOOK_EXAMPLES"))


def map_hook(name: str, hook: Hook) -> list[dict[str, Any]]:
    """The events the receiver's hook `name` makes of `hook` (none when it ignores it), as dicts."""
    config = CONFIG.sources[name]
    request = HookRequest("POST", f"/hooks/{name}", hook.headers, hook.encoded(), time.time())
    try:
        events = ADAPTERS[config.adapter].to_events(config, request)
    except Ignored:
        return []
    return [event.model_dump(by_alias=True, exclude_none=True) for event in events]


class Index:
    """An index fed as the worker feeds it: per item, the event of the highest rank."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, dict[str, Any]]] = {}
        self.ids: dict[str, tuple[str, str, int]] = {}
        """eventId -> (kind, documentId, version): one change per id."""
        self.deliveries: dict[tuple[str, int], str] = {}
        """(documentId, identity of the hook) -> eventId: a repeated delivery must get the same."""
        self.by_action: dict[str, dict[int, set[str]]] = {}
        """documentId -> action of the hook -> its eventIds: different actions must get different ones."""

    def deliver(self, name: str, hook: Hook) -> None:
        for event in map_hook(name, hook):
            change = (event["kind"], event["documentId"], event["version"])
            assert self.ids.setdefault(event["eventId"], change) == change, "one event id for two changes"
            first = self.deliveries.setdefault((event["documentId"], id(hook)), event["eventId"])
            assert first == event["eventId"], "a repeated delivery got another event id"
            self.by_action.setdefault(event["documentId"], {}).setdefault(hook.action, set()).add(event["eventId"])
            candidate = rank(event["kind"], event["version"])
            held = self.held.get(event["documentId"])
            if held is None or is_newer(candidate, held[0]):
                self.held[event["documentId"]] = (candidate, event)

    def published(self) -> dict[str, tuple[str, str]]:
        return {document: (event["item"]["metadata"]["title"], event["item"]["data"])
                for document, (_, event) in self.held.items() if event["kind"] == "item.upsert"}

    def distinct_actions_distinct_ids(self) -> None:
        for document, actions in self.by_action.items():
            ids = [event_id for of_action in actions.values() for event_id in of_action]
            assert len(ids) == len(set(ids)), f"two actions on {document} share an event id"


def feed(hooks: list[Hook], names: tuple[str, ...]) -> Index:
    index = Index()
    for hook in hooks:
        for name in names:
            index.deliver(name, hook)
    return index


@PROFILE
@given(data=st.data())
def test_contentful_hooks_order_as_contentful_does(data: st.DataObject) -> None:
    space = ContentfulSpace("entry", START, entries=2)
    hooks = data.draw(cms_models.contentful_run(space, entries=2))
    index = feed(data.draw(cms_models.deliveries(hooks)), tuple(cms_models.CONTENTFUL_HOOKS))
    assert index.published() == cms_models.contentful_index(space)
    index.distinct_actions_distinct_ids()


@PROFILE
@given(v5=st.booleans(), data=st.data())
def test_strapi_hooks_order_as_strapi_does(v5: bool, data: st.DataObject) -> None:
    store = StrapiStore("doc", START, documents=2, v5=v5)
    hooks = data.draw(cms_models.strapi_run(store, documents=2))
    index = feed(data.draw(cms_models.deliveries(hooks)), tuple(cms_models.STRAPI_HOOKS))
    assert index.published() == cms_models.strapi_index(store)
    index.distinct_actions_distinct_ids()


# The two sequences the issue reported, recorded-style -------------------------------------------------------


def test_contentful_archive_unarchive_publish_leaves_the_entry_published() -> None:
    """Archive (sys.version 14), unarchive, publish (sys.revision 4): the entry is live again."""
    archived = payloads.contentful_archived_entry()
    unarchived = payloads.contentful_entry(payloads.ENTRY_ID, {
        **{k: v for k, v in archived["sys"].items() if k not in ("archivedAt", "archivedVersion", "archivedBy")},
        "version": 15, "updatedAt": "2026-11-22T12:05:00.000Z"}, archived["fields"])
    republished = payloads.contentful_published_entry()
    republished["sys"] |= {"version": 16, "publishedVersion": 15, "revision": 4, "publishedCounter": 4,
                           "updatedAt": "2026-11-22T12:06:00.000Z", "publishedAt": "2026-11-22T12:06:00.000Z"}
    hooks = [Hook({"x-contentful-topic": payloads.CONTENTFUL_TOPIC.format(action=action)}, body, n)
             for n, (action, body) in enumerate([("archive", archived), ("unarchive", unarchived),
                                                 ("publish", republished)])]
    index = feed(hooks, ("blog-en",))
    assert index.published() == {
        f"https://blog.example.com/blogPost/{payloads.ENTRY_ID}/en-US": ("Hello, World!",
                                                                         "Bacon is healthy!\nSecond paragraph."),
    }


@pytest.mark.parametrize("v5", [True, False], ids=["strapi5", "strapi4"])
def test_strapi_unpublish_then_bulk_publish_with_an_older_updated_at_leaves_the_entry_published(v5: bool) -> None:
    """Unpublish, then bulk publish from the list view: entry.publish carries the draft's older updatedAt."""
    unpublish = payloads.strapi_event("entry.unpublish") | {"createdAt": "2026-11-22T11:00:00.000Z"}
    bulk_publish = payloads.strapi_event("entry.publish", publishedAt="2026-11-22T12:00:00.000Z")
    bulk_publish["createdAt"] = "2026-11-22T12:00:00.010Z"
    hooks = [Hook({}, unpublish, 0), Hook({}, bulk_publish, 1)]
    for hook in hooks if not v5 else []:
        del hook.body["entry"]["documentId"]  # Strapi 4 has none
    index = feed(hooks, ("shop-en",))
    document = "qx0u6m5lq1yb1g5hbb4rz3c8" if v5 else "12"
    assert index.published() == {f"https://shop.example.com/article/{document}": ("Hello", "Some text")}
    index.distinct_actions_distinct_ids()


def test_a_strapi_hook_that_indexes_drafts_keeps_an_unpublished_entry_as_its_draft() -> None:
    """With include_drafts, an unpublished entry is still indexed (as the draft it became), not removed."""
    raw = cms_models.HOOK_CONFIG["sources"]["shop-en"]
    config = parse_config({"sources": {"drafts": {**raw, "include_drafts": True}}}).sources["drafts"]
    draft = payloads.strapi_event("entry.create", publishedAt=None) | {"createdAt": "2026-11-22T09:00:00.000Z"}
    publish = payloads.strapi_event("entry.publish") | {"createdAt": "2026-11-22T10:00:00.000Z"}
    unpublish = payloads.strapi_event("entry.unpublish") | {"createdAt": "2026-11-22T11:00:00.000Z"}
    kinds = []
    for body in (draft, publish, unpublish):
        request = HookRequest("POST", "/hooks/drafts", {}, Hook({}, body, 0).encoded(), time.time())
        try:
            kinds += [event.kind for event in ADAPTERS["strapi"].to_events(config, request)]
        except Ignored as ignored:
            kinds.append(f"ignored: {ignored.reason}")
    assert kinds == ["item.upsert", "item.upsert", "ignored: an unpublished entry is a draft again, and this hook "
                     "indexes drafts"]
