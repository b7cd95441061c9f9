"""This test process logging through pushsync's real handler (worker.logs) into a file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.logs import HANDLER_NAME, configure
from worker.settings import LogFormat


@contextmanager
def logging_to(path: Path, log_format: LogFormat) -> Iterator[Path]:
    """Log in `log_format` into `path` for the block, then restore the root logger as it was."""
    root = logging.getLogger()
    level = root.level
    configure(log_format, handler=logging.FileHandler(path))
    try:
        yield path
    finally:
        for handler in [h for h in root.handlers if h.name == HANDLER_NAME]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
