"""`pushsync console` in a real browser (Debian's chromium, driven by Playwright) over a real pipeline:
Redis, a Celery worker and beat, the emulator over HTTP. The page shows the pipeline's state; a
dead-lettered batch is replayed from it and the index becomes right; an action without the token is
refused and changes nothing; a purge asks first; ids and error texts holding markup are shown as text.

Screenshots of each page go to the test's directory, or to $PUSHSYNC_CONSOLE_SCREENSHOTS (docs/
for docs/console.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from producers import Publisher
from tests.support.raw import publish_raw
from tests.worker.e2e import converge, pipeline_env, wait_for
from worker.children import Child
from worker.ingest import quarantine
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Debian's chromium, offline: no sandbox (root in CI), no GPU, nothing fetched in the background."""
SCREENSHOTS = "PUSHSYNC_CONSOLE_SCREENSHOTS"
SOURCE = "console-docs"
TOKEN = "console-test-token-0123456789"
INJECTED = "window.__injected"
"""Set by the markup below if it ever ran as markup."""
MARKUP_ID = "https://example.com/<script>window.__injected=1</script>"
MARKUP_MESSAGE = '<img src=x onerror="window.__injected=2">'


@pytest.fixture()
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def events(version: int, *document_ids: str) -> list[dict]:
    """An upsert of each of `document_ids` at `version`."""
    return [{"kind": "item.upsert", "source": SOURCE, "version": version, "documentId": document_id,
             "item": {"data": f"{document_id} v{version}"}} for document_id in document_ids]


def test_console_shows_the_pipeline_replays_a_dead_letter_refuses_without_token_and_purges_after_asking(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url, browser, tmp_path):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path=f"*/sources/{SOURCE}/documents/batch", status=400,
                       errorCode="INVALID_JSON", message=MARKUP_MESSAGE, times=1)
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_CONSOLE_TOKEN=TOKEN)
    workers.start("worker", env)
    workers.start("beat", env)
    port = free_port()
    console = Child("console", [sys.executable, "-m", "worker", "console", "--port", str(port)], env=env,
                    log_path=tmp_path / "console.log")
    shots = Path(os.environ.get(SCREENSHOTS, tmp_path))
    url = f"http://127.0.0.1:{port}"
    try:
        console.wait_for_log("pushsync console on")
        pushed = events(1, MARKUP_ID, "https://example.com/a", "https://example.com/b")
        invalid = {**events(1, MARKUP_ID)[0], "version": -1, "schemaVersion": 1, "eventId": "console-invalid",
                   "occurredAt": datetime.now(timezone.utc).isoformat()}
        with Publisher(redis_broker_url) as publisher:
            publisher.publish_many(pushed)
        publish_raw(redis_broker_url, [json.dumps({"events": [invalid]}).encode()])
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        def overview_shows(*texts: str) -> bool:
            page.goto(url + "/")
            return all(text in page.inner_text("main") for text in texts)

        wait_for(lambda: overview_shows("3 events (1 entry)", "3 events in"), 60, interval=0.5,
                 what="the dead-lettered batch on the overview")
        shown = page.inner_text("main")
        assert "alive: last sweep" in shown and "worker-0@" in shown and MARKUP_MESSAGE in shown
        assert page.evaluate(INJECTED) is None

        page.click("text=Dead letters")
        (entry_id,) = page.locator("#entries td:first-child").all_inner_texts()
        page.screenshot(path=shots / "console-dead-letters.png", full_page=True)
        page.click("text=Replay")  # no token given to this tab yet
        assert page.inner_text("h1") == "403 Forbidden" and "needs the console's token" in page.inner_text("main")
        page.screenshot(path=shots / "console-refused.png", full_page=True)
        replay = f"{url}/dead-letters/{entry_id}/replay"
        refused = requests.post(replay, data={"token": "not-the-token-0123456789"}, timeout=30)
        assert refused.status_code == 403
        refused = requests.post(replay, data={"token": TOKEN}, headers={"Host": f"attacker.example:{port}"}, timeout=30)
        assert refused.status_code == 403, "a name rebound to this host is not answered"
        page.goto(url + "/dead-letters")
        assert page.locator("#entries td:first-child").all_inner_texts() == [entry_id], "a refused action changes nothing"

        page.goto(f"{url}/dead-letters/{entry_id}#token={TOKEN}")
        assert MARKUP_ID in page.inner_text("pre") and page.evaluate(INJECTED) is None
        page.screenshot(path=shots / "console-dead-letter.png", full_page=True)
        page.click("text=Replay")
        assert page.inner_text("h1") == "Replayed" and "3 events published back" in page.inner_text("#outcome")
        converge(emulator, pushed, [SOURCE])

        wait_for(lambda: overview_shows("3 pushed", "ago, 3 items"), 60, interval=0.5, what="the replayed batch pushed")
        page.screenshot(path=shots / "console-overview.png", full_page=True)

        page.click("text=Quarantine")
        assert "1 entry" in page.inner_text("main")
        page.screenshot(path=shots / "console-quarantine.png", full_page=True)
        page.click("#entries a")
        assert MARKUP_ID in page.inner_text("pre") and page.evaluate(INJECTED) is None
        page.screenshot(path=shots / "console-quarantine-entry.png", full_page=True)
        page.click("text=Purge…")
        assert page.inner_text("h1") == "Purge?" and quarantine.count(redis_client) == 1, "a purge asks first"
        page.screenshot(path=shots / "console-purge.png", full_page=True)
        page.click("text=Purge for good")
        assert page.inner_text("h1") == "Purged" and quarantine.count(redis_client) == 0
    finally:
        console.stop()
