"""When and how long the client waits before trying a failed call again.

Retryable failures (`PushApiError.retryable`: 429, 5xx, timeouts, connection errors) are tried
again with exponential backoff and full jitter; a `Retry-After` the service sent is a floor on
the wait. Everything stops before the next wait would end past the caller's time budget, and
the last error is raised as it is, so callers see the real class (e.g. `ThrottledError`).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_before_delay, wait_random_exponential

from worker.pushapi.errors import PushApiError, StatusError

log = logging.getLogger(__name__)

BACKOFF_MULTIPLIER_SECONDS = 0.5
"""Scale of the exponential backoff: the n-th wait is drawn from [0, 0.5 * 2**n)."""
BACKOFF_MAX_SECONDS = 30.0
"""Upper bound of one backoff draw, before `Retry-After` is applied."""

T = TypeVar("T")
RetryHook = Callable[[str, float, "float | None", "BaseException | None"], None]
"""Called before the wait that precedes a retry: the operation, the seconds it will wait, the
Retry-After the service asked for (None when it did not), and the error that is retried."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


class _WaitHonouringRetryAfter:
    """Full-jitter exponential backoff, never shorter than what the service asked for."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=BACKOFF_MULTIPLIER_SECONDS, max=BACKOFF_MAX_SECONDS)

    def __call__(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, StatusError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, PushApiError) and error.retryable


def _before_retry(hooks: Sequence[RetryHook]) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        for hook in hooks:
            retry_after = error.retry_after if isinstance(error, StatusError) else None
            hook(getattr(error, "operation", ""), wait, retry_after, error)
        _log_retry(state.attempt_number, wait, error)

    return before_sleep


def _log_retry(attempt: int, wait: float, error: BaseException | None) -> None:
    fields = error.log_fields() if isinstance(error, PushApiError) else {}
    log.warning("push api call failed (attempt %d), retrying in %.2fs: %s", attempt, wait, error,
                extra={"attempt": attempt, "waitSeconds": round(wait, 3), **fields})


def call_with_retries(
    fn: Callable[[], T],
    *,
    budget_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Sequence[RetryHook] = (),
) -> T:
    """Run `fn` until it succeeds, fails for good, or the next wait would overrun the budget.

    budget_seconds: total seconds the retries may span, waits included.
    sleep: how to wait (tests may count the waits).
    on_retry: hooks told of each retry before its wait.
    """
    retrying = Retrying(
        retry=retry_if_exception(_is_retryable),
        wait=_WaitHonouringRetryAfter(),
        stop=stop_before_delay(budget_seconds),
        before_sleep=_before_retry(on_retry),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
