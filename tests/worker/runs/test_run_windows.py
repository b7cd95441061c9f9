"""A full run checks its export once, sizes its window from a sample, and holds it open while it feeds."""

from __future__ import annotations

import base64
import json
import os
import random
import time

import pytest

from producers.events.limits import INLINE_CONTENT_LIMIT_BYTES, MIB
from worker.runs import exports
from worker.runs.exports import check_export
from worker.runs.packing import CONTAINER_FILL, PackingSample
from worker.settings import load_settings
from worker.store import keys
from worker.windows import holds
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

SOURCE = keys.Target(keys.SOURCE, "src")
PARAGRAPH = "The article says the same thing in every paragraph, as articles do. "


def line(n: int, **item_fields) -> str:
    item = {"data": f"{n} " + PARAGRAPH * 10, "fileExtension": ".txt", **item_fields}
    return json.dumps({"kind": "item.upsert", "source": "src", "version": n, "documentId": f"https://example.com/{n}",
                       "item": item})


@pytest.fixture()
def mixed_export(tmp_path):
    """400 lines: valid items, blank lines, broken JSON, another source's items and an item without content."""
    rng = random.Random(7)
    lines, bad = [], {}
    for n in range(400):
        roll = rng.random()
        if roll < 0.05:
            lines.append("")
        elif roll < 0.08:
            lines.append('{"kind": "item.upsert",')
            bad[len(lines)] = "not JSON"
        elif roll < 0.10:
            lines.append(line(n).replace('"source": "src"', '"source": "other"'))
            bad[len(lines)] = "this export holds item.upsert events of source 'src' only"
        elif roll < 0.12:
            lines.append(json.dumps({"kind": "item.upsert", "source": "src", "version": 1,
                                     "documentId": f"https://example.com/{n}", "item": {"metadata": {}}}))
            bad[len(lines)] = "data or binaryData"
        else:
            lines.append(line(n))
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(lines))  # no line end after the last line
    return path, lines, bad


def test_checking_in_parallel_finds_what_one_process_finds_with_the_same_line_numbers(mixed_export, tmp_path,
                                                                                       monkeypatch):
    path, lines, bad = mixed_export
    alone = check_export(path, SOURCE, _scratch(tmp_path, "alone"), processes=1, compress_data=True)
    monkeypatch.setattr(exports, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(exports, "SHOWN_INVALID_LINES", 1000)
    parallel = check_export(path, SOURCE, _scratch(tmp_path, "parallel"), processes=3, compress_data=True)
    assert len(parallel.parts) > 3
    assert parallel.lines == alone.lines == len(lines)
    assert parallel.invalid_count == len(bad) and parallel.valid == sum(1 for text in lines if text) - len(bad)
    assert [number for number, _ in parallel.invalid] == sorted(bad)
    for number, reason in parallel.invalid:
        assert bad[number] in reason, (number, reason)
    entries = list(parallel.entries())
    assert [_comparable(entry) for entry in entries] == [_comparable(entry) for entry in alone.entries()]
    assert [number for number, _ in entries] == [n for n, text in enumerate(lines, 1) if text and n not in bad]
    for number, (key, event_rank, encoded) in entries:
        event = json.loads(encoded)
        assert json.loads(lines[number - 1])["documentId"] == key == event["documentId"]
        assert event_rank == f"{event['version']}.0"


def test_only_the_first_invalid_lines_are_kept_to_show(tmp_path):
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(["nonsense"] * 50 + [line(1)]) + "\n")
    checked = check_export(path, SOURCE, tmp_path, processes=1, compress_data=True)
    assert checked.invalid_count == 50 and len(checked.invalid) == exports.SHOWN_INVALID_LINES
    assert checked.valid == 1 and checked.lines == 51


def test_the_window_fills_about_one_container_of_what_the_push_will_send(tmp_path):
    settings = load_settings(container_max_bytes=4 * MIB, rebuild_window_max_bytes=64 * MIB)
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(line(n) for n in range(2000)) + "\n")
    compressed = check_export(path, SOURCE, _scratch(tmp_path, "on"), processes=1, compress_data=True).sample
    plain = check_export(path, SOURCE, _scratch(tmp_path, "off"), processes=1, compress_data=False).sample
    assert 0 < compressed.entry_bytes < plain.entry_bytes < plain.event_bytes
    for sample in (compressed, plain):
        events_per_entry = sample.event_bytes / sample.entry_bytes
        assert sample.window_bytes(settings) == int(4 * MIB * CONTAINER_FILL * events_per_entry)
    assert compressed.window_bytes(settings) > 3 * plain.window_bytes(settings)
    capped = load_settings(container_max_bytes=4 * MIB, rebuild_window_max_bytes=5 * MIB)
    assert compressed.window_bytes(capped) == 5 * MIB
    assert PackingSample().window_bytes(settings) == int(4 * MIB * CONTAINER_FILL)


def test_a_sampled_item_whose_content_goes_apart_is_sized_without_a_service(tmp_path):
    # Just under the inline limit as stored, its random bytes grow when the push compresses them,
    # so the push would upload them to a container of their own: the sample never calls the service.
    content = os.urandom((INLINE_CONTENT_LIMIT_BYTES - 1024) * 3 // 4)
    big = json.dumps({"kind": "item.upsert", "source": "src", "version": 1, "documentId": "https://example.com/big",
                      "item": {"binaryData": base64.b64encode(content).decode(), "compressionType": "UNCOMPRESSED"}})
    assert len(big) < INLINE_CONTENT_LIMIT_BYTES
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join([big, *(line(n) for n in range(1, 150))]) + "\n")
    checked = check_export(path, SOURCE, tmp_path, processes=1, compress_data=True)
    assert checked.valid == 150 and checked.invalid_count == 0
    # The big item is the first one sampled; only the small one sampled after it is measured.
    assert 0 < checked.sample.event_bytes < len(big)


def test_a_feeding_run_holds_its_window_past_its_time_until_it_holds_enough(redis_client):
    settings = load_settings(window_seconds=1)
    claimed: list[keys.Batch] = []
    flusher = Flusher(redis_client, settings, claimed.extend)
    coalescer = Coalescer(redis_client, settings)
    events = [json.loads(line(n)) for n in range(3)]
    entries = [(e["documentId"], f"{e['version']}.0", json.dumps(e).encode()) for e in events]
    coalescer.add_encoded(SOURCE, entries[:2])
    window_bytes = int(redis_client.hget(SOURCE.window_meta, "bytes")) + 1
    redis_client.hset(SOURCE.rebuild, mapping={"id": "run", "state": "feeding", "window_bytes": window_bytes,
                                               "saved_at": repr(time.time())})
    later = time.time() + 5
    assert flusher.sweep(now=later).claimed == [] and SOURCE in flusher.sweep(now=later).busy

    redis_client.hset(SOURCE.rebuild, "saved_at", repr(later - holds.HOLD_LAPSE_SECONDS - 1))
    assert len(flusher.sweep(now=later).claimed) == 1, "a run that stopped feeding releases its window"
    redis_client.delete(SOURCE.inflight)  # as if that batch was pushed

    coalescer.add_encoded(SOURCE, entries[2:])
    redis_client.hset(SOURCE.rebuild, mapping={"saved_at": repr(later), "window_bytes": 10 * MIB})
    assert flusher.sweep(now=later + 5).claimed == []
    redis_client.hset(SOURCE.rebuild, "window_bytes", redis_client.hget(SOURCE.window_meta, "bytes"))
    assert len(flusher.sweep(now=later + 5).claimed) == 1, "a window that holds enough closes"
    redis_client.delete(SOURCE.inflight)

    coalescer.add_encoded(SOURCE, entries[:1])
    redis_client.hset(SOURCE.rebuild, mapping={"saved_at": repr(later + 10), "state": "finishing"})
    assert len(flusher.sweep(now=later + 10).claimed) == 1, "a finishing run releases its window"


def _comparable(numbered_entry):
    """An entry without what checking fills anew each time (event id and time)."""
    number, (key, event_rank, encoded) = numbered_entry
    event = json.loads(encoded)
    del event["eventId"], event["occurredAt"]
    return number, key, event_rank, event


def _scratch(tmp_path, name):
    directory = tmp_path / name
    directory.mkdir()
    return directory
