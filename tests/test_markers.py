"""The lanes of docs/testing.md: each test is marked with what it needs, found from its fixtures and
parameters (tests/plugins/markers.py), so that the fast lane leaves out whatever starts a process or
needs RabbitMQ. The real test modules are collected, as a session of their own, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
FAST_LANE = "not process and not rabbitmq and not slow"


def marks(pytester: pytest.Pytester, module: str, *options: str) -> dict[str, set[str]]:
    """The markers of each test of `module` (a path from the repository) that a session with `options` selects, by name."""
    recorder = pytester.inline_run("--collect-only", "-p", "no:cacheprovider", str(REPO / module), *options)
    [finished] = recorder.getcalls("pytest_collection_finish")
    return {item.name: {mark.name for mark in item.iter_markers()} for item in finished.session.items}


def test_a_test_that_starts_workers_is_marked_process_and_on_rabbitmq_also_rabbitmq(pytester: pytest.Pytester) -> None:
    found = marks(pytester, "tests/worker/test_end_to_end.py")
    assert found["test_index_equals_last_write_wins_with_honest_brackets[redis]"] >= {"process"}
    assert "rabbitmq" not in found["test_index_equals_last_write_wins_with_honest_brackets[redis]"]
    assert found["test_index_equals_last_write_wins_with_honest_brackets[rabbitmq]"] >= {"process", "rabbitmq"}
    assert marks(pytester, "tests/worker/test_end_to_end.py", "-m", FAST_LANE) == {}


def test_a_test_on_each_broker_is_marked_rabbitmq_on_rabbitmq_only(pytester: pytest.Pytester) -> None:
    found = marks(pytester, "tests/producers/test_publisher.py")
    name = "test_events_come_back_exactly_as_sent_batched_per_message"
    assert "rabbitmq" in found[f"{name}[rabbitmq]"] and "process" not in found[f"{name}[rabbitmq]"]
    assert not found[f"{name}[redis]"] & {"process", "rabbitmq", "slow"}
    fast = marks(pytester, "tests/producers/test_publisher.py", "-m", FAST_LANE)
    assert f"{name}[redis]" in fast and f"{name}[rabbitmq]" not in fast


def test_a_module_of_fault_lanes_is_slow(pytester: pytest.Pytester) -> None:
    found = marks(pytester, "tests/worker/test_faults.py")
    assert found and all("slow" in names for names in found.values()), found
