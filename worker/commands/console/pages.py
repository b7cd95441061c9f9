"""The console's pages as HTML: every value shown goes through `escape` (ids, reasons and error
texts come from outside, and may hold markup)."""

from __future__ import annotations

import dataclasses
import json
from html import escape
from http import HTTPStatus
from urllib.parse import quote

from worker.commands import status
from worker.commands.console import chart
from worker.commands.output import age, counted, iso, shorten, when
from worker.deadletter.queue import DEAD_LETTER_QUEUE, DeadLetter
from worker.ingest.quarantine import QuarantineEntry
from worker.ingest.quarantine_replay import ReplayResult
from worker.observe.overview import Overview, TargetRow
from worker.store.minutes import Minute

OVERVIEW, DEAD_LETTERS, QUARANTINE = "/", "/dead-letters", "/quarantine"
"""The pages listed in the navigation bar."""
SCRIPT = "/console.js"
TOKEN_FIELD = "token"
CONFIRM_FIELD = "confirm"
"""Form fields of an action: the console's token, and (purges) that the operator confirmed."""
REFRESH_SECONDS = 5
"""How often the overview reloads itself."""
MESSAGE_CHARS = 100
"""Characters of an error or reason shown in a list; the entry's own page shows it whole."""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; }
header { background: #24292f; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
header a { color: #fff; text-decoration: none; } header a.here { font-weight: bold; text-decoration: underline; }
header label { margin-left: auto; }
main { padding: 8px 16px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #d0d7de; padding: 3px 8px;
  text-align: left; vertical-align: top; } th { background: #f6f8fa; }
td.text { max-width: 40em; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.bad { color: #cf222e; } .ok { color: #1a7f37; } .key { margin-right: 12px; }
.chart text { font-size: 10px; fill: #57606a; }
form.inline { display: inline; } button { cursor: pointer; } button.danger { color: #cf222e; }
"""

SCRIPT_TEXT = """\
// The token stays in this tab (sessionStorage): from the address's #token=... or typed into the box,
// and goes into each action's form as it is sent; the address loses it at once, so it is not bookmarked.
(function () {
  var KEY = "pushsync-console-token";
  var found = /[#&]token=([^&]+)/.exec(location.hash);
  if (found) {
    sessionStorage.setItem(KEY, decodeURIComponent(found[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  var box = document.getElementById("token");
  box.value = sessionStorage.getItem(KEY) || "";
  box.addEventListener("input", function () { sessionStorage.setItem(KEY, box.value); });
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () { form.elements.token.value = box.value; });
  });
})();
"""


def layout(title: str, body: str, *, here: str = "", refresh: bool = False) -> str:
    """A whole page: `title`, the navigation (`here`: the page it marks), the token box, `body` (HTML)."""
    links = "".join(f'<a href="{path}"{" class=here" if path == here else ""}>{name}</a>'
                    for path, name in ((OVERVIEW, "Overview"), (DEAD_LETTERS, "Dead letters"),
                                       (QUARANTINE, "Quarantine")))
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)} · pushsync'
            f"</title><style>{STYLE}</style></head><body><header><strong>pushsync console</strong>{links}"
            f'<label>token <input id="token" type="password" autocomplete="off" size="24"></label></header>'
            f"<main><h1>{escape(title)}</h1>{body}</main><script src=\"{SCRIPT}\"></script></body></html>")


def action(path: str, label: str, *, danger: bool = False, confirmed: bool = False) -> str:
    """A button that POSTs to `path` with the token (filled in by the script); `confirmed`: says the
    operator confirmed (a purge asks first)."""
    confirm = f'<input type="hidden" name="{CONFIRM_FIELD}" value="yes">' if confirmed else ""
    return (f'<form class="inline" method="post" action="{escape(path)}">'
            f'<input type="hidden" name="{TOKEN_FIELD}" value="">{confirm}'
            f'<button type="submit"{" class=danger" if danger else ""}>{escape(label)}</button></form>')


def entry_path(page: str, entry_id: str, verb: str = "") -> str:
    """The page of one entry (or its action `verb`) under `page` (DEAD_LETTERS or QUARANTINE)."""
    return f"{page}/{quote(entry_id, safe='')}" + (f"/{verb}" if verb else "")


def overview(seen: Overview, minutes: dict[str, list[Minute]] | None, minutes_error: str | None) -> str:
    """Services, processes, each source and provider, and their last hour per minute."""
    rows = [("store", seen.store.error or f"{seen.store.url} ok", bool(seen.store.error)),
            ("broker", seen.broker.error or f"{seen.broker.url} ok", bool(seen.broker.error)),
            ("queues", ", ".join(f"{name} {count}" for name, count in seen.queues.items()) or "-", False),
            ("workers", _workers(seen), not seen.workers),
            ("beat", status.beat_state(seen), not (seen.beat and seen.beat.alive)),
            ("quarantine", "-" if seen.quarantined is None else counted(seen.quarantined, "entry", "entries"), False)]
    queued = seen.queues.get(DEAD_LETTER_QUEUE)
    if not seen.store.error and queued is not None and queued != seen.dead_letters_indexed:
        rows.append(("note", (f"the dead-letter queue holds {queued} entries and the per-target counts know "
                             f"{seen.dead_letters_indexed}: the dead letters page counts them again"), True))
    body = [f"<p>as of {escape(when(seen.at))}</p><table id=services>"]
    body += [f'<tr><th>{name}</th><td class="text{" bad" if bad else ""}">{escape(text)}</td></tr>'
             for name, text, bad in rows]
    body.append("</table>")
    for title, targets in (("Sources", seen.sources), ("Providers", seen.providers)):
        body.append(f"<h2>{title}</h2>")
        body.append(_targets(title, targets, seen.at) if targets else f"<p>no {title.lower()} seen yet</p>")
    body.append(f"<h2>Last hour, per minute</h2><p>{chart.legend()}</p>")
    if minutes_error:
        body.append(f'<p class="bad">{escape(minutes_error)}</p>')
    for row in [*seen.sources, *seen.providers]:
        series = (minutes or {}).get(f"{row.kind}:{row.id}")
        if series is not None:
            body.append(f'<figure data-target="{escape(row.id)}"><figcaption>{escape(row.kind)} {escape(row.id)}: '
                        f"{sum(m.received for m in series)} events in, {sum(m.pushed for m in series)} pushed"
                        f"</figcaption>{chart.svg(series)}</figure>")
    return layout("Overview", "".join(body), here=OVERVIEW, refresh=True)


def _workers(seen: Overview) -> str:
    if seen.broker.error:
        return "unknown: the broker does not answer"
    return "; ".join(f"{w.name}: pid {w.pid}, up {age(w.uptime_seconds or 0)}, concurrency {w.concurrency}, "
                     f"{counted(w.tasks_run, 'task')} run" for w in seen.workers) or "none answered"


def _targets(title: str, rows: list[TargetRow], now: float) -> str:
    head = "".join(f"<th>{escape(name.capitalize())}</th>" for name in [title[:-1].upper(), *status.COLUMNS])
    lines = [f"<table id={title.lower()}><tr>{head}</tr>"]
    lines += ["<tr>" + "".join(f'<td class="text">{escape(cell)}</td>' for cell in status.cells(row, now)) + "</tr>"
              for row in rows]
    lines.append("</table>")
    reasons = status.reasons(rows)
    if reasons:
        lines.append("<ul>" + "".join(f"<li>{escape(reason.strip())}</li>" for reason in reasons) + "</ul>")
    return "".join(lines)


TEXT_CELL = ' class="text"'
"""The last cell of an entry's row: free text (an error, a reason), wrapped where the others are not."""


def _entries(title: str, section: str, columns: list[str], rows: list[tuple[str, list[str]]], shown: str,
             empty: str) -> str:
    """A page listing entries: `rows` are (entry id, the cells after its link, already escaped);
    `shown` says how many, `empty` what the page says without any."""
    if not rows:
        return layout(title, f"<p>{empty}</p>", here=section)
    head = "".join(f"<th>{column}</th>" for column in ["Entry", *columns, ""])
    lines = [f'<tr><td><a href="{escape(entry_path(section, entry_id))}">{escape(entry_id)}</a></td>'
             + "".join(f"<td{TEXT_CELL if n == len(cells) - 1 else ''}>{cell}</td>" for n, cell in enumerate(cells))
             + f"<td>{_entry_actions(section, entry_id)}</td></tr>" for entry_id, cells in rows]
    return layout(title, f"<p>{shown}</p><table id=entries><tr>{head}</tr>{''.join(lines)}</table>", here=section)


def dead_letters(entries: list[DeadLetter]) -> str:
    """Every dead-letter entry, oldest first, each with its show, replay and purge."""
    rows = [(e.id, [escape(when(e.last_failure)), escape(e.target), str(len(e.events)),
                    escape(shorten(e.error.describe(), MESSAGE_CHARS))]) for e in entries]
    return _entries("Dead letters", DEAD_LETTERS, ["Last failure", "Target", "Events", "Error"], rows,
                    counted(len(entries), "entry", "entries"), "the dead-letter queue is empty")


def dead_letter(entry: DeadLetter) -> str:
    """One dead-letter entry whole, as `pushsync dlq show` prints it."""
    shown = dataclasses.asdict(entry) | {"first_failure": iso(entry.first_failure),
                                         "last_failure": iso(entry.last_failure)}
    body = (f'<p>{escape(entry.target)}: {escape(entry.error.describe())}</p><p>{_entry_actions(DEAD_LETTERS, entry.id)}'
            f"</p><pre>{escape(json.dumps(shown, indent=2, default=str))}</pre>")
    return layout(f"Dead letter {entry.id}", body, here=DEAD_LETTERS)


def quarantined(entries: list[QuarantineEntry], total: int) -> str:
    """The oldest quarantine entries (of `total`), each with its show, replay and purge."""
    rows = [(e.id, [escape(when(e.at)), escape(e.target or "-"),
                    escape(shorten(e.reason, MESSAGE_CHARS)) + (" (truncated)" if e.truncated else "")]) for e in entries]
    shown = f"the oldest {len(entries)} of {total} entries" if total > len(entries) else counted(total, "entry", "entries")
    return _entries("Quarantine", QUARANTINE, ["At", "Target", "Reason"], rows, shown, "the quarantine is empty")


def quarantine_entry(entry: QuarantineEntry) -> str:
    """One quarantine entry whole, as `pushsync quarantine show` prints it."""
    shown = dataclasses.asdict(entry) | {"at": iso(entry.at)}
    body = (f"<p>{escape(entry.reason)}</p><p>{_entry_actions(QUARANTINE, entry.id)}</p>"
            f"<pre>{escape(json.dumps(shown, indent=2, default=str))}</pre>")
    return layout(f"Quarantine entry {entry.id}", body, here=QUARANTINE)


def _entry_actions(page: str, entry_id: str) -> str:
    return action(entry_path(page, entry_id, "replay"), "Replay") + " " + action(
        entry_path(page, entry_id, "purge"), "Purge…", danger=True)


def confirm_purge(page: str, entry_id: str, what: str) -> str:
    """Asks before purging entry `entry_id` of `page`; `what`: the entry in words."""
    body = (f"<p>Delete {escape(what)} <code>{escape(entry_id)}</code> for good? Its events are not pushed, "
            f"and cannot be replayed afterwards.</p><p>"
            f"{action(entry_path(page, entry_id, 'purge'), 'Purge for good', danger=True, confirmed=True)} "
            f'<a href="{escape(entry_path(page, entry_id))}">cancel</a></p>')
    return layout("Purge?", body, here=page)


def done(page: str, title: str, lines: list[str]) -> str:
    """What an action did (`lines`, text), with the way back to `page`."""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return layout(title, f'<ul id=outcome>{items}</ul><p><a href="{page}">back</a></p>', here=page)


def replayed_quarantine(results: list[ReplayResult]) -> list[str]:
    """A quarantine replay's outcome per entry, as `pushsync quarantine replay` prints it."""
    return [" ".join(part for part in (r.entry_id, r.outcome.value, counted(r.events, "event") if r.events else "",
                                       r.detail) if part) for r in results]


def failure(code: HTTPStatus, reason: str) -> str:
    """A page saying why the request was refused or failed (it changed nothing)."""
    return layout(f"{code.value} {code.phrase}", f'<p class="bad">{escape(reason)}</p>')
