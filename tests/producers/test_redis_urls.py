"""Redis URLs of every store topology: taken apart exactly, malformed ones refused in one line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.redis_urls import Topology, parse, shown

HOST = st.sampled_from(["h1", "redis.example.com", "10.0.0.7", "[::1]"])
PORT = st.integers(1, 65535)
HOSTS = st.lists(st.tuples(HOST, PORT), min_size=1, max_size=5)
NAME = st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=20)
SECRET = st.text("abcdefXYZ0123456789-_.~", min_size=1, max_size=20)


def _joined(hosts: list[tuple[str, int]]) -> str:
    return ",".join(f"{host}:{port}" for host, port in hosts)


def _bare(host: str) -> str:
    return host.strip("[]")


@given(HOSTS, NAME, st.integers(0, 15), st.none() | SECRET)
def test_sentinel_form_names_every_sentinel_the_master_and_database(hosts, master, db, password):
    auth = f":{password}@" if password else ""
    url = parse(f"redis+sentinel://{auth}{_joined(hosts)}/{master}/{db}")
    assert url.topology is Topology.SENTINEL
    assert url.hosts == tuple((_bare(host), port) for host, port in hosts)
    assert (url.master, url.db, url.password) == (master, db, password)


@given(HOSTS, st.none() | SECRET, st.none() | NAME)
def test_cluster_form_names_every_seed_node(hosts, password, username):
    auth = f"{username or ''}:{password}@" if password else ""
    url = parse(f"redis+cluster://{auth}{_joined(hosts)}")
    assert url.topology is Topology.CLUSTER
    assert url.hosts == tuple((_bare(host), port) for host, port in hosts)
    assert (url.db, url.password) == (0, password)
    assert url.username == (username if password else None)


def test_the_documented_forms():
    sentinel = parse("redis+sentinel://h1:26379,h2:26379,h3:26379/mymaster/0")
    assert (sentinel.hosts, sentinel.master, sentinel.db) == ((("h1", 26379), ("h2", 26379), ("h3", 26379)), "mymaster", 0)
    assert parse("redis+sentinel://h1,h2/mymaster").hosts == (("h1", 26379), ("h2", 26379))
    assert parse("redis+cluster://h1:7000").hosts == (("h1", 7000),)
    assert parse("redis+cluster://h1:7000,h2:7001/0").topology is Topology.CLUSTER
    for plain in ("redis://h:6379/2", "rediss://:pw@h:6380/0", "unix:///run/redis.sock"):
        assert parse(plain).topology is Topology.SINGLE


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h1:26379,h2:26379", "expected the master's name after the Sentinel hosts"),
    ("redis+sentinel://h1:26379/", "expected the master's name"),
    ("redis+sentinel://h1:26379/mymaster/zero", "expected /master-name or /master-name/database-number"),
    ("redis+sentinel://h1:26379/mymaster/0/1", "expected /master-name or /master-name/database-number"),
    ("redis+sentinel://h1:26379,,h2/mymaster", "expected host:port pairs separated by commas"),
    ("redis+sentinel://:pw@/mymaster", "expected host:port pairs"),
    ("redis+cluster://h1:7000/1", "a Redis Cluster has only database 0"),
    ("redis+cluster://h1:notaport", "each port must be a number from 1 to 65535"),
    ("redis+cluster://h1:70000", "each port must be a number from 1 to 65535"),
    ("redis://h1:6379,h2:6379/0", "one host only in redis://"),
    ("redis+shard://h1", "expected a URL starting with"),
    ("redis+cluster://h1:7000?ssl=true", "redis+cluster:// takes no ?options"),
    ("redis+sentinel://h1:26379/mymaster/0?ssl=true", "redis+sentinel:// takes no ?options"),
    ("rediss+cluster://h1:7000?ssl_ca_cert=/ca.pem", "takes only the TLS options ssl_ca_certs, ssl_certfile"),
    ("rediss+cluster://:pw?secret-host@h1:7000", "one given is none of them"),
    ("rediss+cluster://h1:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of none, optional, required"),
    ("rediss+cluster://h1:7000?ssl_check_hostname=perhaps", "ssl_check_hostname must be true or false"),
    ("rediss+cluster://h1:7000?ssl_ca_certs=", "the option ssl_ca_certs has no value"),
    ("rediss+sentinel://h1/m?ssl_ca_certs=/a&ssl_ca_certs=/b", "the option ssl_ca_certs is given twice"),
    ("rediss+sentinel://h1:26379?ssl_ca_certs=/ca.pem", "expected the master's name"),
    ("rediss+cluster://h1:7000/2?ssl_ca_certs=/ca.pem", "a Redis Cluster has only database 0"),
])
def test_malformed_forms_are_refused_in_one_line_without_the_url(url, says):
    with pytest.raises(ValueError) as refused:
        parse(url.replace("h1", "secret-host"))
    assert says in str(refused.value)
    assert "\n" not in str(refused.value) and "secret-host" not in str(refused.value)


def test_the_tls_forms_take_redis_pys_tls_options():
    cluster = parse("rediss+cluster://:pw@h1:7000,h2?ssl_ca_certs=/etc/ca/my%20ca.pem&ssl_cert_reqs=Required"
                    "&ssl_check_hostname=false&ssl_certfile=/c.pem&ssl_keyfile=/k.pem")
    assert (cluster.topology, cluster.hosts, cluster.password) == (Topology.CLUSTER, (("h1", 7000), ("h2", 6379)), "pw")
    assert cluster.tls == {"ssl": True, "ssl_ca_certs": "/etc/ca/my ca.pem", "ssl_cert_reqs": "required",
                           "ssl_check_hostname": False, "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    sentinel = parse("rediss+sentinel://h1,h2:26380/mymaster/3")
    assert (sentinel.topology, sentinel.hosts, sentinel.master, sentinel.db) == (
        Topology.SENTINEL, (("h1", 26379), ("h2", 26380)), "mymaster", 3)
    assert sentinel.tls == {"ssl": True}, "TLS with the system's CAs and redis-py's defaults"
    assert parse("redis+cluster://h1:7000").tls is None


@pytest.mark.parametrize(("url", "printed"), [
    ("rediss+cluster://:pw@h1:7000?ssl_ca_certs=/ca.pem", "rediss+cluster://:**@h1:7000?ssl_ca_certs=/ca.pem"),
    ("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/0", "redis+sentinel://:**@h1:26379,h2:26379/mymaster/0"),
    ("redis+cluster://user:pw@h1:7000,h2:7001", "redis+cluster://user:**@h1:7000,h2:7001"),
    ("redis+cluster://h1:7000", "redis+cluster://h1:7000"),
    ("redis://:pw@h1:6379/0", "redis://:**@h1:6379/0"),
])
def test_shown_masks_the_password_of_every_form(url, printed):
    assert shown(url) == printed
