"""Marks each test with what it needs, so that `-m` picks a lane (docs/testing.md).

`process`: starts real OS processes (Celery workers, the emulator, webhook receivers, Node.js
helpers, a RabbitMQ node); `rabbitmq`: needs RabbitMQ; `slow`: the fault, crash and outage lanes
and long fuzzing. A test gets `process` and `rabbitmq` from the fixtures it uses; the modules whose
tests start processes themselves, and the slow ones, say so with `pytestmark`.
"""

from __future__ import annotations

import pytest

PROCESS_FIXTURES = frozenset({"workers", "emulator", "rabbitmq_node", "rabbitmq_cluster", "network_store", "network_emulator"})
"""Fixtures that start a process (and so does every fixture built on one, like `clean_emulator`)."""
RABBITMQ_FIXTURES = frozenset({"rabbitmq_url", "rabbitmq_node", "rabbitmq_cluster"})
RABBITMQ_PARAMETER = "rabbitmq"
"""The parameter value by which the tests and fixtures that run on each broker in turn pick RabbitMQ:
they ask for `rabbitmq_url` or `private_rabbitmq` only then, so the fixtures do not show it."""


def needs(item: pytest.Item) -> set[str]:
    """The markers `item`'s fixtures and parameters call for."""
    used = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    picks_rabbitmq = callspec is not None and RABBITMQ_PARAMETER in callspec.params.values()
    marks = set()
    if used & PROCESS_FIXTURES:
        marks.add("process")
    if used & RABBITMQ_FIXTURES or picks_rabbitmq:
        marks.add("rabbitmq")
    return marks


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted(needs(item) - {mark.name for mark in item.iter_markers()}):
            item.add_marker(name)
