"""Which broker a URL names is decided in one place, `broker.is_amqp`, the way kombu decides it; a
RabbitMQ cluster's failover list (`amqp://…;amqp://…`) is checked element by element, masked whole,
and opened on the node that answers."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Connection

from producers import Publisher, broker
from tests.support.raw import drain
from worker import redaction
from worker.settings import SettingsError, load_settings
from worker.store.embedded import free_port

CELERYCONFIG = Path(__file__).resolve().parents[1] / "celeryconfig.py"
PUSHSYNC = str(Path(sys.executable).with_name("pushsync"))
URLS = ["amqp://127.0.0.1:5672//", "AMQP://127.0.0.1:5672//", "Amqps://127.0.0.1:5671//", "PYAMQP://127.0.0.1//",
        "redis://127.0.0.1:6379/0", "REDIS://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0"]


@pytest.mark.parametrize("url", URLS)
def test_a_url_is_amqp_when_kombu_connects_to_it_over_amqp(url: str) -> None:
    # Schemes are case-insensitive (RFC 3986, 3.1) and kombu lowercases them: AMQP:// is RabbitMQ.
    assert broker.is_amqp(url) == (Connection(url).transport.driver_type == "amqp")


@pytest.mark.parametrize("url", URLS)
def test_celery_declares_quorum_task_queues_on_every_amqp_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("BROKER_URL", url)
    config = runpy.run_path(str(CELERYCONFIG))
    assert ("task_queues" in config) == broker.is_amqp(url)
    assert ("visibility_timeout" in config["broker_transport_options"]) != broker.is_amqp(url)


# A RabbitMQ cluster is named by kombu's failover list: the nodes' URLs joined by ";".
CLUSTER = "amqp://sync:first-s3cret@h1:5672/vh;amqp://sync:second-s3cret@h2:5673/vh;amqps://sync:third-s3cret@h3/vh"
BAD_LISTS = {
    "amqp://sync:first-s3cret@h1:5672/vh;;amqp://sync:second-s3cret@h2/vh":
        "URL 2 of the 3 in the broker list is empty",
    "amqp://sync:first-s3cret@h1/vh;h2:5672": "URL 2 of the 2 in the broker list is not a URL (no scheme://)",
    "amqp://sync:first-s3cret@h1/vh;redis://:second-s3cret@h2:6379/0":
        "URL 2 of the 2 in the broker list (h2:6379) is redis://: a list of URLs names the nodes of one RabbitMQ",
    "redis://:first-s3cret@h1:6379/0;redis://:second-s3cret@h2:6379/0": "URL 1 of the 2 in the broker list (h1:6379)",
    "amqp://sync:first-s3cret@h1/vh;amqps://sync:second-s3cret@h2/vh":
        "URL 2 of the 2 in the broker list (h2) is amqps:// but URL 1 is amqp://: every node of the list takes",
    "amqp://sync:first-s3cret@h1/vh;amqp://sync:second-s3cret@h2:99999/vh":
        "URL 2 of the 2 in the broker list (h2:99999): the port must be a number from 1 to 65535",
    "amqp://sync:first-s3cret@h1/vh;amqp://sync:second-s3cret@/vh":
        "URL 2 of the 2 in the broker list: expected a host after amqp://",
}


def test_a_failover_list_is_split_as_kombu_and_celery_split_it() -> None:
    url = CLUSTER.replace(";amqps", ";amqp")
    assert broker.split_urls(url) == Connection(url).alt
    assert broker.is_amqp(url)


def test_settings_take_a_failover_list_as_broker_url_and_register_every_password() -> None:
    url = CLUSTER.replace(";amqps", ";amqp")
    assert load_settings(BROKER_URL=url).broker_url == url
    text = f"failed over from {url}: first-s3cret second-s3cret third-s3cret"
    assert redaction.redact(text) == ("failed over from amqp://sync:[redacted]@h1:5672/vh;amqp://sync:[redacted]@h2:5673/vh;"
                                      "amqp://sync:[redacted]@h3/vh: [redacted] [redacted] [redacted]")


@pytest.mark.parametrize("url", BAD_LISTS)
def test_a_bad_element_of_a_broker_list_is_named_in_one_line_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(BROKER_URL=url)
    message = str(refused.value)
    assert message.startswith("invalid setting BROKER_URL: ") and BAD_LISTS[url] in message, message
    assert "s3cret" not in message and "\n" not in message


def test_a_failover_list_is_shown_with_every_password_masked() -> None:
    assert broker.shown(CLUSTER) == "amqp://sync:**@h1:5672/vh;amqp://sync:**@h2:5673/vh;amqps://sync:**@h3/vh"


@pytest.mark.process
@pytest.mark.parametrize("url", list(BAD_LISTS)[:3])
def test_pushsync_publish_refuses_a_bad_broker_list_in_one_line(url: str, tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_text("")
    env = {key: value for key, value in os.environ.items() if key not in ("BROKER_URL", "REDIS_URL")}
    done = subprocess.run([PUSHSYNC, "publish", str(source), "--broker-url", url], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert BAD_LISTS[url] in done.stderr and "s3cret" not in done.stderr + done.stdout


UNENCODED_PASSWORDS = ["amqp://sync:s3c/ret@h1:5672/vh", "amqp://sync:ok@h1/vh;amqp://sync:s3c/ret@h2/vh",
                       "redis://:s3c/ret@h1:6379/0", "redis+sentinel://:s3c/ret@h1:26379,h2/mymaster/0"]
"""Broker URLs whose password holds an unencoded `/`: the host part seems to end inside the password."""


@pytest.mark.parametrize("url", UNENCODED_PASSWORDS)
def test_a_password_with_an_unencoded_slash_is_never_shown_nor_quoted(url: str) -> None:
    assert "s3c" not in broker.shown(url) and "ret@" not in broker.shown(url)
    with pytest.raises(ValueError) as refused:
        Publisher(url)
    assert "s3c" not in str(refused.value) and "ret@" not in str(refused.value), refused.value


def test_a_publisher_refuses_a_list_of_redis_urls() -> None:
    with pytest.raises(ValueError, match="a Redis broker takes one URL"):
        Publisher("redis://127.0.0.1:6379/0;redis://127.0.0.1:6380/0")


def _dead_first(url: str) -> str:
    """`url` behind a node that does not answer (a port nothing listens on): a cluster that lost its first node."""
    parts = urlsplit(url)
    dead = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{free_port()}")))
    return f"{dead};{url}"


def test_a_probe_of_a_failover_list_opens_on_the_node_that_answers(rabbitmq_url: str) -> None:
    # /healthz and `pushsync status`: a first node down is not a broker down.
    with broker.opened(_dead_first(rabbitmq_url), connect_timeout=2) as connection:
        assert connection.connected


def test_a_publisher_on_a_failover_list_publishes_to_the_node_that_answers(rabbitmq_url: str,
                                                                           unique_name: str) -> None:
    queue = f"failover-{unique_name}"
    with Publisher(_dead_first(rabbitmq_url), queue_name=queue) as publisher:
        publisher.publish({"kind": "item.delete", "source": "s", "documentId": "https://example.com/1", "version": 1})
    with Connection(rabbitmq_url) as connection:
        try:
            assert [json.loads(body)["events"][0]["documentId"] for body in drain(rabbitmq_url, queue)] == \
                ["https://example.com/1"]
        finally:
            broker.remove(connection, queue)
