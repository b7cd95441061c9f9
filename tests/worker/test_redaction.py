"""The redaction filter and the secrets registry: no key, secret or URL password in what pushsync writes.

Lines are read back from the file the real handler wrote (not from caplog, which sits beside the
handler and its filters), in both formats.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.logs import logging_to
from tests.support.scripted_server import ScriptedServer
from worker import redaction
from worker.deadletter.operator import DeadLetterBrowser
from worker.pushapi.client import PushApiClient
from worker.pushapi.errors import PushApiError
from worker.settings import LogFormat, load_settings

log = logging.getLogger("pushsync.test")
FORMATS = [LogFormat.TEXT, LogFormat.JSON]


def new_secret(name: str) -> str:
    return f"{name}-{secrets.token_urlsafe(18)}"


@pytest.fixture(params=FORMATS, ids=[f.value for f in FORMATS])
def log_file(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """This process logging through pushsync's real handler into a file, in each format."""
    with logging_to(tmp_path / "pushsync.log", request.param) as path:
        yield path


@pytest.fixture()
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def readable(path: Path) -> str:
    """The file's lines, JSON ones decoded, so assertions see what a reader sees."""
    text = path.read_text()
    if text.startswith("{"):
        return "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in text.splitlines())
    return text


def test_no_registered_secret_in_message_arguments_extras_or_traceback(log_file: Path) -> None:
    key = new_secret("key")
    redaction.register(key)
    log.error("the service answered 401 to key %s", key)
    log.warning(f"formatted in place: {key}")
    log.info("sent with headers", extra={"headers": {"Authorization": f"Bearer {key}"}, "keys": [key, 7], "key": key})
    log.info("%d items for %s", key, "kb")  # arguments that do not fit the message
    try:
        raise RuntimeError(f"the proxy echoed {key} back")
    except RuntimeError:
        log.exception("push failed")
    text = log_file.read_text()
    assert key not in text
    shown = readable(log_file)
    assert "the service answered 401 to key [redacted]" in shown
    assert "formatted in place: [redacted]" in shown
    if text.startswith("{"):
        fields = next(json.loads(line) for line in text.splitlines() if "sent with headers" in line)
        assert fields["headers"] == {"Authorization": "Bearer [redacted]"} and fields["keys"] == ["[redacted]", 7]
    assert "RuntimeError: the proxy echoed [redacted] back" in shown
    assert "arguments that do not fit the message" in shown and "push failed" in shown


def test_url_passwords_and_bearer_tokens_are_masked_even_unregistered() -> None:
    assert redaction.redact("cannot reach amqp://sync:hunter2@rabbit:5672// now") == \
        "cannot reach amqp://sync:[redacted]@rabbit:5672// now"
    assert redaction.redact("redis://:pa55@cache:6379/0") == "redis://:[redacted]@cache:6379/0"
    assert redaction.redact("Authorization: Bearer xx-123.abc, next") == "Authorization: Bearer [redacted], next"
    assert redaction.redact("nothing secret at http://host:8080/path") == "nothing secret at http://host:8080/path"


def test_settings_register_the_api_key_and_the_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    key, store_password, broker_password = new_secret("key"), new_secret("store"), new_secret("broker")
    monkeypatch.setenv("COVEO_API_KEY", key)
    monkeypatch.setenv("REDIS_URL", f"redis://:{store_password}%21@127.0.0.1:6379/0")
    monkeypatch.setenv("BROKER_URL", f"amqp://sync:{broker_password}@127.0.0.1:5672//")
    load_settings()
    text = f"key {key}, store {store_password}!, broker {broker_password}"
    assert redaction.redact(text) == "key [redacted], store [redacted], broker [redacted]"


def test_a_password_that_is_the_user_name_leaves_the_user_name_readable() -> None:
    secrets = redaction.Secrets()
    secrets.register_url("amqp://guest:guest@127.0.0.1:5672//")
    secrets.register_url("amqp://sync:s3cret-pass@rabbit:5672//")
    assert secrets.redact("user guest on amqp://guest:guest@127.0.0.1:5672//, then sync with s3cret-pass") == \
        "user guest on amqp://guest:[redacted]@127.0.0.1:5672//, then sync with [redacted]"


def test_kombus_mask_of_a_url_without_a_password_is_shown_as_the_url_without_one() -> None:
    # kombu renders redis://host:6379/0 as redis://:**@host:6379/0 ("Connected to ..."): that
    # says a password was hidden where there is none; one that exists stays hidden.
    secrets = redaction.Secrets()
    secrets.register_url("redis://127.0.0.1:6379/4")
    secrets.register_url("redis://:s3cret-pass@10.0.0.9:6379/0")
    assert secrets.redact("Connected to redis://:**@127.0.0.1:6379/4 and redis://:**@10.0.0.9:6379/0") == \
        "Connected to redis://127.0.0.1:6379/4 and redis://:[redacted]@10.0.0.9:6379/0"
    assert secrets.redact("redis://:**@elsewhere:6379/0") == "redis://:[redacted]@elsewhere:6379/0"


def test_push_api_errors_echoing_the_key_leave_it_out_of_logs_and_dead_letters(
        log_file: Path, server: ScriptedServer, redis_broker_url: str) -> None:
    key = new_secret("key")
    client = PushApiClient(base_url=server.push_url, organization_id="org", api_key=key, retry_budget_seconds=30,
                           sleep=lambda seconds: None)
    server.script("POST", r"/status$", 503, error_code="UNAVAILABLE", message=f"upstream saw Bearer {key}")
    server.script("POST", r"/status$", 401, error_code="UNAUTHORIZED", message=f"the key {key} is not valid")
    server.script("PUT", r"/documents/batch$", 400, error_code="INVALID_TOKEN", message=f"gateway refused {key}")
    failures: list[BaseException] = []
    for call in (lambda: client.set_source_status("kb", "REFRESH"), lambda: client.push_documents_batch("kb", "f-1")):
        try:
            call()
        except PushApiError as exc:
            log.exception("call failed: %s", exc)
            failures.append(exc)
    failures.append(RuntimeError(f"unexpected: {key}"))
    letters = DeadLetterBrowser(redis_broker_url)
    for number, error in enumerate(failures):
        letters.send("source:kb", f"batch-{number}", [b'{"kind":"item.delete"}'], error, attempts=1)
    client.close()

    assert key not in log_file.read_text()
    shown = readable(log_file)
    assert "push api call failed (attempt 1)" in shown and "upstream saw Bearer [redacted]" in shown
    assert "the key [redacted] is not valid (HTTP 401 UNAUTHORIZED)" in shown
    assert "gateway refused [redacted] (HTTP 400 INVALID_TOKEN)" in shown
    entries = letters.list(target="kb")
    assert sorted(entry.error.message for entry in entries) == [
        "push_documents_batch [kb]: gateway refused [redacted] (HTTP 400 INVALID_TOKEN)",
        "set_source_status [kb]: the key [redacted] is not valid (HTTP 401 UNAUTHORIZED)",
        "unexpected: [redacted]",
    ]
    assert not any(key in entry.to_json().decode() for entry in entries)
    letters.purge()
