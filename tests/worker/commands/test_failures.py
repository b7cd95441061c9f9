"""A command that cannot do its work says why in one line and exits with the code of the cause.

Through the real `pushsync` command line, in a process of its own: a store or a broker that does
not answer (nothing listens on their ports), an input file that is not there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.commands.services import BROKER_DOWN, STORE_DOWN, USAGE
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

SETTINGS = ("REDIS_URL", "BROKER_URL", "COVEO_REGION", "COVEO_PUSH_URL", "COVEO_ORGANIZATION_ID", "COVEO_API_KEY")


def pushsync(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS} | variables
    return subprocess.run([sys.executable, "-m", "worker", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def nowhere() -> str:
    """A Redis URL on a local port nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("command", [
    ("dlq", "list"), ("dlq", "show", "some-entry"), ("dlq", "replay", "--source", "kb"), ("dlq", "purge", "--yes"),
    ("quarantine", "list"), ("quarantine", "show", "some-entry"), ("quarantine", "purge", "--all", "--yes"),
    ("quarantine", "replay", "--all"),
])
def test_a_store_that_does_not_answer_is_one_line_and_exit_3(nowhere, command):
    done = pushsync(*command, REDIS_URL=nowhere)
    assert done.returncode == STORE_DOWN, done.stderr
    assert done.stderr.startswith(f"pushsync: Redis (store) at {nowhere} does not answer")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_full_run_needs_its_store_before_it_reads_the_export(nowhere, tmp_path):
    export = tmp_path / "export.ndjson"
    export.write_text("")
    done = pushsync("rebuild", "kb", str(export), REDIS_URL=nowhere)
    assert done.returncode == STORE_DOWN and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("command", [("dlq", "list"), ("dlq", "export", "-"), ("quarantine", "replay", "--all")])
def test_a_broker_that_does_not_answer_is_one_line_and_exit_4(redis_url, command):
    broker = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    done = pushsync(*command, REDIS_URL=redis_url, BROKER_URL=broker)
    assert done.returncode == BROKER_DOWN, done.stderr
    assert done.stderr.startswith("pushsync: broker at amqp://guest:**@127.0.0.1:")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [
    ("publish", "missing.ndjson"), ("rebuild", "kb", "missing.ndjson"), ("identities", "sync", "groups", "missing.ndjson"),
])
def test_a_missing_input_file_is_named_with_exit_2(nowhere, command):
    done = pushsync(*command, REDIS_URL=nowhere)
    assert done.returncode == USAGE
    assert "'missing.ndjson' does not exist" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_help_needs_no_setting_and_names_the_pushsync_command(role):
    done = pushsync(role, "--help")
    assert done.returncode == 0, done.stderr
    assert f"Usage: pushsync {role} [OPTIONS]" in done.stdout and "python -m celery" not in done.stdout
