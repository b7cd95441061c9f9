"""The pipeline's lifecycle as one list of hooks: what each stage reports, for whoever listens.

A stage calls `emit("after_push", ...)` where the thing has happened; it never imports who
listens. Parts above the stages (the metrics, in `worker.observe`) subclass `Listener` and
`subscribe` once per process, at start-up (`worker.runtime`). This keeps every import pointing
down the flow: the stages know this module, not the observers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.store.keys import Target


class Listener:
    """What a part may want to know of the pipeline; each hook does nothing unless overridden.

    A hook runs in the stage's own process and thread, after the stage's writes are safe: what
    it raises reaches the stage, so a listener keeps its hooks cheap and its errors its own.
    """

    def after_ingest(self, target: Target, *, received: int, superseded: int, stale: int) -> None:
        """A group of one target's events is in Redis.

        received: events of the group.
        superseded: events that will not be pushed because the window holds a newer version of
            their item, plus the older versions they replaced in it.
        stale: events dropped as not newer than what was already pushed for their item.
        """

    def after_quarantine(self, cause: str, count: int) -> None:
        """`count` events or messages are in quarantine for `cause` (one of `quarantine.CAUSES`)."""

    def after_flush(self, target: Target) -> None:
        """A window of `target` was claimed as a batch."""

    def after_push(self, target: Target, counts: Mapping[str, int], size: int, push_seconds: float,
                   opened_at: float | None) -> None:
        """The service accepted a batch of `target`.

        counts: operations sent, by batch-file section.
        size: bytes of its batch files.
        push_seconds: how long pushing it took.
        opened_at: when its oldest event entered the window (epoch seconds), if the batch says.
        """

    def after_dead_letter(self, target: Target, events: int) -> None:
        """The broker confirmed `events` of `target` in the dead-letter queue."""


HOOKS = frozenset(name for name in vars(Listener) if name.startswith("after_"))
"""The names a stage may emit."""

_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Call `listener`'s hooks from now on in this process (and in processes forked from it)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling `listener`'s hooks."""
    if listener in _listeners:
        _listeners.remove(listener)


def subscribed() -> tuple[Listener, ...]:
    """The listeners whose hooks are called, in subscription order."""
    return tuple(_listeners)


def emit(hook: str, *args: Any, **kwargs: Any) -> None:
    """Call `hook` (one of `HOOKS`) on every subscribed listener, in subscription order."""
    if hook not in HOOKS:
        raise ValueError(f"unknown hook {hook!r}: expected one of {', '.join(sorted(HOOKS))}")
    for listener in _listeners:
        getattr(listener, hook)(*args, **kwargs)
