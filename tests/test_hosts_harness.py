"""The worker hosts of tests/support/hosts.py: they reach the bridge, a cut or a mute parts them from it,
and nothing they were made of outlives them, nor what a crashed session left under the same subnet."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support import hosts
from tests.support.hosts import NAMESPACE_PREFIX, Host, Network, ip

pytestmark = pytest.mark.process

CONNECT_SECONDS = 1.0
LEFTOVER_INDEX = 9
"""A host index no Network made: what a crashed session left."""


def connects(host: Host, address: str, port: int) -> bool:
    """Whether a TCP connection from `host` to `address`:`port` opens within CONNECT_SECONDS."""
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout={CONNECT_SECONDS}).close()"
    return subprocess.run([*host.runner, sys.executable, "-c", code], capture_output=True).returncode == 0


def namespaces() -> set[str]:
    return {line.split(" ", 1)[0] for line in ip("netns", "list").stdout.splitlines()}


@pytest.fixture()
def listener(network: Network):
    server = socket.socket()
    server.bind((network.address, 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_a_host_reaches_the_bridge_until_cut_or_muted(network: Network, listener: int) -> None:
    host = network.add_host()
    try:
        assert connects(host, network.address, listener)
        host.cut()
        assert not connects(host, network.address, listener)
        host.restore()
        assert connects(host, network.address, listener)
        host.mute()
        assert not connects(host, network.address, listener)
        host.unmute()
        assert connects(host, network.address, listener)
    finally:
        network.remove_host(host)
    assert host.name not in namespaces()
    assert ip("link", "show", host.link, check=False).returncode != 0


def test_a_closed_network_leaves_nothing_and_the_next_one_removes_a_crashed_sessions_leftovers(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Network()
    number, bridge = first.number, first.bridge
    assert number != network.number, "two networks of one machine never share a subnet"
    first.add_host()
    first.close()
    assert not [name for name in namespaces() if name.startswith(f"{NAMESPACE_PREFIX}{number}-")]
    assert ip("link", "show", bridge, check=False).returncode != 0
    # What a session killed outright under that number leaves: a namespace with a process in it, a bridge.
    leftover = f"{NAMESPACE_PREFIX}{number}-h{LEFTOVER_INDEX}"
    ip("netns", "add", leftover)
    ip("link", "add", bridge, "type", "bridge")
    orphan = subprocess.Popen(["ip", "netns", "exec", leftover, "sleep", "600"])
    # The next network of this session claims the same number (no other is tried).
    monkeypatch.setattr(hosts, "FIRST_NUMBER", number)
    monkeypatch.setattr(hosts, "LAST_NUMBER", number)
    second = Network()
    try:
        assert leftover not in namespaces()
        assert orphan.wait(timeout=10) != 0, "the process left in the namespace was stopped"
    finally:
        if orphan.poll() is None:
            orphan.kill()
        second.close()
