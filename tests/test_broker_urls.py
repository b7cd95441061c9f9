"""Which broker a URL names is decided in one place, `broker.is_amqp`, the way kombu decides it."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from kombu import Connection

from producers import broker

CELERYCONFIG = Path(__file__).resolve().parents[1] / "celeryconfig.py"
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
