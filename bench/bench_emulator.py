"""The emulator is never the bottleneck: its figures against baselines measured in the same run.

    python bench/bench_emulator.py [--requests N] [--items N] [--upload-mib N]

Each part runs on a fresh emulator process (so that its peak RSS is its own) and prints:
1. single-item PUTs per second from keep-alive client processes, against a trivial Starlette route
   on the same server stack (uvicorn, h11) driven by the same clients; target >= 1,000/s;
2. a 100,000-item batch: upload, batch call (the file is parsed before the 202), applied; against
   json.load of the same file in this process, the least any consumer spends on it;
3. a 256 MB upload: throughput against the trivial route reading the same body, and the emulator's
   peak RSS (VmHWM); target < 200 MB.
Not a test: nothing is asserted, the figures are printed with their targets and written to
bench/results/emulator.json.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import requests
from memory import status_mib
from results import Target, at_least, below, invocation, write_result

from worker.local_emulator import EmulatorServer, start_emulator, stop_emulator
from worker.store.embedded import free_port

MIB = 1024 * 1024
CLIENT_PROCESSES = 2
"""Load generators; the machine has 2 cores, shared with the server."""
REQUESTS_TARGET_PER_SECOND = 1_000
UPLOAD_RSS_TARGET_MIB = 200
BASELINE_STARTUP_SECONDS = 20.0
"""How long the baseline server may take to answer after its process started."""
SOURCE = "bench"
ITEM_TEXT = "lorem ipsum dolor sit amet " * 18
"""About half a kilobyte of content per item, like a short CMS entry."""


def run_baseline_server(port: int) -> None:
    """The baseline server: one trivial Starlette route on uvicorn, reading the body and answering 202."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def sink(request):
        async for _ in request.stream():
            pass
        return Response(status_code=202)

    routes = [Route("/{path:path}", sink, methods=["PUT", "GET"])]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll `url` until it answers 2xx; a RuntimeError with the log when `process` dies or is too slow."""
    deadline = time.monotonic() + BASELINE_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {BASELINE_STARTUP_SECONDS}s:\n{log_path.read_text()}")


def put_items(args: tuple[str, int, int, int, dict[str, str], str]) -> None:
    """One client process: `count` keep-alive single-item PUTs."""
    host, port, first, count, headers, path = args
    connection = http.client.HTTPConnection(host, port)
    body = json.dumps({"data": ITEM_TEXT, "title": "Bench"}).encode()
    for number in range(first, first + count):
        connection.request("PUT", f"{path}?documentId=https%3A%2F%2Fbench.example%2F{number}", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 202, response.status
    connection.close()


def request_rate(url: str, path: str, headers: dict[str, str], total: int) -> float:
    """Single-item PUTs per second against `url`, from CLIENT_PROCESSES processes."""
    host, port = url.removeprefix("http://").split(":")
    share = total // CLIENT_PROCESSES
    jobs = [(host, int(port), n * share, share, headers, path) for n in range(CLIENT_PROCESSES)]
    with multiprocessing.Pool(CLIENT_PROCESSES) as pool:
        started = time.perf_counter()
        pool.map(put_items, jobs)
        return share * CLIENT_PROCESSES / (time.perf_counter() - started)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def upload(url: str, headers: dict[str, str], path: Path) -> float:
    with open(path, "rb") as body:
        return timed(lambda: requests.put(url, data=body, headers=headers).raise_for_status())


def create_container(server: EmulatorServer) -> dict:
    response = requests.post(f"{server.push_url}/organizations/{server.organization}/files", headers=server.headers())
    response.raise_for_status()
    return response.json()


def write_batch(path: Path, count: int) -> None:
    with open(path, "w") as out:
        out.write('{"addOrUpdate": [')
        for number in range(count):
            item = {"documentId": f"https://bench.example/{number}", "data": ITEM_TEXT, "title": f"Item {number}",
                    "tags": ["bench", "batch"], "permissions": [{"allowAnonymous": True}]}
            out.write(("," if number else "") + json.dumps(item))
        out.write('], "delete": []}')


def bench_requests(scratch: Path, baseline_url: str, total: int) -> tuple[dict[str, float], Target]:
    server = start_emulator(scratch / "requests", "--source", SOURCE)
    try:
        path = f"/push/v1/organizations/{server.organization}/sources/{SOURCE}/documents"
        baseline = request_rate(baseline_url, path, server.headers(), total)
        emulated = request_rate(server.url, path, server.headers(), total)
        applied = timed(server.wait_idle)
        count = len(server.items(SOURCE))
    finally:
        stop_emulator(server)
    click.echo(f"1. {total:,} single-item PUTs, {CLIENT_PROCESSES} keep-alive client processes")
    click.echo(f"   trivial Starlette route (baseline): {baseline:>8,.0f} requests/s")
    click.echo(f"   emulator:                           {emulated:>8,.0f} requests/s "
               f"(target >= {REQUESTS_TARGET_PER_SECOND:,}; {emulated / baseline:.0%} of the baseline)")
    click.echo(f"   all {count:,} items indexed {applied:.2f}s after the last 202")
    figures = {"requests": total, "requests_baseline_per_second": baseline, "requests_per_second": emulated,
               "requests_indexed": count, "requests_applied_seconds": applied}
    return figures, at_least("single-item PUTs per second", emulated, REQUESTS_TARGET_PER_SECOND)


def bench_batch(scratch: Path, count: int) -> dict[str, float]:
    batch = scratch / "batch.json"
    write_batch(batch, count)
    parse = timed(lambda: json.loads(batch.read_bytes()))
    server = start_emulator(scratch / "batch", "--source", SOURCE)
    try:
        container = create_container(server)
        uploaded = upload(container["uploadUri"], container["requiredHeaders"], batch)
        url = f"{server.push_url}/organizations/{server.organization}/sources/{SOURCE}/documents/batch"
        call = timed(lambda: requests.put(url, params={"fileId": container["fileId"]}, headers=server.headers()).raise_for_status())
        applied = timed(server.wait_idle)
        indexed = requests.get(f"{server.url}/_emulator/organizations/{server.organization}/sources/{SOURCE}/items",
                               params={"documentId": "https://bench.example/0"}).json()["count"]
        rss = status_mib(server.process.pid, "VmRSS")
    finally:
        stop_emulator(server)
    total = uploaded + call + applied
    click.echo(f"2. a {count:,}-item batch file of {batch.stat().st_size / MIB:.0f} MiB")
    click.echo(f"   json.load of the file (baseline):   {parse:>8.2f}s")
    click.echo(f"   upload {uploaded:.2f}s + batch call {call:.2f}s + applied {applied:.2f}s = {total:.2f}s "
               f"({indexed:,} items indexed, {indexed / total:,.0f} items/s; {total / parse:.1f}x the baseline)")
    click.echo(f"   emulator RSS holding them: {rss:.0f} MiB")
    return {"batch_items": count, "batch_mib": batch.stat().st_size / MIB, "batch_json_load_seconds": parse,
            "batch_upload_seconds": uploaded, "batch_call_seconds": call, "batch_applied_seconds": applied,
            "batch_indexed": indexed, "batch_items_per_second": indexed / total, "batch_emulator_rss_mib": rss}


def bench_upload(scratch: Path, baseline_url: str, size_mib: int) -> tuple[dict[str, float], Target]:
    blob = scratch / "upload.bin"
    with open(blob, "wb") as out:
        for _ in range(size_mib):
            out.write(b"\0" * MIB)
    baseline = upload_seconds = 0.0
    server = start_emulator(scratch / "upload")
    try:
        idle = status_mib(server.process.pid, "VmRSS")
        container = create_container(server)
        baseline = upload(baseline_url + "/blob", container["requiredHeaders"], blob)
        upload_seconds = upload(container["uploadUri"], container["requiredHeaders"], blob)
        peak = status_mib(server.process.pid, "VmHWM")
    finally:
        stop_emulator(server)
    click.echo(f"3. a {size_mib} MiB upload to a file container")
    click.echo(f"   trivial route reading the body (baseline): {size_mib / baseline:>6,.0f} MiB/s")
    click.echo(f"   emulator streaming it to disk:             {size_mib / upload_seconds:>6,.0f} MiB/s "
               f"({baseline / upload_seconds:.0%} of the baseline)")
    click.echo(f"   emulator RSS: {idle:.0f} MiB idle, {peak:.0f} MiB peak (target < {UPLOAD_RSS_TARGET_MIB} MiB)")
    figures = {"upload_mib": size_mib, "upload_baseline_mib_per_second": size_mib / baseline,
               "upload_mib_per_second": size_mib / upload_seconds, "upload_idle_rss_mib": idle,
               "upload_peak_rss_mib": peak}
    return figures, below("emulator peak RSS during the upload, MiB", peak, UPLOAD_RSS_TARGET_MIB)


@click.command()
@click.option("--requests", "request_count", default=20_000, show_default=True, help="Single-item PUTs per server.")
@click.option("--items", default=100_000, show_default=True, help="Items in the batch file.")
@click.option("--upload-mib", default=256, show_default=True, help="Size of the upload, in MiB.")
@click.option("--serve-baseline", type=int, hidden=True, help="Run only the baseline server on this port.")
def main(request_count: int, items: int, upload_mib: int, serve_baseline: int | None) -> None:
    if serve_baseline:
        run_baseline_server(serve_baseline)
        return
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as directory:
        scratch = Path(directory)
        port = free_port()
        log_path = scratch / "baseline.log"
        with open(log_path, "wb") as log:
            baseline = subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(port)], stdout=log, stderr=log)
        try:
            baseline_url = f"http://127.0.0.1:{port}"
            wait_until_serving(baseline_url + "/up", baseline, log_path)
            request_figures, request_target = bench_requests(scratch, baseline_url, request_count)
            batch_figures = bench_batch(scratch, items)
            upload_figures, upload_target = bench_upload(scratch, baseline_url, upload_mib)
        finally:
            baseline.terminate()
            baseline.wait()
    write_result("emulator", "The Push API emulator", invocation(),
                 {**request_figures, **batch_figures, **upload_figures}, [request_target, upload_target], [
        f"Single-item PUTs come from {CLIENT_PROCESSES} keep-alive client processes; the baseline is a trivial "
        "Starlette route on the same server stack driven by the same clients.",
        "The batch's baseline is json.load of the same file in the benchmark's process: the least any consumer "
        "spends on it.",
    ])


if __name__ == "__main__":
    main()
