"""CMS hooks through the whole pipeline: the final index equals the CMS's final state, every sequence.

The receiver (over HTTP, signed or with its token), the Redis broker, a real Celery worker and
beat, and the emulator are started once for the module; each example runs a random sequence of
actions on a model of Contentful or Strapi (tests/producers/cms_models.py) with entry ids of its
own, delivers the hooks in order with repeated deliveries and late retries, then publishes a
sentinel entry and polls the emulator until the sentinel is indexed and the example's items equal
the model's published state. `PUSHSYNC_HOOK_EXAMPLES=N` runs N examples per adapter (the
pure-logic twin is test_hook_ordering.py).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from producers.webhook.signatures import contentful_signature_headers
from tests.plugins.emulator import EmulatorServer
from tests.plugins.worker import Launcher
from tests.producers import cms_models
from tests.producers.cms_models import ContentfulSpace, Hook, StrapiStore
from tests.producers.conftest import serve_receiver
from tests.worker.e2e import pipeline_env, wait_for

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("PUSHSYNC_HOOK_EXAMPLES", "20"))
SENTINEL = 2
"""The entry (document) index the strategies never draw: published last, it shows the example was consumed."""
ENTRIES = 3
SHOP_ITEMS = "https://shop.example.com/article/"
CONVERGE_SECONDS = 60
HISTORY = timedelta(milliseconds=max(cms_models.GAPS_MS) * (cms_models.MAX_ACTIONS + 2))
"""How far back an example's clock starts, so every time the CMS stamps is in the recent past."""
QUICK_PIPELINE = {"PUSHSYNC_WINDOW_SECONDS": "0.25", "PUSHSYNC_SWEEP_SECONDS": "0.2"}
"""Windows shorter than the end-to-end tests' usual second: each example waits for one, one after the other."""
SECONDS_PER_EXAMPLE = 5
"""Time budget of one example (under a second: one window of the pipeline), for the test's timeout."""
pytestmark = pytest.mark.timeout(max(300, EXAMPLES * SECONDS_PER_EXAMPLE))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PUSHSYNC_HOOK_EXAMPLES"),
                   suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate], database=None)
# No shrinking: each try costs a round trip through the pipeline, and a failing example is printed whole.


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, redis_url: str, emulator: EmulatorServer) -> Iterator[str]:
    """The whole pipeline for the module: answers the receiver's base URL."""
    base, _, db = redis_url.rpartition("/")
    broker_url = f"{base}/{int(db) + 1}"
    for url in (redis_url, broker_url):
        with redis.Redis.from_url(url) as client:
            client.flushdb()
    emulator.reset()
    for source in (cms_models.BLOG_SOURCE, cms_models.SHOP_SOURCE):
        emulator.create_source(source)
    launcher = Launcher(Path(tmp_path_factory.mktemp("hook-ordering")))
    env = pipeline_env(redis_url, broker_url, emulator, **QUICK_PIPELINE)
    launcher.start("worker", env)
    launcher.start("beat", env)
    url, stop = serve_receiver(cms_models.HOOK_CONFIG, broker_url)
    yield url
    stop()
    launcher.stop_all()


def post_contentful(base: str, name: str, hook: Hook) -> requests.Response:
    body = hook.encoded()
    signed = contentful_signature_headers(cms_models.CONTENTFUL_SECRET, "POST", f"/hooks/{name}", hook.headers, body,
                                          int(time.time() * 1000))
    return requests.post(f"{base}/hooks/{name}", data=body, headers=hook.headers | signed, timeout=10)


def post_strapi(base: str, name: str, hook: Hook) -> requests.Response:
    return requests.post(f"{base}/hooks/{name}", data=hook.encoded(), timeout=10,
                         headers=hook.headers | {"Authorization": cms_models.STRAPI_TOKEN})


def deliver(base: str, hooks: list[Hook], names: tuple[str, ...],
            post: Callable[[str, str, Hook], requests.Response]) -> None:
    for hook in hooks:
        for name in names:
            answer = post(base, name, hook)
            assert answer.status_code in (200, 202), (answer.status_code, answer.text, hook.body)


def converge(emulator: EmulatorServer, source: str, mine: Callable[[str], bool], expected: dict[str, tuple[str, str]],
             sentinel: str) -> None:
    """Poll until the sentinel is indexed and the example's items (those whose documentId is `mine`)
    equal `expected`."""
    assert sentinel in expected

    def indexed() -> dict[str, tuple[Any, Any]]:
        return {item["documentId"]: (item["metadata"].get("title"), item["content"])
                for item in emulator.items(source) if mine(item["documentId"])}

    try:
        wait_for(lambda: indexed() == expected, CONVERGE_SECONDS, what=f"the index of {source}: {expected}")
    except AssertionError:
        assert indexed() == expected
        raise


def start() -> datetime:
    return datetime.now(timezone.utc) - HISTORY


def test_contentful_sequences_end_with_contentful_state_in_the_index(receiver: str, emulator: EmulatorServer) -> None:
    @PROFILE
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        marker = f"c{uuid.uuid4().hex[:12]}-"
        space = ContentfulSpace(marker, start(), entries=ENTRIES)
        hooks = data.draw(cms_models.deliveries(data.draw(cms_models.contentful_run(space, entries=ENTRIES - 1))))
        hooks += space.act("create", SENTINEL, 1) + space.act("publish", SENTINEL, 1)
        deliver(receiver, hooks, tuple(cms_models.CONTENTFUL_HOOKS), post_contentful)
        sentinel = f"https://blog.example.com/blogPost/{space.ids[SENTINEL]}/en-US"
        converge(emulator, cms_models.BLOG_SOURCE, lambda document: marker in document, cms_models.contentful_index(space),
                 sentinel)

    check()


def test_strapi_sequences_end_with_strapi_state_in_the_index(receiver: str, emulator: EmulatorServer) -> None:
    @PROFILE
    @given(v5=st.booleans(), data=st.data())
    def check(v5: bool, data: st.DataObject) -> None:
        marker = f"s{uuid.uuid4().hex[:12]}-"
        # Strapi 4's items are named by entry ids: each example takes ids no other example uses.
        store = StrapiStore(marker, start(), documents=ENTRIES, v5=v5, next_id=uuid.uuid4().int % 10**12 * 10**3)
        hooks = data.draw(cms_models.deliveries(data.draw(cms_models.strapi_run(store, documents=ENTRIES - 1))))
        english = cms_models.STRAPI_LOCALES.index(cms_models.STRAPI_HOOKS["shop-en"])
        hooks += store.act("create", SENTINEL, 1, english) + store.act("publish", SENTINEL, 1, english)
        deliver(receiver, hooks, tuple(cms_models.STRAPI_HOOKS), post_strapi)
        sentinel = f"{SHOP_ITEMS}{store.placeholder(store.ids[SENTINEL], cms_models.STRAPI_HOOKS['shop-en'])}"
        ids = store.placeholders()
        converge(emulator, cms_models.SHOP_SOURCE, lambda document: document.removeprefix(SHOP_ITEMS).split("/")[0] in ids,
                 cms_models.strapi_index(store), sentinel)

    check()
