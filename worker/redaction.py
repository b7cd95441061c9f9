"""Secrets kept out of everything pushsync writes: log lines, exceptions, dead-letter entries.

Each process registers the secrets it holds when it reads them: `load_settings()` the API key and
the passwords inside the Redis and broker URLs, a Push API client its key, the webhook receiver
its shared secrets and tokens. `redact()` replaces every registered secret, the password of any
`scheme://user:password@` URL and any `Bearer` token with `[redacted]`. `RedactingFilter` applies
it to each record a logging handler writes: the message with its arguments, the traceback, the
stack and every extra field.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from producers import redis_urls
from producers.broker import split_urls

MASK = "[redacted]"
MIN_SECRET_CHARS = 4
"""Shorter values are not hidden as free text, which would garble every word holding them; a
short URL password is still masked by its place in the URL."""
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s/@]+)(@)", re.IGNORECASE)
_KOMBU_MASKED = re.compile(r"(\b[a-z][a-z0-9+.-]*://):\*\*@([^\s/@]+)", re.IGNORECASE)
"""kombu's rendering of a URL with no user: it masks the password even when there is none."""
_BEARER = re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.IGNORECASE)
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
"""What every log record has; anything else on a record came from `extra=`."""
_TRACEBACKS = logging.Formatter()


class Secrets:
    """The secret values one process holds, and the one pattern that finds them all."""

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._open_hosts: frozenset[str] = frozenset()
        """host:port of registered URLs that carry no password: kombu's `:**@` before one hides nothing."""
        self._lock = threading.Lock()

    def register(self, *values: str | None) -> None:
        """Hide each of `values` from now on (empty and too short ones are ignored)."""
        new = {value for value in values if value and len(value) >= MIN_SECRET_CHARS} - self._values
        if not new:
            return
        with self._lock:
            self._values |= new
            # Longest first, so a secret that contains another is hidden whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def register_url(self, url: str | None) -> None:
        """Hide the password of `url`, or of each URL of a broker's failover list (`a;b`), as written
        in it, and decoded.

        A password that is the user name too (RabbitMQ's `guest:guest`) hides nothing the user
        name does not show: it is masked where it stands in a URL, not as free text, so that the
        user name stays readable in every message.
        """
        for one in split_urls(url or ""):
            self._register_one_url(one)

    def _register_one_url(self, url: str) -> None:
        scheme = url.partition("://")[0].strip().lower()
        if scheme in (*redis_urls.SENTINEL_SCHEMES, *redis_urls.CLUSTER_SCHEMES):
            # Read as redis_urls reads them (urlsplit ends the password at a `#`, or fails on a `[`).
            try:
                target = redis_urls.parse(url)
            except ValueError:
                return  # refused by the settings before it gets here
            if target.password:
                if target.password != target.username:
                    self.register(target.password, target.written_password)
                return
        try:
            parts = urlsplit(url) if url else None
        except ValueError:
            return  # refused by the settings before it gets here
        if parts is not None and parts.password and parts.password != parts.username:
            self.register(parts.password, unquote(parts.password))
        elif parts is not None and not parts.password and parts.netloc:
            with self._lock:
                self._open_hosts |= {parts.netloc.rpartition("@")[2]}

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by `[redacted]`."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        if self._open_hosts:
            text = _KOMBU_MASKED.sub(self._unmask_open, text)
        text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
        return _BEARER.sub(rf"\g<1>{MASK}", text)

    def _unmask_open(self, match: re.Match[str]) -> str:
        return match.group(1) + match.group(2) if match.group(2) in self._open_hosts else match.group(0)

    def redact_value(self, value: Any) -> Any:
        """A structured value (extra log fields) with every string in it redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Mapping):
            return {self.redact(key) if isinstance(key, str) else key: self.redact_value(item)
                    for key, item in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.redact_value(item) for item in value]
        return self.redact(str(value))


SECRETS = Secrets()
"""This process's secrets."""
register = SECRETS.register
register_url = SECRETS.register_url
redact = SECRETS.redact


class RedactingFilter(logging.Filter):
    """Rewrites each record a handler is about to write so that it holds no registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(_message(record))
        record.args = None
        if record.exc_info:
            # The traceback is rendered here, redacted, and kept as text only: formatters
            # (the JSON one too) render exc_info afresh, which would bring the secret back.
            record.exc_text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS:
                setattr(record, name, SECRETS.redact_value(value))
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not stop the line, nor leak its arguments
        return f"{record.msg} (arguments that do not fit the message: {record.args!r})"
