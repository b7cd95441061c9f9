"""Logging of every pushsync process: readable text by default, one JSON object a line on demand.

`configure()` sends every record of the process through one handler that adds the log context
(the source or provider and the batch being worked on) and redacts secrets (`worker.redaction`)
before a text or JSON formatter writes the line. The `pushsync` command line calls it for its
in-process commands; Celery worker and beat processes call it from Celery's `setup_logging`
signal (`worker/app.py`), so `PUSHSYNC_LOG_FORMAT=json celery -A worker.app worker` logs JSON too.

In JSON, every field a record carries (`extra=` and the log context) is a field of its line:
push lines carry `source` (or `provider`), `batchId`, `fileId` and the counts they report. In
text, the context is shown in brackets after the logger's name and the message says the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from worker.redaction import RedactingFilter
from worker.settings import LogFormat

HANDLER_NAME = "pushsync"
"""Name of the handler `configure()` installs, so that configuring again replaces it."""
TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s%(context)s: %(message)s"
CONTEXT_FIELDS = ("source", "provider", "batchId")
"""Fields the text format shows beside the logger's name when a record has them."""
JSON_FIELDS = "{levelname}{processName}{name}{message}"
JSON_NAMES = {"levelname": "level", "processName": "process", "name": "logger", "exc_info": "exception",
              "stack_info": "stack"}
CELERY_NOTICES_LOGGER = "celery.apps.worker"
JSON_LEFT_OUT = [*RESERVED_ATTRS, "color_message"]
"""Record attributes that are no fields of a line: logging's own, and uvicorn's copy of the message in colour."""

_context: ContextVar[dict[str, Any]] = ContextVar("pushsync_log_context", default={})


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every record logged inside the block (in this thread or task)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the current log context on each record; fields given with `extra=` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            record.__dict__.setdefault(name, value)
        return True


# Line breaks and other control characters (C0 but tab, DEL, C1, Unicode's line and paragraph
# separators) in a message would let a value from outside (a hook name, a reason) write a line
# that looks like pushsync's own; the text format writes them as escapes.
_UNSAFE_IN_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_line(text: str) -> str:
    """`text` with every character that could break or forge a log line written as an escape (\\n, \\x1b, …)."""
    return _UNSAFE_IN_LINE.sub(lambda found: repr(found.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """`[time: LEVEL/process] logger [source=… batchId=…]: message`, then the traceback if any.

    The message and the context are one line each, whatever they hold (see `escape_line`).
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        shown = " ".join(f"{name}={record.__dict__[name]}" for name in CONTEXT_FIELDS if name in record.__dict__)
        fields = {**record.__dict__, "message": escape_line(record.message)}
        return TEXT_FORMAT % {**fields, "context": escape_line(f" [{shown}]") if shown else ""}


CELERY_TASK_LOGGERS = frozenset({"celery.worker.strategy", "celery.app.trace"})
"""Where Celery logs that a task was received and that it succeeded (its arguments name the task)."""
CELERY_BEAT_LOGGER = "celery.beat"


class RoutineFilter(logging.Filter):
    """Leaves out Celery's INFO lines about routine tasks: received, succeeded, and beat sending them.

    The sweep runs twice a second on every worker; its own lines say when it did something (a
    window claimed, a batch enqueued again), and its failures still show at WARNING and above.
    """

    def __init__(self, tasks: frozenset[str]) -> None:
        """tasks: the names of the routine tasks (`pushsync.sweep`)."""
        super().__init__()
        self.tasks = tasks

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        if record.name in CELERY_TASK_LOGGERS and isinstance(record.args, dict):
            return record.args.get("name") not in self.tasks
        if record.name == CELERY_BEAT_LOGGER and isinstance(record.args, tuple) and len(record.args) == 2:
            return record.args[1] not in self.tasks
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object a line: time, level, process, logger, message, every extra field, exception."""
    return JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_NAMES, reserved_attrs=JSON_LEFT_OUT, timestamp="time",
                         json_ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when each line is written: test runners swap it per command."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr


def configure(log_format: LogFormat, *, level: int | str = logging.INFO,
              handler: logging.Handler | None = None, routine_tasks: frozenset[str] = frozenset()) -> logging.Handler:
    """Log every record of this process at `level` or above through one redacting handler.

    log_format: text or JSON lines.
    level: the root logger's level.
    handler: where lines go (default: standard error); a handler configured before is replaced.
    routine_tasks: Celery tasks whose received/succeeded/sent lines are left out (see RoutineFilter).
    """
    handler = handler or StderrHandler()
    handler.name = HANDLER_NAME
    handler.setFormatter(json_formatter() if log_format is LogFormat.JSON else TextFormatter())
    if routine_tasks:
        handler.addFilter(RoutineFilter(routine_tasks))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(level)
    # A library's warnings (Celery's as root, kombu's deprecations) are log lines like any other.
    logging.captureWarnings(True)
    return handler


class Outage:
    """Says once that a service stopped answering and once that it answers again, however often
    it is tried in between: a loop that runs twice a second must not log twice a second."""

    def __init__(self, logger: logging.Logger, service: str, consequence: str) -> None:
        """
        logger: where the two lines go.
        service: what stopped answering, as in "the store (Redis)".
        consequence: what waits for it meanwhile, as in "sweeps wait for it".
        """
        self._logger = logger
        self._service = service
        self._consequence = consequence
        self._since: float | None = None

    def down(self, error: BaseException) -> None:
        """The service failed a call: a warning if it answered before."""
        if self._since is None:
            self._since = time.monotonic()
            self._logger.warning("%s does not answer (%s): %s", self._service, error, self._consequence)

    def up(self) -> None:
        """A call succeeded: a line if the service had stopped answering."""
        if self._since is not None:
            self._logger.warning("%s answers again, after %.0fs", self._service, time.monotonic() - self._since)
            self._since = None


def json_celery_notices() -> None:
    """Make the notices Celery's worker prints from its signal handlers ("Warm shutdown", "Hitting
    Ctrl+C again ...") JSON lines on standard error too.

    Celery writes them with a raw `os.write`, beyond logging's reach, because logging's locks are
    not safe inside a signal handler; formatting a record takes no lock, so this stays as safe."""
    import celery.apps.worker

    formatter = json_formatter()

    def say(message: str, stream: object = None) -> None:
        record = logging.LogRecord(CELERY_NOTICES_LOGGER, logging.WARNING, __file__, 0, message, None, None)
        os.write(sys.__stderr__.fileno(), (formatter.format(record) + "\n").encode())

    celery.apps.worker.safe_say = say
