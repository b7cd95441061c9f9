"""A private RabbitMQ node for the tests that stop, restart or kill their broker.

The machine's RabbitMQ (5672) is shared and must never be restarted, so the session starts a
node of its own from Debian's `rabbitmq-server` scripts: its own node name, free AMQP and
distribution ports, a config file of its own (the system file pins the listener to 5672), no
plugins, and mnesia, log and home directories in a temporary directory that is removed at the end.
The home directory holds the Erlang cookie, so the node and the `rabbitmqctl` calls made here
share it without reading the system node's. Run as root (CI), the node runs as the `rabbitmq`
user, as Debian's own wrapper does; otherwise as the current user. Only the shared epmd is
common to both nodes.

`RabbitCluster` joins three such nodes into one cluster (the same Erlang cookie in every home,
`join_cluster` to the first node) for the tests of failover between nodes: one per test module,
since starting it takes a while.

Where the scripts are absent the tests that need the node skip, except under CI (`CI=true`).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.raw import purge_rabbit
from worker.store.embedded import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Where Debian's package keeps the unwrapped scripts (`/usr/sbin`'s wrappers log elsewhere)."""
SERVICE_USER = "rabbitmq"
"""Who runs the node when the tests run as root."""
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.3
NODE_CONFIG = "# A pushsync test node: the listener comes from RABBITMQ_NODE_IP_ADDRESS and RABBITMQ_NODE_PORT.\n"
NO_PLUGINS = "[].\n"
"""An enabled-plugins file that enables none (no management or prometheus port to collide)."""
COOKIE_FILE = ".erlang.cookie"
"""Where Erlang looks for the cookie, in the node's home: nodes of one cluster must share it."""
CLUSTER_NODES = 3
"""The smallest cluster whose quorum queues survive the loss of a node."""


class RabbitNode:
    """One private RabbitMQ node: `url` to connect; `stop()`, `start()` and `kill()` to hurt it."""

    def __init__(self, directory: Path, *, name: str | None = None, cookie: str | None = None) -> None:
        """
        directory: an empty directory for the node's configuration, data, logs and cookie.
        name: the node name (default: a new pushsync-test-… one).
        cookie: the Erlang cookie, shared by the nodes of a cluster (default: the node makes its own).
        """
        self.directory = directory
        self.name = name or f"pushsync-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port, dist_port = free_port(), free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._user = SERVICE_USER if os.geteuid() == 0 else None
        home, mnesia, logs = (directory / part for part in ("home", "mnesia", "log"))
        for path in (home, mnesia, logs):
            path.mkdir()
        (directory / "rabbitmq.conf").write_text(NODE_CONFIG)
        (directory / "enabled_plugins").write_text(NO_PLUGINS)
        (directory / "rabbitmq-env.conf").write_text("")
        if cookie is not None:
            (home / COOKIE_FILE).write_text(cookie)
            # Erlang refuses a cookie that others may read.
            (home / COOKIE_FILE).chmod(0o400)
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            for path in (directory, *directory.rglob("*")):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.pid_file = mnesia / f"{self.name}.pid"
        self.log_path = logs / "console.log"
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home),
            "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            # Not the system's env file: it names the system node.
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(mnesia), "RABBITMQ_LOG_BASE": str(logs),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self._popen: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def _run_as(self) -> dict:
        return {"user": self._user, "group": self._user, "extra_groups": []} if self._user else {}

    def ctl(self, *args: str, timeout: float = 30, tool: str = "rabbitmqctl") -> subprocess.CompletedProcess:
        """Run `rabbitmqctl -n NODE ARGS` (or another of the CLI tools: `rabbitmq-queues`) with the node's cookie."""
        return subprocess.run([str(RABBITMQ_BIN / tool), "-n", self.name, *args], env=self._env,
                              cwd=self.directory, capture_output=True, text=True, timeout=timeout, **self._run_as())

    def start(self) -> None:
        """Start the node (on the same ports and data as before) and wait until it has booted."""
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Start the node's server and return at once (then `wait_started()`): nodes boot side by side."""
        assert not self.running, "the node is running"
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self._env, cwd=self.directory,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, **self._run_as())

    def wait_started(self) -> None:
        """Wait until the launched node has booted; RuntimeError with its log's tail if it does not."""
        assert self._popen is not None, "the node was not launched"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        # await_startup fails at once while the node is not registered with epmd yet: poll it.
        while time.monotonic() < deadline and self._popen.poll() is None:
            if self.ctl("await_startup", "--timeout", str(int(START_TIMEOUT_SECONDS))).returncode == 0:
                return
            time.sleep(POLL_SECONDS)
        tail = self.log_path.read_text(errors="replace")[-4000:]
        self._terminate(signal.SIGKILL)
        raise RuntimeError(f"RabbitMQ node {self.name} did not start:\n{tail}")

    def join(self, seed: RabbitNode) -> None:
        """Make this running node a member of `seed`'s cluster (it leaves its own, and its data is reset)."""
        self.leave()
        for args in (("join_cluster", seed.name), ("start_app",)):
            self._ctl_or_raise(*args)

    def leave(self) -> None:
        """Stop the RabbitMQ application of this node and reset it: it leaves its cluster, the server stays up."""
        for args in (("stop_app",), ("reset",)):
            self._ctl_or_raise(*args)

    def _ctl_or_raise(self, *args: str) -> None:
        done = self.ctl(*args, timeout=START_TIMEOUT_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.name} {' '.join(args)} failed: "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")

    def stop(self, wait: bool = True) -> None:
        """A clean stop: SIGTERM to the server script, which stops the node gracefully.

        wait: return once the node is down; otherwise at once (then `wait_stopped()`).
        """
        if self.running:
            os.killpg(self._popen.pid, signal.SIGTERM)
            if wait:
                self._wait()

    def wait_stopped(self) -> None:
        """Wait until a node being stopped is down."""
        if self._popen is not None:
            self._wait()

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM, as a crash would: nothing is flushed or closed."""
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
        self._wait()

    def _terminate(self, signum: int) -> None:
        if self.running:
            os.killpg(self._popen.pid, signum)
            self._wait()

    def _wait(self) -> None:
        assert self._popen is not None
        try:
            self._popen.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait()

    def restart(self, down_seconds: float) -> None:
        """Stop the node cleanly, keep it down for `down_seconds`, start it again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


class RabbitCluster:
    """`CLUSTER_NODES` private nodes joined into one cluster; `url` is kombu's failover list of them all."""

    def __init__(self, directory: Path) -> None:
        """directory: an empty directory holding one directory per node."""
        prefix, cookie = f"pushsync-{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
        self.nodes = []
        for letter in "abc"[:CLUSTER_NODES]:
            (directory / letter).mkdir()
            self.nodes.append(RabbitNode(directory / letter, name=f"{prefix}-{letter}@localhost", cookie=cookie))
        if os.geteuid() == 0:
            # The nodes' own directories are theirs; they must be able to reach them.
            account = pwd.getpwnam(SERVICE_USER)
            os.chown(directory, account.pw_uid, account.pw_gid)
        self.url = ";".join(node.url for node in self.nodes)

    def start(self) -> None:
        """Start every node and join the others to the first."""
        seed, *others = self.nodes
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started()
        for node in others:
            node.join(seed)

    def running(self) -> list[RabbitNode]:
        """The nodes whose server runs now."""
        return [node for node in self.nodes if node.running]

    def stop(self) -> None:
        """Stop every node (all at once: a cluster losing its majority makes graceful stops wait)."""
        stopping = self.running()
        for node in stopping:
            node.stop(wait=False)
        for node in stopping:
            node.wait_stopped()


def _require_rabbitmq_server() -> None:
    """Skip the test without Debian's rabbitmq-server, or fail it under CI."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        message = f"rabbitmq-server is not installed ({RABBITMQ_BIN}); apt-get install rabbitmq-server"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node for the session; skips without Debian's rabbitmq-server, fails under CI."""
    _require_rabbitmq_server()
    directory = Path(tempfile.mkdtemp(prefix="pushsync-rabbitmq-"))
    node = RabbitNode(directory)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def private_rabbitmq(rabbitmq_node: RabbitNode) -> RabbitNode:
    """The session's private node, running (a test before may have left it down) and purged."""
    if not rabbitmq_node.running:
        rabbitmq_node.start()
    purge_rabbit(rabbitmq_node.url)
    return rabbitmq_node


@pytest.fixture(scope="module")
def rabbitmq_cluster() -> Iterator[RabbitCluster]:
    """A private 3-node RabbitMQ cluster for one test module; skips or fails as `rabbitmq_node`."""
    _require_rabbitmq_server()
    directory = Path(tempfile.mkdtemp(prefix="pushsync-rabbitmq-cluster-"))
    cluster = RabbitCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
