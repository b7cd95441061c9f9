"""Worker "hosts" on this machine: Linux network namespaces on a private subnet of their own.

A `Network` is a bridge in the root namespace holding the subnet's first address (where the shared
store, broker and emulator listen) and, for each `Host`, a network namespace joined to the bridge by
a veth pair, with the next free address. A process started with `host.runner` (`ip netns exec NAME`)
sees only its loopback and the subnet, as a process on another machine of the same LAN would;
`host.cut()` takes the root side of its veth down (a pulled cable), `host.restore()` puts it back.

Sessions on one machine are kept apart by a claim on the subnet (tests.support.claims): the claim's
number is the subnet's third octet and is in every name made here, so two sessions (or two xdist
workers) never share a subnet, a bridge, a namespace or an interface. A subnet that something else
on the machine uses (an address or a route in it) is passed over. What a crashed session left
under its number (its namespaces, their processes, its bridge) is removed by the next session
that claims the number. Needs root and `ip` from iproute2 (`unavailable()` says why not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from tests.support.claims import Claim, claim

SUBNET_PREFIX = "10.217"
"""The first two octets of every test subnet: a /16 unlikely to be in use on a test machine."""
FIRST_NUMBER, LAST_NUMBER = 1, 254
"""The third octets a session may claim."""
PREFIX_LENGTH = 24
BRIDGE_HOST_PART = 1
"""The bridge's address in the subnet: .1; hosts get .2 and up."""
NAMESPACE_PREFIX = "pushsync-net"
"""Namespaces are NAMESPACE_PREFIX<number>-h<index>: a leftover one says whose number it had."""
IP_TIMEOUT_SECONDS = 30
STOP_SECONDS = 5.0
"""How long a process left in a namespace gets after SIGTERM, before SIGKILL."""
POLL_SECONDS = 0.05
NOWHERE_MAC = "02:00:00:00:00:00"
"""A locally administered MAC address that no interface here has: frames sent to it are lost."""


class NetworkError(RuntimeError):
    """An `ip` command failed."""


def ip(*args: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip ARGS` (inside `namespace` when given); raise `NetworkError` with its message on failure."""
    command = ["ip", *(("-n", namespace) if namespace else ()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT_SECONDS)
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}")
    return done


def unavailable() -> str | None:
    """Why hosts cannot be made here (not root, no `ip`, namespaces refused), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"{NAMESPACE_PREFIX}-probe-{os.getpid()}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is refused here: {made.stderr.strip()}"
    ip("netns", "delete", probe, check=False)
    return None


@dataclass
class Host:
    """One worker host: a network namespace with one address on the network's subnet."""

    name: str
    """The namespace's name (and the host's, in node names and logs)."""
    address: str
    link: str
    """The root side of its veth pair, on the bridge: what `cut` takes down."""
    inner: str
    """The host's side of the veth pair."""
    gateway: str
    """The bridge's address, where the services listen."""

    @property
    def runner(self) -> tuple[str, ...]:
        """The command prefix that runs a program on this host."""
        return ("ip", "netns", "exec", self.name)

    def cut(self) -> None:
        """Pull the cable: nothing goes in or out until `restore`; connections stay open, as in a real partition."""
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def mute(self) -> None:
        """A one-way partition: what the host sends to the services goes nowhere (addressed to a machine
        that does not exist), while it still hears them, until `unmute`. Like a cut, but one that lets
        the answer to a request already sent arrive, so the host's next request is the first one lost."""
        ip("neigh", "replace", self.gateway, "lladdr", NOWHERE_MAC, "dev", self.inner, "nud", "permanent",
           namespace=self.name)

    def unmute(self) -> None:
        ip("neigh", "delete", self.gateway, "dev", self.inner, namespace=self.name)


class Network:
    """A private subnet with a bridge (services listen on `address`) and hosts added with `add_host`."""

    def __init__(self) -> None:
        self.number, self._claim = _claim_subnet()
        self.bridge = f"psbr{self.number}"
        self.address = _address(self.number, BRIDGE_HOST_PART)
        self.hosts: list[Host] = []
        self._made = 0
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.address}/{PREFIX_LENGTH}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self) -> Host:
        """A new host on the subnet, its link up and its loopback up."""
        self._made += 1
        index = self._made
        inner = f"psi{self.number}h{index}"
        host = Host(f"{NAMESPACE_PREFIX}{self.number}-h{index}", _address(self.number, BRIDGE_HOST_PART + index),
                    f"psv{self.number}h{index}", inner, self.address)
        ip("netns", "add", host.name)
        self.hosts.append(host)
        ip("link", "add", host.link, "type", "veth", "peer", "name", inner, "netns", host.name)
        ip("link", "set", host.link, "master", self.bridge)
        ip("link", "set", host.link, "up")
        ip("addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", inner, namespace=host.name)
        ip("link", "set", inner, "up", namespace=host.name)
        ip("link", "set", "lo", "up", namespace=host.name)
        return host

    def remove_host(self, host: Host) -> None:
        """Stop whatever still runs on the host, then delete its namespace (and with it both veth ends)."""
        _empty_namespace(host.name)
        ip("netns", "delete", host.name, check=False)
        ip("link", "delete", host.link, check=False)
        self.hosts.remove(host)

    def close(self) -> None:
        """Remove every host, the bridge, and give the subnet back."""
        for host in list(self.hosts):
            self.remove_host(host)
        ip("link", "delete", self.bridge, check=False)
        self._claim.release()


def _address(number: int, host_part: int) -> str:
    return f"{SUBNET_PREFIX}.{number}.{host_part}"


def _claim_subnet() -> tuple[int, Claim]:
    """The first subnet number no other session holds and nothing else on the machine uses, claimed,
    with what a crashed session left under it removed."""
    for number in range(FIRST_NUMBER, LAST_NUMBER + 1):
        claimed = claim(f"netns-subnet-{SUBNET_PREFIX}.{number}")
        if claimed is None:
            continue
        _remove_leftovers(number)
        subnet = f"{SUBNET_PREFIX}.{number}.0/{PREFIX_LENGTH}"
        # An address in the subnet, or a route to (a part of) it: something else on the machine uses it.
        if ip("-4", "-o", "addr", "show", "to", subnet).stdout.strip() or ip("-4", "route", "show", "root",
                                                                                 subnet).stdout.strip():
            claimed.give_back()
            continue
        return number, claimed
    raise NetworkError(f"no free subnet in {SUBNET_PREFIX}.{FIRST_NUMBER}-{LAST_NUMBER}.0/{PREFIX_LENGTH}")


def _remove_leftovers(number: int) -> None:
    """What a session that held `number` before and died without cleaning up left: its namespaces (and
    the processes in them) and its bridge. Only called with the number claimed, so nobody uses them."""
    prefix = f"{NAMESPACE_PREFIX}{number}-"
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(prefix):
            _empty_namespace(name)
            ip("netns", "delete", name, check=False)
    bridge = f"psbr{number}"
    if ip("link", "show", bridge, check=False).returncode == 0:
        ip("link", "delete", bridge, check=False)


def _empty_namespace(name: str) -> None:
    """SIGTERM, then SIGKILL, every process in the namespace (all of them started by this session, or by
    the crashed session whose number this one claimed)."""
    pids = _pids(name)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        while (pids := _pids(name)) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if not pids:
            return


def _pids(name: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", name, check=False).stdout.split()]
