"""Redis URLs of every topology pushsync runs on, and the redis-py client each one calls for.

One place reads them, for the coalescing store and for a Redis broker's events stream alike (the
producers publish there without the worker, so this lives on their side):

- `redis://[user:password@]host:6379/0`, `rediss://…` (TLS), `unix:///path/redis.sock?db=0`: one
  server, through `redis.Redis.from_url`;
- `redis+sentinel://[user:password@]h1:26379,h2:26379,h3:26379/mymaster/0`: the primary that the
  Sentinels at those hosts name for master `mymaster`, database 0 (optional), through
  `redis.sentinel.Sentinel.master_for`; the password is the primary's (the Sentinels take none);
- `redis+cluster://[user:password@]h1:7000,h2:7001,h3:7002`: a Redis Cluster found from those seed
  nodes (one is enough), through `redis.cluster.RedisCluster`; a Cluster has only database 0;
- `rediss+sentinel://…` and `rediss+cluster://…`: the same over TLS to every node (the Sentinels
  too), with the TLS options of `TLS_OPTIONS` after a `?` (a private CA's file, a client certificate).

`parse` says in one line what is wrong with a malformed URL, never repeating it (it may hold a
password); `client_for` makes the client; `kombu_form` spells a Sentinel broker as kombu's Sentinel
transport wants it; `shown` masks the password for messages.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Union
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

import redis
from kombu.utils.url import maybe_sanitize_url
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.sentinel import Sentinel

PLAIN_SCHEMES = ("redis", "rediss", "unix")
"""One server: over TCP, over TLS, or on a Unix socket."""
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
TLS_SENTINEL_SCHEME = "rediss+sentinel"
TLS_CLUSTER_SCHEME = "rediss+cluster"
SENTINEL_SCHEMES = (SENTINEL_SCHEME, TLS_SENTINEL_SCHEME)
CLUSTER_SCHEMES = (CLUSTER_SCHEME, TLS_CLUSTER_SCHEME)
TLS_SCHEMES = (TLS_SENTINEL_SCHEME, TLS_CLUSTER_SCHEME)
"""The Sentinel and Cluster forms over TLS (one server over TLS is `rediss://`, read by redis-py itself)."""
STORE_SCHEMES = (*PLAIN_SCHEMES, *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)
"""Every scheme a store URL may have."""
DEFAULT_PORTS = {**dict.fromkeys(SENTINEL_SCHEMES, 26379), **dict.fromkeys(CLUSTER_SCHEMES, 6379)}
CERT_REQUIREMENTS = ("none", "optional", "required")
"""What `ssl_cert_reqs` may ask of the servers' certificates (redis-py's spellings; required by default)."""
BOOLEANS = {"true": True, "false": False}
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
"""What a `rediss+sentinel://` or `rediss+cluster://` URL takes after `?`, as redis-py names its TLS options: the CA
file that signed the servers' certificates (default: the system's), this client's certificate and key files,
whether a certificate is required (`CERT_REQUIREMENTS`), whether it must name the host (`true`/`false`)."""
KOMBU_SENTINEL_SCHEME = "sentinel"
"""How kombu's Sentinel transport spells each Sentinel of its failover list."""
SENTINEL_EXAMPLE = "redis+sentinel://h1:26379,h2:26379,h3:26379/mymaster/0"
CLUSTER_EXAMPLE = "redis+cluster://h1:7000,h2:7001,h3:7002"
ENCODE_HINT = "a ? / # @ [ ] of the user or password must be percent-encoded (? as %3F)"
"""What a URL whose user or password holds a reserved character reads as, said without quoting it."""

StoreClient = Union[redis.Redis, "DeferredCluster"]
"""What `client_for` makes: a client of one server (a Sentinel's primary is one), or of a Cluster."""


class Topology(str, enum.Enum):
    """How the servers behind a URL are arranged."""

    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class RedisUrl:
    """A checked Redis URL, taken apart."""

    url: str
    """The URL as given."""
    topology: Topology
    hosts: tuple[tuple[str, int], ...] = ()
    """Sentinel and Cluster: the (host, port) of each Sentinel or seed node."""
    master: str | None = None
    """Sentinel: the name of the monitored master."""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: dict[str, Any] | None = None
    written_password: str | None = None
    """Sentinel and Cluster: the password as the URL spells it (percent-encoded, where `password` is decoded)."""
    """Sentinel and Cluster over TLS: redis-py's connection options for it (`ssl` and the `TLS_OPTIONS` given)."""


def parse(url: str) -> RedisUrl:
    """`url` taken apart; ValueError in one line when it is not a Redis URL pushsync can use."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in STORE_SCHEMES:
        given = f"{scheme}://" if scheme and sep else "no scheme"
        raise ValueError(f"expected a URL starting with {', '.join(s + '://' for s in STORE_SCHEMES)}; got {given}")
    if scheme in PLAIN_SCHEMES:
        return _plain(url.strip(), scheme)
    # The options first: a CA file's path holds slashes. A `?` of a password must be percent-encoded, as a `/` must.
    rest, ask, query = rest.partition("?")
    tls = _tls_options(scheme, query) if scheme in TLS_SCHEMES else None
    if ask and tls is None:
        raise ValueError(f"{scheme}:// takes no ?options: give the hosts, then the path, as in "
                         f"{SENTINEL_EXAMPLE if scheme == SENTINEL_SCHEME else CLUSTER_EXAMPLE} "
                         f"(over TLS, {TLS_SENTINEL_SCHEME}:// and {TLS_CLUSTER_SCHEME}:// take TLS options; "
                         f"{ENCODE_HINT})")
    netloc, _, path = rest.partition("/")
    userinfo, _, hostlist = netloc.rpartition("@")
    username, password = _credentials(userinfo)
    written = userinfo.partition(":")[2] or None
    try:
        hosts = tuple(_host(part, scheme) for part in hostlist.split(","))
    except ValueError as exc:
        if "@" in query and not userinfo:
            # The `@` of the credentials is after a `?`: the password's, unencoded.
            raise ValueError(f"{exc} ({ENCODE_HINT})") from None
        raise
    segments = [unquote(segment) for segment in path.strip("/").split("/")] if path.strip("/") else []
    if scheme in SENTINEL_SCHEMES:
        if not segments or not segments[0]:
            raise ValueError(f"expected the master's name after the Sentinel hosts, as in {SENTINEL_EXAMPLE}")
        if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
            raise ValueError(f"expected /master-name or /master-name/database-number after the hosts, as in {SENTINEL_EXAMPLE}")
        db = int(segments[1]) if len(segments) == 2 else 0
        return RedisUrl(url.strip(), Topology.SENTINEL, hosts, segments[0], db, username, password, tls, written)
    if segments and segments != ["0"]:
        raise ValueError(f"a Redis Cluster has only database 0: give no path, as in {CLUSTER_EXAMPLE}")
    return RedisUrl(url.strip(), Topology.CLUSTER, hosts, None, 0, username, password, tls, written)


def _tls_options(scheme: str, query: str) -> dict[str, Any]:
    """redis-py's TLS connection options from the `?` part of a `scheme` URL; ValueError in one line naming the
    option that is unknown or whose value cannot be (never the value: it is a path of this machine at most)."""
    options: dict[str, Any] = {"ssl": True}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in TLS_OPTIONS:
            # Not named: a `?` left unencoded in a password makes the rest of it read as options.
            raise ValueError(f"{scheme}:// takes only the TLS options {', '.join(TLS_OPTIONS)} after ?, and one given "
                             f"is none of them ({ENCODE_HINT})")
        if name in options:
            raise ValueError(f"{scheme}://: the option {name} is given twice")
        if not value:
            raise ValueError(f"{scheme}://: the option {name} has no value")
        if name == "ssl_cert_reqs" and value.lower() not in CERT_REQUIREMENTS:
            raise ValueError(f"{scheme}://: ssl_cert_reqs must be one of {', '.join(CERT_REQUIREMENTS)}")
        if name == "ssl_check_hostname":
            if value.lower() not in BOOLEANS:
                raise ValueError(f"{scheme}://: ssl_check_hostname must be true or false")
            options[name] = BOOLEANS[value.lower()]
        else:
            options[name] = value.lower() if name == "ssl_cert_reqs" else value
    return options


def shown(url: str) -> str:
    """`url` as it may be printed: its password masked (kombu's masking, which reads one host only,
    for any URL that is not a Sentinel or Cluster one)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in (*SENTINEL_SCHEMES, *CLUSTER_SCHEMES):
        try:
            return maybe_sanitize_url(url)
        except ValueError:
            pass  # kombu cannot read it (a password holding an unencoded `/` reads as a port): masked below
    try:
        parse(url)
    except ValueError:
        # Not readable: any `@` may end the credentials (an unencoded `/`, `?`, `#` or `@` in the password),
        # so everything up to the last one is masked.
        userinfo, at, after = rest.rpartition("@")
        if not at:
            return url
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}://{user}:**@{after}" if colon else f"{scheme}://**@{after}"
    # Read as `parse` reads it: the options first (a certificate's path may hold `@` and `/`), then the hosts.
    head, ask, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    masked = f"{user}:**@" if colon and password else userinfo + at
    return f"{scheme}://{masked}{hosts}{slash}{path}{ask}{query}"


class KombuForm(NamedTuple):
    """How kombu (and Celery) take a broker URL."""

    url: str
    transport_options: dict[str, Any]
    ssl: dict[str, Any] | None
    """kombu's `ssl` connection option (Celery's `broker_use_ssl`), for a Sentinel-watched primary over TLS."""


def kombu_form(url: str) -> KombuForm:
    """The broker at `url` as kombu takes it: a Sentinel URL becomes kombu's own Sentinel transport,
    `sentinel://h1:26379;sentinel://h2:26379/0` with the master's name in `master_name` (and, over TLS, the
    Sentinels' TLS options in `sentinel_kwargs` and the primary's in `ssl`); any other URL is kombu's as it is."""
    if url.partition("://")[0].lower() not in SENTINEL_SCHEMES:
        return KombuForm(url, {}, None)
    target = parse(url)
    auth = ""
    if target.password:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    nodes = [f"{KOMBU_SENTINEL_SCHEME}://{auth}{_bracketed(host)}:{port}/{target.db}" for host, port in target.hosts]
    options: dict[str, Any] = {"master_name": target.master}
    if target.tls is None:
        return KombuForm(";".join(nodes), options, None)
    # kombu takes a primary over TLS only from a non-empty dict of options (without `ssl`, which it implies).
    primary = {"ssl_cert_reqs": "required", **{name: value for name, value in target.tls.items() if name != "ssl"}}
    return KombuForm(";".join(nodes), {**options, "sentinel_kwargs": dict(target.tls)}, primary)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _plain(url: str, scheme: str) -> RedisUrl:
    try:
        parts = urlsplit(url)
    except ValueError:
        # urlsplit's own message may quote a bracketed part of the password.
        raise ValueError(f"{scheme}:// URL cannot be read: {ENCODE_HINT}") from None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("expected unix:///path/to/redis.sock")
        return RedisUrl(url, Topology.SINGLE)
    if "," in parts.netloc:
        raise ValueError(f"one host only in {scheme}://; several are {SENTINEL_SCHEME}:// or {CLUSTER_SCHEME}:// "
                         f"(as in {SENTINEL_EXAMPLE} or {CLUSTER_EXAMPLE})")
    check_host(parts, scheme)
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the path must be a database number, as in {scheme}://host:6379/0")
    return RedisUrl(url, Topology.SINGLE, db=int(path or 0))


def check_host(parts: SplitResult, scheme: str) -> None:
    """ValueError in one line unless the URL `parts` (of `scheme`) name a host and, if any, a valid port."""
    if not parts.hostname:
        raise ValueError(f"expected a host after {scheme}://")
    try:
        parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    # As redis-py reads `redis://name@host`: a userinfo without `:` is a user name.
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None


def _host(part: str, scheme: str) -> tuple[str, int]:
    """(host, port) of one `host[:port]` (IPv6 in brackets) of a Sentinel or Cluster host list."""
    part = part.strip()
    if part.startswith("["):
        host, _, tail = part[1:].partition("]")
        port = tail.removeprefix(":") if tail.startswith(":") else ("" if not tail else None)
    else:
        host, _, port = part.partition(":")
    if not host or port is None:
        raise ValueError(f"expected host:port pairs separated by commas after {scheme}://, with no empty one")
    if not port:
        return host, DEFAULT_PORTS[scheme]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("each port must be a number from 1 to 65535")
    return host, int(port)


def client_for(url: str, *, socket_timeout: float, socket_connect_timeout: float, **options: Any) -> StoreClient:
    """A pooled redis-py client of the servers `url` names (nothing is connected yet).

    socket_timeout: seconds to wait for each answer.
    socket_connect_timeout: seconds to open a connection.
    options: further connection options of redis-py (health_check_interval, retry, retry_on_error).
    """
    target = parse(url)
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
    if target.topology is Topology.SINGLE:
        return redis.Redis.from_url(target.url, **timeouts, **options)
    credentials = {"username": target.username, "password": target.password}
    tls = target.tls or {}
    if target.topology is Topology.SENTINEL:
        # A Sentinel answers quickly or not at all: its own connections keep the timeouts, not the retries.
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs={**timeouts, **tls}, **timeouts, **tls, **options)
        return sentinel.master_for(target.master, db=target.db, **credentials)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]
    return DeferredCluster(lambda: RedisCluster(startup_nodes=nodes, **credentials, **timeouts, **tls, **options))


class DeferredCluster:
    """A RedisCluster made at its first use instead of at once, then that client for every call.

    redis-py's asks the nodes for the slot map as it is made: a Cluster unreachable when a process
    starts would stop the process, where a single server's client only fails its first call. Made
    here at first use, that failure is the call's, and an outage like any other (made again at the
    next use).
    """

    def __init__(self, make: Callable[[], RedisCluster]) -> None:
        """make: builds the RedisCluster."""
        self._make = make
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        """The RedisCluster, made now if it is not yet."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return self._client

    def register_script(self, script: str) -> Script:
        """`script` callable on this Cluster, registered without reaching it (its sha is computed here)."""
        return Script(self, script.encode())

    def close(self) -> None:
        """Close the Cluster's connections, if it was ever made (closing reaches no node)."""
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)
