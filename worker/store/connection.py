"""The connection to the coalescing store (Redis: one server, a Sentinel-watched primary, or a Cluster), one client per process."""

from __future__ import annotations

from functools import cache

from producers.redis_urls import StoreClient, client_for
from worker.settings import Settings, SettingsError

SOCKET_TIMEOUT_SECONDS = 10.0
HEALTH_CHECK_SECONDS = 30


def store_url(settings: Settings) -> str:
    """The Redis URL of the coalescing store, or a clear error when none is configured."""
    if not settings.redis_url:
        raise SettingsError(
            "REDIS_URL: not set. Point it at a Redis server (redis://host:6379/0), "
            "or run `pushsync demo`, which starts an embedded one"
        )
    return settings.redis_url


@cache
def _client(url: str) -> StoreClient:
    return client_for(url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                      health_check_interval=HEALTH_CHECK_SECONDS)


def connect(settings: Settings) -> StoreClient:
    """This process's client for the coalescing store (pooled; shared by every caller)."""
    return _client(store_url(settings))
