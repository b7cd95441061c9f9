"""Passwords in Sentinel and Cluster store URLs (plain and TLS) never reach a message, and kombu's TLS Sentinels keep
the connect timeout: inputs found by an adversarial pass."""

from __future__ import annotations

import pytest
import redis.sentinel

from producers import broker, redis_urls
from worker import settings as worker_settings
from worker.observe import probes

SECRET = "Zq7Secret"


def _error_of(**overrides: str) -> str:
    try:
        worker_settings.load_settings(**overrides)
    except worker_settings.SettingsError as exc:
        return str(exc)
    return ""


# 1. A `[`/`]` in the password: settings' urlsplit (before redis_urls.parse) quotes it via ipaddress's message.
@pytest.mark.parametrize("url", [
    f"rediss+cluster://:x[{SECRET}]y@h1:7000,h2:7001?ssl_ca_certs=/etc/ca.pem",
    f"rediss+sentinel://user:[{SECRET}]@h1:26379,h2/mymaster/0?ssl_cert_reqs=required",
])
def test_a_bracket_in_a_tls_password_is_never_quoted_by_the_settings(url: str) -> None:
    assert SECRET.lower() not in _error_of(redis_url=url, broker_url="amqp://guest:guest@h/vh").lower()
    assert SECRET.lower() not in _error_of(redis_url="redis://h:6379/0", broker_url=url).lower()


# 2. shown(): an unencoded `@` then `/` in the password; only the part before the first `@` is masked.
@pytest.mark.parametrize("url", [
    f"rediss+sentinel://:p@{SECRET}/x@h1:26379,h2/mymaster/0?ssl_ca_certs=/etc/ca.pem",
    f"rediss+cluster://user:p@{SECRET}/x@h1:7000?ssl_ca_certs=/etc/ca.pem",
    f"rediss+cluster://:@{SECRET}/x@h1:7000",
])
def test_shown_masks_a_tls_password_holding_an_at_then_a_slash(url: str) -> None:
    assert SECRET not in redis_urls.shown(url)
    assert SECRET not in broker.shown(url)


# 3. A `;` in the password (a valid userinfo character; parse and kombu_form handle it) of a TLS Sentinel store
#    that is also the broker: broker.shown (= probes.shown, used for the store too) splits it as a failover list.
STORE_WITH_SEMICOLON = f"rediss+sentinel://:ab;{SECRET}@h1:26379,h2/mymaster/0?ssl_ca_certs=/etc/ca.pem"


def test_a_semicolon_in_a_tls_sentinel_store_password_is_masked_wherever_the_store_is_shown() -> None:
    settings = worker_settings.load_settings(redis_url=STORE_WITH_SEMICOLON)  # accepted: store and broker
    assert worker_settings.the_broker(settings.redis_url, settings.broker_url) == STORE_WITH_SEMICOLON
    assert SECRET in redis_urls.parse(STORE_WITH_SEMICOLON).password
    assert SECRET not in redis_urls.shown(STORE_WITH_SEMICOLON)
    assert SECRET not in probes.shown(STORE_WITH_SEMICOLON)  # `pushsync status`, health/probe errors
    assert SECRET not in broker.shown(STORE_WITH_SEMICOLON)  # StreamTransport.url, broker.connect's error


def test_a_semicolon_in_a_tls_sentinel_broker_password_is_not_named_as_a_host() -> None:
    url = f"rediss+sentinel://:{SECRET};x@h1:26379/mymaster/0"
    assert SECRET.lower() not in _error_of(redis_url="redis://h:6379/0", broker_url=url).lower()


# 4. kombu's Sentinels over TLS: `sentinel_kwargs` replaces redis-py's default (the socket_* options of the
#    connection), so broker.connect's connect_timeout no longer reaches the Sentinels' connections (redis-py's
#    5 s default instead). Measured with a Sentinel that accepts and never answers: broker.opened(...,
#    connect_timeout=0.5) gives up after 8.4 s on redis+sentinel://, after 59.8 s on rediss+sentinel://.
class _Stop(Exception):
    pass


_SENTINEL = redis.sentinel.Sentinel


def _sentinel_timeouts(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, object]:
    seen: dict[str, object] = {}

    class Spy(_SENTINEL):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            options = self.sentinels[0].connection_pool.connection_kwargs
            seen.update({k: options.get(k) for k in ("socket_timeout", "socket_connect_timeout")})
            raise _Stop

    import kombu.transport.redis as kombu_redis
    monkeypatch.setattr(kombu_redis.sentinel, "Sentinel", Spy)
    connection = broker.connect(url, connect_timeout=0.5)
    try:
        with pytest.raises(_Stop):
            connection.default_channel.client.ping()
    finally:
        connection.release()
    return seen


def test_kombus_tls_sentinels_keep_the_connect_timeout_of_the_plain_form(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _sentinel_timeouts(monkeypatch, "redis+sentinel://127.0.0.1:1/mymaster/0")
    tls = _sentinel_timeouts(monkeypatch, "rediss+sentinel://127.0.0.1:1/mymaster/0?ssl_cert_reqs=none")
    assert plain == {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    assert tls == plain


# 5. shown() of a TLS URL whose option value holds an `@` (a certificate path): the hosts are hidden and the
#    first host reads as a user name (no leak, but the message names the wrong thing).
@pytest.mark.parametrize(("url", "hosts"), [
    ("rediss+cluster://:pw@h1:7000,h2:7001?ssl_certfile=app@prod.pem", "h1:7000,h2:7001"),
    ("rediss+sentinel://h1:26379,h2/mymaster/0?ssl_ca_certs=/etc/team@ops/ca.pem", "h1:26379,h2/mymaster/0"),
])
def test_shown_keeps_the_hosts_of_a_tls_url_whose_option_holds_an_at(url: str, hosts: str) -> None:
    assert hosts in redis_urls.shown(url)
    assert ":pw@" not in redis_urls.shown(url)


# 6. A `?` left unencoded in a password: the message speaks of TLS options only (plain forms even point at the
#    TLS schemes), never of the password's `?` the code comment says it is about.
@pytest.mark.parametrize("url", [
    "rediss+cluster://:pa?ss@h1:7000",
    "rediss+cluster://:pa?ssl_ca_certs=x@h1:7000",
    "redis+sentinel://:pa?ss@h1/mymaster",
])
def test_an_unencoded_question_mark_in_a_password_is_named_as_such(url: str) -> None:
    with pytest.raises(ValueError, match="percent-encoded"):
        redis_urls.parse(url)
