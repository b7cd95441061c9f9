"""Full rebuilds: push a complete export, then delete what the source system no longer has.

The same run serves a Push source (items; `olderthan` deletes) and a security provider
(identities; `olderthan` disables, and there is no status bracket). A run (one at a time per
target):
1. records its start as the `orderingId` of its final delete (epoch ms, never ahead of this
   clock) and sends REBUILD, holding the source's burst open until the run ends;
2. feeds the export into the source's window through the same coalescing as change events, so
   newest-version-wins and high-water marks apply to rebuild items too, and a change event that
   arrives during the run is never overwritten by older export content; workers push the
   windows in batches up to the container limit, one in flight at a time. While the run feeds,
   its window stays open past its time until it holds what fills about one container
   (`Run.window_bytes`, see `worker/runs/packing.py`): a rebuild then takes as few containers as
   its size needs, and change events of the source wait for the window with it;
3. waits until every batch holding the export was finished;
4. only if none was dead-lettered, and the run would not delete more than the allowed share of
   what the previous run pushed, calls `olderthan` with the start and a `queueDelay`;
5. lets the burst close: IDLE follows once the source is quiet.

An export item older than what was pushed for it already is skipped, so the run does not touch
it; if that push came before the run started, the delete's cut-off moves back before that push
(minus a clock margin), so the item is never deleted although the export has it. Progress
(lines fed) is recorded, so a crashed run resumes without feeding again what it fed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from worker.push import pause, prerequisites
from worker.push.brackets import StatusBrackets
from worker.pushapi.client import PushApiClient
from worker.settings import Settings
from worker.store import keys
from worker.windows.coalesce import Coalescer, KeyedEvent
from worker.windows.holds import FEEDING

log = logging.getLogger(__name__)

FEED_CHUNK_EVENTS = 500
"""Export events written to the window per round trip (and per progress record)."""
CLOCK_MARGIN_MS = 5 * 60 * 1000
"""How far the service's clock may be ahead of ours when it stamped an earlier push."""
POLL_SECONDS = 0.2


class RebuildError(Exception):
    """The run cannot go on, or must not delete; the message says why."""


@dataclass
class Run:
    """One rebuild run of one source or provider."""

    target: keys.Target
    id: str
    start_ms: int
    """orderingId of the final delete: items not touched since are removed."""
    lines_done: int = 0
    """Export lines fed so far, valid or skipped (a resumed run skips this many)."""
    fed: int = 0
    """Export items fed so far."""
    cutoff_ms: int | None = None
    """An earlier cut-off than `start_ms`, when export items were skipped as already pushed."""
    dead_letters_at_start: int = 0
    seq: int | None = None
    """The source's last buffered event when the run began finishing: what must be pushed first."""
    window_bytes: int = 0
    """While the run feeds, its window is held open until it holds this many event bytes (0: not held)."""

    @property
    def ordering_id(self) -> int:
        return min(self.start_ms, self.cutoff_ms) if self.cutoff_ms else self.start_ms


@dataclass
class RunOutcome:
    """How a finished run ended."""

    deleted: bool
    reason: str
    items: int
    ordering_id: int


class Rebuilds:
    """Starts, feeds and finishes rebuild runs."""

    def __init__(self, client: redis.Redis, api: PushApiClient, settings: Settings) -> None:
        """
        client: the coalescing store.
        api: the Push API client (status and delete calls).
        settings: window limits, delete-share guard.
        """
        self.client = client
        self.api = api
        self.settings = settings
        self.coalescer = Coalescer(client, settings)
        self.brackets = StatusBrackets(client, api, settings)

    def start(self, target: keys.Target, run_id: str | None = None, start_ms: int | None = None) -> Run:
        """Begin a new run; refuses while another run of `target` is unfinished.

        run_id: the run's id when its producer chose one (else a new one).
        start_ms: the delete's cut-off when it is earlier than now (epoch ms).
        """
        current = self.client.hget(target.rebuild, "id")
        if current:
            raise RebuildError(f"run {current.decode()} of {target.id} is unfinished: resume it with --resume")
        now_ms = int(time.time() * 1000)
        run = Run(target, run_id or uuid.uuid4().hex[:12], min(start_ms or now_ms, now_ms),
                  dead_letters_at_start=int(self.client.hget(target.stats, "dead_lettered") or 0))
        if target.kind == keys.SOURCE:
            self.brackets.begin_rebuild(target, run.id)
        self._save(run)
        log.info("full run %s of %s started at orderingId %d", run.id, target.ref, run.start_ms)
        return run

    def resume(self, target: keys.Target, run_id: str) -> Run:
        """The unfinished run `run_id` of `target`, as far as it got."""
        stored = {k.decode(): v.decode() for k, v in self.client.hgetall(target.rebuild).items()}
        if stored.get("id") != run_id:
            raise RebuildError(f"no unfinished run {run_id} of {target.id}"
                               + (f" (the unfinished one is {stored['id']})" if stored.get("id") else ""))
        return Run(target, run_id, int(stored["start_ms"]), int(stored["lines_done"]), int(stored["fed"]),
                   int(stored["cutoff_ms"]) if stored.get("cutoff_ms") else None, int(stored["dead_letters_at_start"]),
                   int(stored["seq"]) if stored.get("seq") else None, int(stored.get("window_bytes", 0)))

    def feed(self, run: Run, entries: Iterable[tuple[int, KeyedEvent]], last_line: int,
             progress: Callable[[int], None]) -> None:
        """Write export events into the run's window, recording progress after each chunk.

        entries: (line number, validated event as coalesce.lua takes it) of each export event, in order.
        last_line: the export's last line: every line is done once the entries are.
        progress: called with how many lines each chunk covered.
        """
        chunk: list[KeyedEvent] = []
        for number, entry in entries:
            if number <= run.lines_done:
                continue
            chunk.append(entry)
            if len(chunk) >= FEED_CHUNK_EVENTS:
                self._feed_chunk(run, chunk, number, progress)
                chunk = []
        self._feed_chunk(run, chunk, max(last_line, run.lines_done), progress)

    def _feed_chunk(self, run: Run, chunk: list[KeyedEvent], last_line: int, progress: Callable[[int], None]) -> None:
        self._wait_for_room(run)
        if chunk:
            self.stale_before(run, self.coalescer.add_encoded(run.target, chunk).oldest_stale_push_ms)
        progress(last_line - run.lines_done)
        run.fed += len(chunk)
        run.lines_done = last_line
        self._save(run)

    @staticmethod
    def stale_before(run: Run, pushed_ms: int | None) -> None:
        """Move the run's cut-off before `pushed_ms`, the push (epoch ms) that made one of its items stale.

        That item keeps the orderingId of that push: a cut-off after it would delete an item the export has.
        """
        if pushed_ms is not None and pushed_ms - CLOCK_MARGIN_MS < run.ordering_id:
            run.cutoff_ms = pushed_ms - CLOCK_MARGIN_MS

    def _wait_for_room(self, run: Run) -> None:
        """Back-pressure: do not pile more than a full window on a source that is still pushing."""
        limit = run.window_bytes or self.settings.window_max_bytes
        while int(self.client.hget(run.target.window_meta, "bytes") or 0) >= limit:
            time.sleep(POLL_SECONDS)

    def finish(self, run: Run, *, queue_delay: int, max_delete_share: float, timeout: float) -> RunOutcome:
        """Wait until the export is pushed, then delete what it no longer has, if it is safe to."""
        self.begin_finishing(run)
        deadline = time.monotonic() + timeout
        while not self.pushed(run):
            if time.monotonic() > deadline:
                raise RebuildError(f"the export was not pushed within {timeout:.0f}s{self._pause_note(run.target)}; "
                                   f"nothing deleted: resume with --resume {run.id}")
            time.sleep(POLL_SECONDS)
        return self.conclude(run, queue_delay=queue_delay, max_delete_share=max_delete_share)

    def begin_finishing(self, run: Run) -> None:
        """Note what must be pushed before the run may delete (everything buffered by now), and hasten it."""
        if run.seq is None:
            run.seq = int(self.client.hget(run.target.stats, "buffered_seq") or 0)
        self._save(run, state="finishing")
        prerequisites.hasten(self.client, [run.target])

    def pushed(self, run: Run) -> bool:
        """Whether every batch holding the run's events was finished (pushed or dead-lettered)."""
        return int(self.client.hget(run.target.stats, "finished_seq") or 0) >= (run.seq or 0)

    def conclude(self, run: Run, *, queue_delay: int, max_delete_share: float, refusal: str = "") -> RunOutcome:
        """Delete what the run did not push, unless `refusal` or a guard says why not; end the run."""
        target = run.target
        reason = refusal or self._refusal(run, max_delete_share)
        if reason:
            return self._end(run, False, reason)
        if target.kind == keys.SOURCE:
            self.api.delete_documents_older_than(target.id, run.ordering_id, queue_delay=queue_delay)
            what = "items last touched before orderingId {} are deleted"
        else:
            self.api.disable_identities_older_than(target.id, run.ordering_id, queue_delay=queue_delay)
            what = "identities last touched before orderingId {} are disabled"
        self.client.hset(target.rebuild_last, mapping={"items": run.fed, "run": run.id})
        return self._end(run, True, what.format(run.ordering_id) + f" after {queue_delay} minute(s)")

    def _refusal(self, run: Run, max_delete_share: float) -> str:
        """Why the run must not delete, or an empty string."""
        dead = int(self.client.hget(run.target.stats, "dead_lettered") or 0) - run.dead_letters_at_start
        if dead:
            return f"{dead} change(s) of {run.target.id} were dead-lettered during the run; nothing deleted"
        previous = int(self.client.hget(run.target.rebuild_last, "items") or 0)
        if previous and (previous - run.fed) / previous > max_delete_share:
            return (f"the run pushed {run.fed} item(s) where the last one pushed {previous}: deleting the rest "
                    f"would remove more than {max_delete_share:.0%} of them; nothing deleted")
        return ""

    def _pause_note(self, target: keys.Target) -> str:
        paused = pause.describe(self.client, target)
        return f" (pushing is paused: {paused['reason']})" if paused else ""

    def _end(self, run: Run, deleted: bool, reason: str) -> RunOutcome:
        self.client.delete(run.target.rebuild)
        if run.target.kind == keys.SOURCE:
            self.brackets.end_rebuild(run.target)
        log.log(logging.INFO if deleted else logging.ERROR, "full run %s of %s: %s", run.id, run.target.ref, reason)
        return RunOutcome(deleted, reason, run.fed, run.ordering_id)

    def _save(self, run: Run, state: str = FEEDING) -> None:
        record = {"id": run.id, "start_ms": run.start_ms, "lines_done": run.lines_done, "fed": run.fed,
                  "dead_letters_at_start": run.dead_letters_at_start, "state": state,
                  "window_bytes": run.window_bytes, "saved_at": repr(time.time())}
        if run.cutoff_ms is not None:
            record["cutoff_ms"] = run.cutoff_ms
        if run.seq is not None:
            record["seq"] = run.seq
        self.client.hset(run.target.rebuild, mapping=record)
