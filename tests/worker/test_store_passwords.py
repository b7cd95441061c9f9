"""A password in a Sentinel or Cluster store URL reaches the servers (and a wrong one is one clear line)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.topologies import RedisClusterTopology, SentinelTopology
from worker.observe import probes
from worker.settings import load_settings
from worker.store.connection import connect

PASSWORD = "s3cret-store-pass"


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def protected(request, tmp_path_factory) -> Iterator[RedisClusterTopology | SentinelTopology]:
    kind = RedisClusterTopology if request.param == "cluster" else SentinelTopology
    topology = kind(tmp_path_factory.mktemp(f"protected-{request.param}"), password=PASSWORD)
    yield topology
    topology.stop()


def test_the_url_password_reaches_the_store(protected):
    assert f":{PASSWORD}@" in protected.url
    probes.probe_store(protected.url)
    store = connect(load_settings(redis_url=protected.url, broker_url="redis://127.0.0.1:6379/0"))
    store.set("pushsync:{probe}:written", "yes")
    assert store.get("pushsync:{probe}:written") == b"yes"


def test_a_wrong_password_is_one_line_without_it(protected):
    wrong = protected.url.replace(PASSWORD, "not-the-password")
    with pytest.raises(probes.Unreachable) as refused:
        probes.probe_store(wrong)
    message = str(refused.value)
    assert "\n" not in message and "not-the-password" not in message, message
    assert "does not answer" in message
