"""A full rebuild of 1,000,000 items (about 1 GB) with `pushsync rebuild`, against Coveo's clients' 5 MiB batches.

    .venv/bin/python bench/bench_rebuild.py [--items N] [--line-bytes N]

One private embedded Redis and one private emulator serve both phases of the same run, on an
export generated into a temporary directory (N `item.upsert` lines of about `--line-bytes` each,
text `data` with a `fileExtension`):
1. pushsync: a real worker (default concurrency) and beat are running; `pushsync rebuild SOURCE
   EXPORT` runs as its own process (check the export on every core, feed the window, wait for the
   workers, delete nothing older, which on a fresh source is nothing); timed from its start until
   the emulator's index holds every item. The figures count the Push API calls once the source is
   IDLE again. The workers send `data` compressed (PUSHSYNC_COMPRESS_DATA, on by default).
2. the baseline, after an emulator reset (the index then holds one copy of the export at a time):
   the same export pushed as Coveo's push-api-client.js does it, in a process of its own: the
   documents cut into batches of 5 MiB (its FileConsumer.maxContentLength), up to 10 batches at a
   time (its default maxConcurrent), each batch a file container created, uploaded and applied
   with `PUT .../documents/batch?fileId=`; a full rebuild around them as its PushSource offers
   it: REBUILD, the batches, `deleteDocumentsOlderThan` the start, IDLE. Like that client by
   default, it sends `data` as it is.
Both phases end with the emulator holding every item with its content, and no rejection.
Each phase also counts the CPU seconds of all its processes (command or client, worker and beat,
emulator, Redis) up to the full index: on this machine's cores, that CPU alone bounds how short
the wall time can be.
Targets: >= 40x fewer Push API calls than the baseline, less wall time, worker peak RSS (VmHWM
of the worker's main process and pool) under 300 MB. Not a test: the figures are printed with
their targets, exit status 0, and written to bench/results/rebuild.json.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import click
from cpu import cpu_seconds, tree_cpu_seconds, usage_seconds
from memory import peak_rss_mib, status_mib, tree_peak_rss_mib
from results import above, at_least, below, echo_targets, invocation, write_result
from stack import API_KEY, ORGANIZATION, Emulator

from worker.children import Child, celery, emulator
from worker.push.operations import to_operation
from worker.pushapi.batchfile import ITEM_SECTIONS, BatchFile, BatchFileWriter
from worker.pushapi.client import PushApiClient
from worker.store.embedded import EmbeddedRedis, free_port

REPO = Path(__file__).resolve().parents[1]
SOURCE = "rebuild-bench"
ITEMS = 1_000_000
LINE_BYTES = 1_000
"""About 1 KB per export line: 1,000,000 items make about 1 GB of NDJSON."""
MIB = 1024 * 1024
CLIENT_BATCH_BYTES = 5 * MIB
"""push-api-client.js FileConsumer.maxContentLength: a batch closes before it would reach this."""
CONTAINER_BYTES = 256 * MIB
"""What one file container takes: the size the notes compare uncompressed batches against."""
CLIENT_CONCURRENCY = 10
"""push-api-client.js default maxConcurrent: batches uploaded at the same time."""
CALLS_RATIO_TARGET = 40
RSS_TARGET_MIB = 300 * 1000 * 1000 / MIB
"""300 MB."""
WAIT_SECONDS = 3600
POLL_SECONDS = 0.5
SAMPLED_ITEMS = 100
"""Items whose content is compared with the export's, besides the count."""
PUSH_PREFIX = "/push/"
UPLOAD_PREFIX = "/_blob/"
DATA_TEXT = ("Coveo indexes this paragraph so that people find the article they need; it changes when the "
             "article does, and the connector sends it again. ")


def document_id(n: int) -> str:
    return f"https://bench.example/items/{n}"


def export_line(n: int, line_bytes: int) -> str:
    """Item n's export line, padded with text to about `line_bytes` bytes."""
    event = {"kind": "item.upsert", "source": SOURCE, "version": 1, "documentId": document_id(n),
             "item": {"metadata": {"title": f"Item {n}", "category": f"category-{n % 50}"}, "data": "",
                      "fileExtension": ".txt"}}
    room = max(line_bytes - len(json.dumps(event)), 0)
    text = (f"{n} " + DATA_TEXT * (room // len(DATA_TEXT) + 1))[:room]
    event["item"]["data"] = text
    return json.dumps(event)


def write_export(path: Path, items: int, line_bytes: int) -> int:
    """Write the export; its size in bytes."""
    with open(path, "w") as out:
        for n in range(items):
            out.write(export_line(n, line_bytes) + "\n")
    return path.stat().st_size


def wait_until(condition, what: str, *, sample=lambda: None) -> None:
    """Poll `condition` (calling `sample` each time) until true; raise after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        sample()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {WAIT_SECONDS}s")
        time.sleep(POLL_SECONDS)


def check_index(admin: Emulator, items: int, line_bytes: int) -> None:
    """Every item is indexed, with the export's content, and nothing was rejected."""
    if admin.count(SOURCE) != items:
        raise RuntimeError(f"the index holds {admin.count(SOURCE):,} items, not {items:,}")
    for n in random.Random(items).sample(range(items), min(SAMPLED_ITEMS, items)) + [0, items - 1]:
        item = admin.item(SOURCE, document_id(n))
        if item is None or item["content"] != json.loads(export_line(n, line_bytes))["item"]["data"]:
            raise RuntimeError(f"item {n} is indexed with other content than the export's")
    rejected = admin.rejections(SOURCE)
    if rejected:
        raise RuntimeError(f"{len(rejected)} item(s) rejected: {rejected[:3]}")


def calls(log: list[dict]) -> dict[str, float]:
    """Push API calls (storage uploads apart), uploads, batch calls and MiB uploaded in a request log."""
    push = [entry for entry in log if entry["path"].startswith(PUSH_PREFIX)]
    uploads = [entry for entry in log if entry["path"].startswith(UPLOAD_PREFIX)]
    failed = [entry for entry in push + uploads if entry["status"] >= 400]
    if failed:
        raise RuntimeError(f"{len(failed)} request(s) failed: {failed[:3]}")
    return {"push_api_calls": len(push), "uploads": len(uploads),
            "batches": sum(1 for entry in push if entry["path"].endswith("/documents/batch")),
            "uploaded_mib": sum(entry["bytes"] for entry in uploads) / MIB,
            "largest_upload_mib": max((entry["bytes"] for entry in uploads), default=0) / MIB}


def run_command(command: list[str], env: dict[str, str], log_path: Path, sample) -> tuple[int, float, float]:
    """Run `command` to its end (calling `sample` while it runs): its exit code, peak RSS in MiB and CPU seconds."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss / 1024, usage_seconds(usage)
        sample()
        time.sleep(POLL_SECONDS)


class ServerCpu:
    """CPU seconds that long-running servers (the emulator, Redis) spend from now on."""

    def __init__(self, **pids: int) -> None:
        """pids: each server's process id, by the name its figure takes."""
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def spent(self) -> dict[str, float]:
        return {f"{name}_cpu_seconds": cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}


def pushsync_phase(scratch: Path, export: Path, admin: Emulator, redis_server: EmbeddedRedis,
                   items: int, line_bytes: int) -> dict[str, float]:
    """`pushsync rebuild` through a real worker and beat: its figures."""
    redis_url = redis_server.url
    broker_url = redis_url.replace("/0", "/1")
    env = {"REDIS_URL": redis_url, "BROKER_URL": broker_url, "COVEO_PUSH_URL": f"{admin.url}/push/v1",
           "COVEO_ORGANIZATION_ID": ORGANIZATION, "COVEO_API_KEY": API_KEY}
    children: list[Child] = []
    try:
        worker = celery("worker", env=env, log_path=scratch / "worker.log", cwd=REPO)
        children.append(worker)
        children.append(celery("beat", env=env, log_path=scratch / "beat.log", cwd=REPO))
        peak = [0.0]

        def sample() -> None:
            peak[0] = max(peak[0], tree_peak_rss_mib(worker.popen.pid))

        servers = ServerCpu(emulator=admin.pid, redis=redis_server.pid)
        workers_started = sum(tree_cpu_seconds(child.popen.pid) for child in children)  # their start-up apart
        started = time.monotonic()
        code, cli_rss, cli_cpu = run_command([sys.executable, "-m", "worker", "rebuild", SOURCE, str(export),
                                     "--timeout", str(WAIT_SECONDS)], env, scratch / "rebuild.log", sample)
        if code != 0:
            raise RuntimeError(f"pushsync rebuild exited with {code}:\n{(scratch / 'rebuild.log').read_text()[-4000:]}")
        cli_done = time.monotonic() - started
        wait_until(lambda: admin.count(SOURCE) >= items, "the index after pushsync rebuild", sample=sample)
        wall = time.monotonic() - started
        workers = sum(tree_cpu_seconds(child.popen.pid) for child in children) - workers_started
        cpu = {"command_cpu_seconds": cli_cpu, "workers_cpu_seconds": workers, **servers.spent()}
        emulator_rss = status_mib(admin.pid, "VmRSS")
        check_index(admin, items, line_bytes)
        wait_until(lambda: admin.status(SOURCE) == "IDLE", "IDLE after pushsync rebuild", sample=sample)
        sample()
        return {"wall_seconds": wall, "command_seconds": cli_done, "worker_peak_rss_mib": peak[0],
                "command_peak_rss_mib": cli_rss, "emulator_rss_mib": emulator_rss, **cpu,
                "cpu_seconds": sum(cpu.values()), **calls(admin.requests())}
    finally:
        for child in reversed(children):
            child.stop()


def baseline_phase(scratch: Path, export: Path, admin: Emulator, items: int, line_bytes: int) -> dict[str, float]:
    """The export pushed in 5 MiB batches, as Coveo's client does, by a process of its own: its figures."""
    result = scratch / "baseline.json"
    servers = ServerCpu(emulator=admin.pid)
    started = time.monotonic()
    code, _, client_cpu = run_command([sys.executable, __file__, "--client-baseline", str(export), "--push-url",
                           f"{admin.url}/push/v1", "--baseline-result", str(result)], {},
                          scratch / "baseline.log", lambda: None)
    if code != 0:
        raise RuntimeError(f"the baseline client exited with {code}:\n{(scratch / 'baseline.log').read_text()[-4000:]}")
    client_done = time.monotonic() - started
    wait_until(lambda: admin.count(SOURCE) >= items, "the index after the baseline")
    wall = time.monotonic() - started
    cpu = {"command_cpu_seconds": client_cpu, **servers.spent()}
    emulator_rss = status_mib(admin.pid, "VmRSS")
    check_index(admin, items, line_bytes)
    peak = json.loads(result.read_text())["peak_rss_mib"]
    return {"wall_seconds": wall, "command_seconds": client_done, "worker_peak_rss_mib": peak,
            "emulator_rss_mib": emulator_rss, **cpu, "cpu_seconds": sum(cpu.values()), **calls(admin.requests())}


def documents(export: Path) -> Iterator[dict]:
    """The export's items as Push API documents, the same ones pushsync sends."""
    with open(export, "rb") as lines:
        for line in lines:
            yield to_operation(json.loads(line)).document


def push_like_coveo_clients(export: Path, push_url: str) -> None:
    """REBUILD, the export in 5 MiB batches (10 at a time, each: container, upload, batch call), olderthan, IDLE."""
    local = threading.local()

    def client() -> PushApiClient:
        if not hasattr(local, "client"):
            local.client = PushApiClient(base_url=push_url, organization_id=ORGANIZATION, api_key=API_KEY)
        return local.client

    def send(path: Path) -> None:
        try:
            container = client().create_file_container()
            client().upload(container, path)
            client().push_documents_batch(SOURCE, container.file_id)
        finally:
            path.unlink()
            slots.release()

    def queue(batch: BatchFile) -> None:
        # The writer deletes its file once this returns: the batch keeps a name of its own until sent.
        kept = batch.path.rename(batch.path.with_suffix(".queued"))
        slots.acquire()
        sent.append(pool.submit(send, kept))
        for future in [future for future in sent if future.done()]:
            future.result()
            sent.remove(future)

    start_ms = int(time.time() * 1000)
    client().set_source_status(SOURCE, "REBUILD")
    slots = threading.BoundedSemaphore(CLIENT_CONCURRENCY)
    sent: list[Future] = []
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-batches-") as directory, \
            ThreadPoolExecutor(CLIENT_CONCURRENCY) as pool:
        writer = BatchFileWriter(ITEM_SECTIONS, max_bytes=CLIENT_BATCH_BYTES, on_file=queue, directory=directory)
        for document in documents(export):
            writer.add("addOrUpdate", document, name=document["documentId"])
        writer.close()
        for future in sent:
            future.result()
    client().delete_documents_older_than(SOURCE, start_ms)
    client().set_source_status(SOURCE, "IDLE")


def cpu_lines(items: int, pushsync: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """Where each phase's CPU went, and what it means for wall time on this machine's cores."""
    cores = os.cpu_count() or 1
    floor = pushsync["cpu_seconds"] / cores
    return [
        f"CPU seconds to the full index: pushsync {pushsync['cpu_seconds']:,.1f} (command "
        f"{pushsync['command_cpu_seconds']:,.1f}, worker and beat {pushsync['workers_cpu_seconds']:,.1f}, emulator "
        f"{pushsync['emulator_cpu_seconds']:,.1f}, Redis {pushsync['redis_cpu_seconds']:,.1f}), "
        f"{pushsync['cpu_seconds'] / items * 1e6:,.0f} µs per item; 5 MiB batches {baseline['cpu_seconds']:,.1f} "
        f"(client {baseline['command_cpu_seconds']:,.1f}, emulator {baseline['emulator_cpu_seconds']:,.1f}), "
        f"{baseline['cpu_seconds'] / items * 1e6:,.0f} µs per item.",
        f"On {cores} cores, pushsync's CPU alone takes at least {floor:,.1f}s of wall time, "
        f"{floor / baseline['wall_seconds']:.1f} times the baseline's {baseline['wall_seconds']:,.1f}s, in which it "
        f"kept the cores {baseline['cpu_seconds'] / (cores * baseline['wall_seconds']):.0%} busy: "
        + ("no overlap of pushsync's steps can beat the baseline here, only less CPU per item."
           if floor >= baseline["wall_seconds"] else
           f"better overlap of its steps could still gain up to {pushsync['wall_seconds'] - floor:,.1f}s."),
    ]


def report(items: int, export_bytes: int, pushsync: dict[str, float], baseline: dict[str, float]) -> None:
    call_ratio = baseline["push_api_calls"] / pushsync["push_api_calls"]
    plain_containers = math.ceil(baseline["uploaded_mib"] * MIB / CONTAINER_BYTES)
    wall_ratio = baseline["wall_seconds"] / pushsync["wall_seconds"]
    targets = [
        at_least("Push API calls, 5 MiB batches / pushsync", call_ratio, CALLS_RATIO_TARGET),
        above("wall time, 5 MiB batches / pushsync", wall_ratio, 1),
        below("worker peak RSS, MiB (300 MB)", pushsync["worker_peak_rss_mib"], round(RSS_TARGET_MIB, 1)),
    ]
    click.echo(f"full rebuild of {items:,} items, export {export_bytes / MIB:,.0f} MiB, same emulator, same run")
    for name, figures in (("pushsync rebuild", pushsync), ("5 MiB batches (baseline)", baseline)):
        click.echo(f"  {name:<25} {figures['push_api_calls']:>6,} Push API calls ({figures['batches']:,} batches, "
                   f"{figures['uploads']:,} uploads of {figures['uploaded_mib']:,.0f} MiB), "
                   f"{figures['wall_seconds']:>7.1f}s to the full index, "
                   f"peak RSS {figures['worker_peak_rss_mib']:.0f} MiB")
    click.echo(f"  pushsync rebuild command done after {pushsync['command_seconds']:.1f}s, its peak RSS "
               f"{pushsync['command_peak_rss_mib']:.0f} MiB; emulator RSS holding the index "
               f"{pushsync['emulator_rss_mib']:,.0f} MiB")
    cpu = cpu_lines(items, pushsync, baseline)
    for line in cpu:
        click.echo(f"  {line}")
    echo_targets(targets, indent="  ")
    figures = {"items": items, "export_mib": export_bytes / MIB, **pushsync,
               **{f"baseline_{name}": value for name, value in baseline.items()},
               "ratio_push_api_calls": call_ratio, "ratio_wall_time": wall_ratio}
    write_result("rebuild", f"A full rebuild of {items:,} items against 5 MiB batches", invocation(), figures,
                 targets, [
        f"Both phases push the same {items:,}-item export ({export_bytes / MIB:,.0f} MiB of NDJSON) to one emulator "
        "in the same run; the emulator is reset between them, so its index holds one copy at a time.",
        "The baseline does what Coveo's push-api-client.js does: batches of documents closed before 5 MiB, up to 10 "
        "uploaded at a time, each through its own file container; REBUILD before, deleteDocumentsOlderThan and IDLE "
        "after. Its worker figures are those of that client process.",
        "Push API calls are the requests under /push/ (status, file containers, batch calls, olderthan); the "
        "uploads go to the storage host and are counted apart.",
        "Wall time runs from the start of the command to the moment the emulator's index holds every item; "
        "each phase then checks the count, the content of sampled items and that nothing was rejected.",
        "Worker peak RSS is the largest VmHWM among the Celery worker's main process and its pool.",
        "CPU seconds are user and system time from /proc and rusage, counted from each phase's start to the full "
        "index: the command or client process with its children, the worker and beat process trees, and what the "
        "emulator and Redis servers spent meanwhile.",
        *cpu,
        f"pushsync sends each item's data compressed (ZLIB compressedBinaryData, as the items state a "
        f"fileExtension): {pushsync['uploaded_mib']:,.0f} MiB uploaded against {baseline['uploaded_mib']:,.0f}. "
        "The export's text repeats one paragraph, which zlib takes to about a fifth; text that compresses "
        f"less fills more containers, up to the {plain_containers} ({2 * plain_containers + 3} calls) that "
        f"{baseline['uploaded_mib']:,.0f} MiB needs uncompressed.",
    ])


@click.command()
@click.option("--items", default=ITEMS, show_default=True, help="Items in the export.")
@click.option("--line-bytes", default=LINE_BYTES, show_default=True, help="About this many bytes per export line.")
@click.option("--client-baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), hidden=True,
              help="Only push this export as the baseline client does.")
@click.option("--push-url", hidden=True, help="The baseline client's Push API URL.")
@click.option("--baseline-result", type=click.Path(dir_okay=False, path_type=Path), hidden=True,
              help="Where the baseline client writes its peak RSS.")
def main(items: int, line_bytes: int, client_baseline: Path | None, push_url: str | None,
         baseline_result: Path | None) -> None:
    if client_baseline:
        push_like_coveo_clients(client_baseline, push_url)
        baseline_result.write_text(json.dumps({"peak_rss_mib": peak_rss_mib(os.getpid())}))
        return
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-rebuild-") as directory:
        scratch = Path(directory)
        export = scratch / "export.ndjson"
        export_bytes = write_export(export, items, line_bytes)
        redis_server = EmbeddedRedis(scratch / "redis")
        port = free_port()
        emulator_child = None
        try:
            emulator_child = emulator(port, api_key=API_KEY, log_path=scratch / "emulator.log",
                                      args=["--organization", ORGANIZATION, "--source", SOURCE])
            admin = Emulator(f"http://127.0.0.1:{port}", emulator_child.popen.pid)
            pushsync = pushsync_phase(scratch, export, admin, redis_server, items, line_bytes)
            admin.reset()
            baseline = baseline_phase(scratch, export, admin, items, line_bytes)
        finally:
            if emulator_child is not None:
                emulator_child.stop()
            redis_server.stop()
    report(items, export_bytes, pushsync, baseline)


if __name__ == "__main__":
    main()
