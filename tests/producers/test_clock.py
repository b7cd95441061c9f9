"""The version clock never goes backwards and never repeats, whatever the wall clock does; filled
event ids never repeat, even across a fork."""

from __future__ import annotations

import os
import threading

from producers.clock import VersionClock
from producers.ids import PROCESS_IDS

SECOND_NS = 1_000_000_000


def test_versions_follow_the_wall_clock_in_microseconds() -> None:
    clock = VersionClock(now_ns=lambda: 1_700_000_000 * SECOND_NS)
    assert clock.next() == 1_700_000_000_000_000


def test_ties_and_clock_steps_backwards_still_give_greater_versions() -> None:
    readings = iter([5 * SECOND_NS, 5 * SECOND_NS, 4 * SECOND_NS, 6 * SECOND_NS])
    clock = VersionClock(now_ns=lambda: next(readings))
    assert [clock.next() for _ in range(4)] == [5_000_000, 5_000_001, 5_000_002, 6_000_000]


def test_threads_sharing_a_clock_never_get_the_same_version() -> None:
    clock = VersionClock(now_ns=lambda: SECOND_NS)
    versions: list[int] = []

    def take() -> None:
        versions.extend(clock.next() for _ in range(1000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(versions)) == 4000


def test_filled_event_ids_are_unique_within_a_process_and_across_a_fork() -> None:
    mine = {PROCESS_IDS.next() for _ in range(1000)}
    assert len(mine) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, PROCESS_IDS.next().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    assert child not in mine and child.rsplit("-", 1)[0] != next(iter(mine)).rsplit("-", 1)[0]
