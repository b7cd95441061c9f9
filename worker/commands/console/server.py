"""The console's HTTP server: its routes, the token every action needs, and the Host it answers to.

Reading needs no token. Every POST (a replay or a purge) needs the console's token, in the form's
`token` field or the `X-Pushsync-Token` header: without the right one the answer is 403 and nothing
changes. A page of another site cannot forge an action, since the token is in no cookie and in no
page (the operator brings it), and cannot read the console through a DNS name rebound to this
host either: a console on a loopback address answers only to requests that name it (`Host`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import kombu.exceptions
from celery import Celery

from producers.errors import PublishError
from worker.commands.console import pages
from worker.commands.output import counted
from worker.deadletter.operator import BrowseBusy, DeadLetterBrowser
from worker.ingest import quarantine
from worker.ingest.quarantine_replay import replay as replay_quarantined
from worker.observe import overview, probes, throughput
from worker.settings import Settings
from worker.store import keys
from worker.store.connection import store_url
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Pushsync-Token"
HTML = "text/html"
REQUEST_SECONDS = 10.0
"""Longest a connection may stay silent while the console waits for a request or its form."""
FORM_MAX_BYTES = 4096
"""Largest action form read: a token and a confirmation."""
QUARANTINE_SHOWN = 500
"""Quarantine entries listed on its page, oldest first (the CLI lists them all)."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
"""Names a console bound to a loopback address answers to (with its port)."""
SECURITY_HEADERS = {
    # Scripts only from the console itself: markup that slipped through escaping would not run.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ENTRY = re.compile(r"^(?P<page>/dead-letters|/quarantine)/(?P<id>[^/]+)(?:/(?P<verb>replay|purge))?$")
DOWN = (probes.Unreachable, *STORE_ERRORS, kombu.exceptions.OperationalError, PublishError, BrowseBusy)
"""What a store or broker that does not answer (or another browse that keeps the queue) raises on
the way: a 503, nothing changed."""


class Refused(Exception):
    """The request is answered with `code` and the message, and nothing changed."""

    def __init__(self, code: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Console:
    """What the pages read and what their actions change, over one pipeline's store and broker."""

    def __init__(self, app: Celery, settings: Settings, token: str) -> None:
        """
        app: the Celery app, whose remote control finds the workers.
        token: what every action must bring.
        """
        self.app = app
        self.settings = settings
        self.token = token
        self.store_url = store_url(settings)
        self.broker_url = settings.broker_url or self.store_url
        self.store = probes.store_client(self.store_url)
        self.dead_letters = DeadLetterBrowser(self.broker_url, self.store)

    def overview(self) -> str:
        seen = overview.gather(self.app, self.settings)
        targets = [keys.Target(row.kind, row.id) for row in [*seen.sources, *seen.providers]]
        try:
            return pages.overview(seen, throughput.last_hour(self.settings, targets), None)
        except probes.Unreachable as exc:
            return pages.overview(seen, None, str(exc))

    def dead_letter_list(self) -> str:
        # The browser takes turns with every other browse of the queue (its store lock).
        with self._broker():
            return pages.dead_letters(self.dead_letters.list())

    def dead_letter(self, entry_id: str) -> str:
        with self._broker():
            entry = self.dead_letters.show(entry_id)
        return pages.dead_letter(_found(entry, "dead-letter", entry_id))

    def replay_dead_letter(self, entry_id: str) -> str:
        with self._broker():
            (entry,) = _found(self.dead_letters.replay(entry_ids={entry_id}), "dead-letter", entry_id)
        return pages.done(pages.DEAD_LETTERS, "Replayed", [
            f"{entry_id}: {counted(len(entry.events), 'event')} published back to pushsync.events"])

    def purge_dead_letter(self, entry_id: str) -> str:
        with self._broker():
            _found(self.dead_letters.purge(entry_ids={entry_id}), "dead-letter", entry_id)
        return pages.done(pages.DEAD_LETTERS, "Purged", [f"{entry_id}: deleted for good"])

    def quarantine_list(self) -> str:
        return pages.quarantined(quarantine.list_entries(self.store, limit=QUARANTINE_SHOWN),
                                 quarantine.count(self.store))

    def quarantine_entry(self, entry_id: str) -> str:
        return pages.quarantine_entry(_found(quarantine.show(self.store, entry_id), "quarantine", entry_id))

    def replay_quarantined(self, entry_id: str) -> str:
        with self._broker():
            results = list(replay_quarantined(self.store, self.broker_url, [entry_id]))
        return pages.done(pages.QUARANTINE, "Replayed", pages.replayed_quarantine(results))

    def purge_quarantined(self, entry_id: str) -> str:
        _found(quarantine.purge(self.store, [entry_id]), "quarantine", entry_id)
        return pages.done(pages.QUARANTINE, "Purged", [f"{entry_id}: deleted for good"])

    @contextmanager
    def _broker(self) -> Iterator[None]:
        """Run the block once the broker answers (`probes.Unreachable` at once if not): the queue's and the
        publisher's own connections would keep retrying."""
        with probes.open_broker(self.broker_url):
            pass
        yield


Found = TypeVar("Found")


def _found(found: Found, kind: str, entry_id: str) -> Found:
    """`found` (an entry, or what an action did to it) unless it is empty: then a 404 naming the entry."""
    if not found:
        raise Refused(HTTPStatus.NOT_FOUND, f"no {kind} entry {entry_id}")
    return found


class Handler(BaseHTTPRequestHandler):
    """One request: the Host checked, a POST's token checked, then the page or the action of its route."""

    server: ConsoleServer
    timeout = REQUEST_SECONDS  # a client that stops sending holds its thread no longer than this

    def do_GET(self) -> None:
        self._answer(self._page)

    def do_POST(self) -> None:
        self._answer(self._action)

    def _page(self) -> tuple[str, str]:
        console, path = self.server.console, urlsplit(self.path).path
        if path == pages.SCRIPT:
            return "text/javascript", pages.SCRIPT_TEXT
        listed: dict[str, Callable[[], str]] = {
            pages.OVERVIEW: console.overview, pages.DEAD_LETTERS: console.dead_letter_list,
            pages.QUARANTINE: console.quarantine_list}
        shown: dict[str, Callable[[str], str]] = {
            pages.DEAD_LETTERS: console.dead_letter, pages.QUARANTINE: console.quarantine_entry}
        if path in listed:
            return HTML, listed[path]()
        route = ENTRY.match(path)
        if route is None or route["verb"]:
            raise Refused(HTTPStatus.NOT_FOUND, f"no page {path}")
        return HTML, shown[route["page"]](unquote(route["id"]))

    def _action(self) -> tuple[str, str]:
        console, path = self.server.console, urlsplit(self.path).path
        form = self._form()
        token = form.get(pages.TOKEN_FIELD) or self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), console.token.encode()):
            raise Refused(HTTPStatus.FORBIDDEN, "refused, nothing changed: this needs the console's token, the one "
                                                "PUSHSYNC_CONSOLE_TOKEN sets or `pushsync console` printed at start")
        route = ENTRY.match(path)
        if route is None or not route["verb"]:
            raise Refused(HTTPStatus.NOT_FOUND, f"no action {path}")
        page, entry_id, verb = route["page"], unquote(route["id"]), route["verb"]
        if verb == "purge" and form.get(pages.CONFIRM_FIELD) != "yes":
            what = "dead-letter entry" if page == pages.DEAD_LETTERS else "quarantine entry"
            return HTML, pages.confirm_purge(page, entry_id, what)
        actions: dict[tuple[str, str], Callable[[str], str]] = {
            (pages.DEAD_LETTERS, "replay"): console.replay_dead_letter,
            (pages.DEAD_LETTERS, "purge"): console.purge_dead_letter,
            (pages.QUARANTINE, "replay"): console.replay_quarantined,
            (pages.QUARANTINE, "purge"): console.purge_quarantined}
        return HTML, actions[page, verb](entry_id)

    def _form(self) -> dict[str, str]:
        """The urlencoded form of the request (each field's first value)."""
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit() or not declared.isascii():
            raise Refused(HTTPStatus.BAD_REQUEST, "Content-Length must be a number of bytes")
        length = int(declared)
        if length > FORM_MAX_BYTES:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"an action's form takes at most {FORM_MAX_BYTES} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise Refused(HTTPStatus.REQUEST_TIMEOUT, f"the form did not arrive within {REQUEST_SECONDS:g} s") from None
        fields = parse_qs(body.decode("utf-8", "replace"))
        return {name: values[0] for name, values in fields.items()}

    def _answer(self, respond: Callable[[], tuple[str, str]]) -> None:
        allowed = self.server.allowed_hosts
        try:
            if allowed is not None and self.headers.get("Host") not in allowed:
                raise Refused(HTTPStatus.FORBIDDEN, "this console answers only to "
                                                    + " or ".join(f"http://{host}/" for host in sorted(allowed)))
            content_type, body = respond()
            code = HTTPStatus.OK
        except Refused as exc:
            code, content_type, body = exc.code, HTML, pages.failure(exc.code, str(exc))
        except DOWN as exc:
            code, content_type = HTTPStatus.SERVICE_UNAVAILABLE, HTML
            body = pages.failure(code, f"nothing changed: {exc}")
        except Exception:
            log.exception("console: %s %s failed", self.command, self.path)
            code, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, HTML
            body = pages.failure(code, "the console failed: its log says why; nothing was changed that it did not say")
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address to listen on) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_host(host: str) -> str:
    """`host` as a Host header writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


class ConsoleServer(ThreadingHTTPServer):
    """The console listening on one address."""

    daemon_threads = True

    def __init__(self, console: Console, host: str, port: int) -> None:
        """
        host, port: where to listen (port 0: any free one).
        """
        super().__init__((host, port), Handler)
        self.console = console
        bound = self.server_address[1]
        self.allowed_hosts: frozenset[str] | None = (
            frozenset(f"{name}:{bound}" for name in {*LOOPBACK_NAMES, _as_host(host)}) if _is_loopback(host) else None)
        """Host headers answered; None: any (a console bound elsewhere is reached by names it cannot know)."""
