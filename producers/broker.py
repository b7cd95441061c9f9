"""The broker topology of change events, declared identically by producers and the worker.

Both sides must declare `pushsync.events` with the same arguments (RabbitMQ refuses a second
declaration that differs), so the topology lives here and nowhere else.

- Redis: change events travel on a stream of the same name (`producers.transport` says why not
  kombu's list), read by the workers' consumer group `pushsync.ingest`; the stream's own delivery
  counts bound how often a message is tried. Run Redis with `appendonly yes` and
  `maxmemory-policy noeviction`.
- RabbitMQ: `pushsync.events` is a quorum queue with a delivery limit; a message redelivered
  more often than that (a poison message) is dead-lettered, at least once, through the direct
  exchange `pushsync.events.dead-letter` to the quorum queue `pushsync.events.poison`.
  Publishers wait for the broker's confirm of every message.

A RabbitMQ cluster is named by kombu's failover list, the nodes' URLs separated by `;`
(`amqp://u:p@h1:5672/vh;amqp://u:p@h2:5672/vh`): a connection opens to the first node that
answers, and one that breaks (the node died) is opened again on the next node, round robin; a
publish whose confirm did not come is sent again there. Quorum queues declared while the nodes
are up have a member on each (RabbitMQ fixes the members at declaration: a node that joins later
gets none until `rabbitmq-queues grow`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from kombu import Connection, Exchange, Queue

from producers import redis_urls

EVENTS_QUEUE = "pushsync.events"
TASKS_QUEUE = "pushsync.tasks"
"""The workers' Celery task queue (pushes, sweeps), named here with the other queues."""
POISON_SUFFIX = ".poison"
DEAD_LETTER_SUFFIX = ".dead-letter"
DELIVERY_LIMIT = 5
"""Deliveries of one RabbitMQ message before it is dead-lettered as poison."""
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
PERSISTENT = 2
"""AMQP delivery mode: the broker writes the message to disk."""
DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a broker connection."""
DEFAULT_CONFIRM_TIMEOUT = 10.0
"""Seconds to wait for RabbitMQ to confirm a published message."""
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
CONSUMER_GROUP = "pushsync.ingest"
"""The one consumer group of the workers on the events stream of a Redis broker."""
BODY_FIELD = b"body"
"""Stream entry field holding the message body; the other fields are its headers."""
CONTENT_TYPE_FIELD = b"content-type"
CONTENT_ENCODING_FIELD = b"content-encoding"
COMPRESSION_FIELD = b"compression"
"""A kombu compression name or content type, when the body is compressed."""
KOMBU_FIELD = b"kombu"
"""A whole kombu message, as the list transport of older versions kept it (moved over at upgrade)."""


URL_SEPARATOR = ";"
UNREADABLE_HINT = "reserved characters of its user or password (such as / ? # @ :) must be percent-encoded"
"""Why kombu cannot read a URL whose port it finds inside the password (its own message quotes that part)."""
"""Between the node URLs of a failover list, as kombu and Celery split it."""


NOT_A_CLUSTER = ("a Redis Cluster cannot be the broker (kombu has no Cluster transport): use RabbitMQ (amqp://...), "
                 "a Redis server (redis://host:6379/1) or a Sentinel-watched one (redis+sentinel://...)")


def is_amqp(broker_url: str) -> bool:
    """Whether `broker_url` (one URL or a failover list) names RabbitMQ (AMQP) rather than Redis."""
    return broker_url.split("://", 1)[0].lower() in AMQP_SCHEMES


def split_urls(broker_url: str) -> list[str]:
    """The URLs of `broker_url`: one URL, or each node of a failover list, in order (empty ones kept)."""
    return [url.strip() for url in broker_url.split(URL_SEPARATOR)]


def checked_urls(broker_url: str) -> list[str]:
    """The URLs of `broker_url`, or ValueError in one line naming the first element that cannot be a
    node of the same list (empty, without a scheme, another transport than the first, or a list of
    Redis URLs), by its position and host only (an element may hold a password)."""
    urls = split_urls(broker_url)
    if len(urls) == 1:
        if _scheme(urls[0]) in redis_urls.CLUSTER_SCHEMES:
            raise ValueError(NOT_A_CLUSTER)
        return urls
    first = _scheme(urls[0])
    for n, url in enumerate(urls, 1):
        where = list_element(urls, n)
        scheme = _scheme(url)
        if not scheme:
            raise ValueError(f"{where} is {'empty' if not url else 'not a URL (no scheme://)'}")
        if scheme not in AMQP_SCHEMES:
            raise ValueError(f"{where} is {scheme}://: a list of URLs names the nodes of one RabbitMQ cluster "
                             "(amqp://…;amqp://…); a Redis broker takes one URL")
        if scheme != first:
            raise ValueError(f"{where} is {scheme}:// but URL 1 is {first}://: every node of the list takes "
                             "the same transport")
        if _password_cut(url):
            raise ValueError(f"{where} cannot be read: {UNREADABLE_HINT}")
    return urls


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def list_element(urls: list[str], n: int) -> str:
    """How a message names the `n`-th (from 1) of a failover list's `urls`: its place and host, no password."""
    url = urls[n - 1]
    if n < len(urls) and not _scheme(urls[n]):
        # The next element is no URL: this one may end at a `;` of its password.
        return f"URL {n} of the {len(urls)} in the broker list"
    try:
        host = urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        host = ""
    if _password_cut(url):
        host = url.rpartition("@")[2].partition("/")[0]
    return f"URL {n} of the {len(urls)} in the broker list" + (f" ({host})" if host else "")


def _password_cut(url: str) -> bool:
    """Whether `url`'s host part seems to end inside its password (an unencoded `/`, `?` or `#` in it)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return False
    return "@" not in netloc and "@" in url.partition("://")[2]


def shown(broker_url: str) -> str:
    """`broker_url` (one URL or a failover list; a store URL too, of any topology) as it may be printed:
    every password masked."""
    urls: list[str] = []
    for url in split_urls(broker_url):
        if urls and not _scheme(url):
            urls[-1] += URL_SEPARATOR + url  # no URL of its own: the rest of a password holding a `;`
        else:
            urls.append(url)
    return URL_SEPARATOR.join(redis_urls.shown(url) for url in urls)


def events_stream(name: str = EVENTS_QUEUE) -> str:
    """The Redis key of the change-event stream named `name`.

    The same name as the RabbitMQ queue: a producer of an older version, which pushed onto a list
    of that name, is refused (WRONGTYPE) instead of writing where no worker reads.
    """
    return name


def stream_fields(body: bytes) -> dict[bytes, bytes]:
    """The fields of the stream entry that carries one message `body`."""
    return {BODY_FIELD: body, CONTENT_TYPE_FIELD: CONTENT_TYPE.encode(),
            CONTENT_ENCODING_FIELD: CONTENT_ENCODING.encode()}


def connect(broker_url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Connection:
    """A kombu connection (not yet opened) set up for confirmed publishing on either broker.

    `connect_timeout` is the seconds allowed to open the connection.
    """
    if is_amqp(broker_url):
        options = {"confirm_publish": True}
    else:
        options = {"socket_connect_timeout": connect_timeout, "socket_timeout": connect_timeout}
    form = redis_urls.kombu_form(broker_url)
    try:
        transport_options = {**options, **form.transport_options}
        if "sentinel_kwargs" in transport_options:
            # redis-py gives the Sentinels the socket_* options only when no sentinel_kwargs are given.
            timeouts = {name: value for name, value in options.items() if name.startswith("socket_")}
            transport_options["sentinel_kwargs"] = {**timeouts, **transport_options["sentinel_kwargs"]}
        return Connection(form.url, connect_timeout=connect_timeout, ssl=form.ssl or False,
                          transport_options=transport_options)
    except ValueError:
        # kombu's own message quotes what it misread, which may be part of the password.
        raise ValueError(f"the broker URL {shown(broker_url)} cannot be read: {UNREADABLE_HINT}") from None


@contextmanager
def opened(broker_url: str, *, connect_timeout: float) -> Iterator[Connection]:
    """A connection to the broker, opened at once (each node of a list tried once, no waits): what a
    health probe needs. Whatever stops it from opening (refused, wrong vhost, bad login) on the
    last node tried is raised as it is."""
    connection = connect(broker_url, connect_timeout=connect_timeout)
    try:
        # kombu moves to the next node after each failure, and waits only once a round is done.
        connection.ensure_connection(max_retries=max(len(connection.alt) - 1, 0))
        yield connection
    finally:
        connection.release()


def events_queue(connection: Connection, name: str = EVENTS_QUEUE) -> Queue:
    """The change-event queue to publish to and consume from; `name` is overridden only by tests."""
    if not _on_amqp(connection):
        return Queue(name, exchange=Exchange(""), routing_key=name, durable=True)
    return Queue(
        name,
        exchange=Exchange(""),
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": name + DEAD_LETTER_SUFFIX,
            "x-dead-letter-routing-key": name + POISON_SUFFIX,
            # At-least-once dead-lettering never loses a poison message; RabbitMQ requires
            # reject-publish overflow for it.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def poison_queue(name: str = EVENTS_QUEUE) -> Queue:
    """Where RabbitMQ dead-letters messages of queue `name` that exceeded the delivery limit."""
    exchange = Exchange(name + DEAD_LETTER_SUFFIX, type="direct", durable=True)
    return Queue(
        name + POISON_SUFFIX,
        exchange=exchange,
        routing_key=name + POISON_SUFFIX,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def topology(connection: Connection, name: str = EVENTS_QUEUE) -> list[Queue]:
    """Every queue to declare before publishing or consuming, dead-letter target first."""
    if _on_amqp(connection):
        return [poison_queue(name), events_queue(connection, name)]
    return [events_queue(connection, name)]


def remove(connection: Connection, name: str) -> None:
    """Delete the queues of `name` and its dead-letter exchange (tests and benchmarks only)."""
    channel = connection.default_channel
    for queue in topology(connection, name):
        queue(channel).delete()
        if queue.exchange.name:
            queue.exchange(channel).delete()


def _on_amqp(connection: Connection) -> bool:
    return connection.transport.driver_type == "amqp"
