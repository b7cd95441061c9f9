"""Beat's scheduler: Celery's in-memory one, for exactly one beat at a time.

Before it schedules anything, beat takes the beat lock in the store (`worker.store.beat_lock`)
and renews it at every tick. A second beat started while the first lives finds the lock held,
says by whom on one line and exits with `ANOTHER_BEAT`; so does a beat that finds its lock taken
over (it was frozen, or cut off from the store, for longer than the lock lives). With the store
down, beat schedules on and takes the lock once the store answers: sweeps do nothing without a
store anyway, and a beat never stops for an outage.

The schedule itself stays in memory (no file where beat was started): a sweep every fraction of
a second is nothing worth keeping across restarts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import Scheduler

from worker.settings import load_settings
from worker.store import beat_lock
from worker.store.connection import connect
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)

ANOTHER_BEAT = 6
"""Exit status of a beat that found another one holding the beat lock."""
START_MARGIN_SECONDS = 1.0
"""How much longer than the lock lives a starting beat waits for a predecessor's lock to lapse."""
START_POLL_SECONDS = 0.25


class OneBeat(Scheduler):
    """Celery's scheduler, run only while this process holds the beat lock."""

    def setup_schedule(self) -> None:
        settings = load_settings()
        lock_seconds = beat_lock.lock_seconds(settings.sweep_seconds)
        self.lock = beat_lock.BeatLock(connect(settings), lock_seconds)
        self.refused = False
        self.store_down = False
        # A beat restarted at once after a kill finds its predecessor's lock until it lapses: it
        # waits that long before it calls the holder another beat. Celery calls this before its
        # loop, where SystemExit still ends the process with its status.
        deadline = time.monotonic() + lock_seconds + START_MARGIN_SECONDS
        while not self._hold(final=time.monotonic() >= deadline):
            time.sleep(START_POLL_SECONDS)
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._hold()
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.refused:
                # Celery's loop takes SystemExit for an ordinary stop and exits 0; raised again from
                # here, which it calls once the loop is over, the status gets through.
                raise SystemExit(ANOTHER_BEAT)
            try:
                self.lock.release()
            except STORE_ERRORS as exc:
                log.warning("could not drop the beat lock (it lapses by itself): %s", exc)

    def _hold(self, final: bool = True) -> bool:
        """Take or renew the beat lock; True when held (or the store is down). Another beat holding
        it stops this one, unless not `final` (False is returned then, to try again)."""
        try:
            other = self.lock.hold()
        except STORE_ERRORS as exc:
            if not self.store_down:
                log.warning("cannot take the beat lock, the store does not answer: %s; scheduling on, "
                            "and taking it once the store answers", exc)
            self.store_down = True
            return True
        if self.store_down:
            log.info("the store answers again: this beat holds the beat lock")
        self.store_down = False
        if other is None:
            return True
        if not final:
            return False
        self.refused = True
        log.critical("another beat is running: %s holds the beat lock; exactly one beat may run, so this one "
                     "(%s) exits", other.describe(), self.lock.me.describe())
        raise SystemExit(ANOTHER_BEAT)

