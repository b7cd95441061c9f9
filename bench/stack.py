"""The whole stack for a benchmark: a private embedded Redis, a private emulator, workers and beat.

    with Stack(directory, sources) as stack:
        stack.start_worker(concurrency=1)
        stack.start_beat()
        ... publish to stack.broker_url, read stack.emulator ...

Every worker serves its metrics on a port of its own, so what it pushed can be read before it is
stopped (or killed). Nothing here touches a shared server unless a broker URL is given.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import redis
import requests
from cpu import cpu_seconds
from memory import tree, tree_peak_rss_mib
from prometheus_client.parser import text_string_to_metric_families

from worker.children import Child, celery, emulator
from worker.store.embedded import LOOPBACK, EmbeddedRedis, free_port

ORGANIZATION = "bench"
API_KEY = "bench-key"
STORE_DB, BROKER_DB = 0, 1
HTTP_TIMEOUT_SECONDS = 120
"""The emulator lists tens of thousands of items in one answer."""
STOP_SECONDS = 30
POLL_SECONDS = 1.0
ITEM_ROUTE_SUFFIXES = ("/documents/batch", "/documents")
"""The paths of the calls that apply items: the batch call, the single-item PUT and DELETE."""
UPLOAD_PATH_PREFIX = "/_blob/"


class Emulator:
    """The admin API of the private emulator (docs/emulator.md)."""

    def __init__(self, url: str, pid: int) -> None:
        """url: the emulator's root URL. pid: its process, for its memory and CPU."""
        self.url = url
        self.pid = pid
        self.session = requests.Session()

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}/_emulator{path}", timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        response.raise_for_status()
        return response.json()

    def _source(self, source: str) -> str:
        return f"/organizations/{ORGANIZATION}/sources/{source}"

    def count(self, source: str) -> int:
        """Items the source holds (asked about one documentId so the answer stays small)."""
        return self._admin("GET", f"{self._source(source)}/items", params={"documentId": "-"})["count"]

    def item(self, source: str, document_id: str) -> dict[str, Any] | None:
        items = self._admin("GET", f"{self._source(source)}/items", params={"documentId": document_id})["items"]
        return items[0] if items else None

    def items(self, source: str) -> dict[str, dict[str, Any]]:
        """documentId -> item, once what was accepted so far is applied."""
        listed = self._admin("GET", f"{self._source(source)}/items", params={"wait": 1})["items"]
        return {item["documentId"]: item for item in listed}

    def rejections(self, source: str) -> list[dict[str, Any]]:
        """What the indexing pipeline refused after a 202, as the source's logs would show it."""
        return self._admin("GET", f"{self._source(source)}/rejections")["rejections"]

    def status(self, source: str) -> str:
        """The status the source was set to last (IDLE once a burst is closed)."""
        return self._admin("GET", f"{self._source(source)}/activities")["status"]

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self._admin("GET", "/requests", params={"since": since})["requests"]

    def last_request_id(self) -> int:
        log = self.requests()
        return log[-1]["id"] if log else 0

    def reset(self) -> None:
        self._admin("POST", "/reset")

    def configure(self, **limits: Any) -> None:
        """Change the emulator's limits (e.g. itemAllowance=0; None lifts one)."""
        self._admin("PUT", "/config", json=limits)

    def add_fault(self, **rule: Any) -> None:
        self._admin("POST", "/faults", json=rule)

    def clear_faults(self) -> None:
        self._admin("DELETE", "/faults")


class Stack:
    """A private Redis (store in db 0, broker in db 1) and emulator; workers and beat on demand."""

    def __init__(self, directory: Path, sources: Iterable[str], env: dict[str, str] | None = None,
                 broker_url: str | None = None, address: str = LOOPBACK) -> None:
        """
        directory: where the Redis data, the emulator's and the workers' logs go.
        sources: the Push sources the emulator has from the start.
        env: settings for the workers and beat beyond the connection ones.
        broker_url: the broker to use instead of the private Redis's db 1 (e.g. a RabbitMQ vhost).
        address: where Redis and the emulator listen (default: loopback; a bridge's, for workers on other hosts).
        """
        self.directory = directory
        self.address = address
        self.redis = EmbeddedRedis(directory / "redis", host=address)
        self.store_url = f"redis://{address}:{self.redis.port}/{STORE_DB}"
        self.broker_url = broker_url or f"redis://{address}:{self.redis.port}/{BROKER_DB}"
        port = free_port(address)
        self.children: list[Child] = []
        self.workers: dict[str, Child] = {}
        self.metrics_ports: dict[str, int] = {}
        self._started = 0
        try:
            args = ["--organization", ORGANIZATION]
            for source in sources:
                args += ["--source", source]
            self.emulator_process = emulator(port, api_key=API_KEY, log_path=directory / "emulator.log", args=args,
                                             host=address)
            self.children.append(self.emulator_process)
        except BaseException:
            self.redis.stop()
            raise
        self.emulator = Emulator(f"http://{address}:{port}", self.emulator_process.popen.pid)
        self.env = {"REDIS_URL": self.store_url, "BROKER_URL": self.broker_url,
                    "COVEO_PUSH_URL": f"{self.emulator.url}/push/v1", "COVEO_ORGANIZATION_ID": ORGANIZATION,
                    "COVEO_API_KEY": API_KEY, **(env or {})}

    def start_beat(self) -> Child:
        beat = celery("beat", env=self.env, log_path=self.directory / "beat.log")
        self.children.append(beat)
        return beat

    def start_worker(self, concurrency: int, runner: Sequence[str] = ()) -> str:
        """Start one more worker with `concurrency` pool processes (through `runner`, e.g. `ip netns exec
        NAME`, when given: see `worker.children.celery`); returns its name."""
        self._started += 1
        name = f"bench{self._started}"
        port = free_port()
        env = {**self.env, "PUSHSYNC_METRICS_PORT": str(port), "PUSHSYNC_METRICS_ADDRESS": "127.0.0.1",
               "PUSHSYNC_METRICS_DIR": str(self.directory / f"metrics-{name}")}
        worker = celery("worker", env=env, log_path=self.directory / f"{name}.log",
                        extra=["--concurrency", str(concurrency), "--hostname", f"{name}@%h"], runner=runner)
        self.children.append(worker)
        self.workers[name] = worker
        self.metrics_ports[name] = port
        return name

    def metrics(self, name: str) -> dict[str, float]:
        """The worker's counters and histogram sums, added up over their labels, by sample name (a worker on
        this machine's network: one started through a runner serves them on its own loopback)."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=HTTP_TIMEOUT_SECONDS).text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    def peak_rss_mib(self, name: str) -> float:
        """The largest peak RSS among the worker's processes."""
        return tree_peak_rss_mib(self.workers[name].popen.pid)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each part: ingestion (the workers' main processes), pushing (their
        pool processes), beat, the emulator, Redis (store and broker) and this process (the publisher)."""
        mains = [worker.popen.pid for worker in self.workers.values()]
        beat = [child.popen.pid for child in self.children if child.name == "celery beat"]
        server = redis.Redis(self.address, self.redis.port).info("cpu")
        return {
            "ingest": sum(cpu_seconds(pid, reaped=False) for pid in mains),
            "push": sum(cpu_seconds(pid, reaped=False) for main in mains for pid in tree(main)[1:]),
            "beat": sum(cpu_seconds(pid, reaped=False) for pid in beat),
            "emulator": cpu_seconds(self.emulator.pid, reaped=False),
            "redis": server["used_cpu_user"] + server["used_cpu_sys"],
            "publisher": sum(os.times()[:2]),
        }

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its pool at once, as a crash would."""
        worker = self.workers.pop(name)
        worker.kill()
        self.children.remove(worker)

    def stop_workers(self) -> None:
        """Stop every worker and beat politely; the emulator and Redis keep running."""
        for child in [*self.workers.values(), *(c for c in self.children if c.name == "celery beat")]:
            child.stop(timeout=STOP_SECONDS)
            self.children.remove(child)
        self.workers.clear()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout=STOP_SECONDS)
        self.children.clear()
        self.redis.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, logs: Path) -> None:
    """Poll `condition` every POLL_SECONDS; raise after `timeout` seconds, pointing at the logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached after {timeout:.0f}s; logs in {logs}")
        time.sleep(POLL_SECONDS)


def batch_calls(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accepted calls of the request log that carried items: batch calls, and the single-item calls
    of windows of one or two items (PUSHSYNC_SINGLE_CALL_MAX_ITEMS)."""
    return [entry for entry in log if entry["path"].endswith(ITEM_ROUTE_SUFFIXES) and entry["status"] == 202]


def is_upload(entry: dict[str, Any]) -> bool:
    """An upload to a file container: storage traffic, not a Push API call."""
    return entry["path"].startswith(UPLOAD_PATH_PREFIX)


class CallCounts:
    """Counts of a request log (`log`: the emulator's entries): Push API calls and uploads apart."""

    log: list[dict[str, Any]]

    @property
    def api_calls(self) -> int:
        """Push API calls: status, file container, batch and single-item calls (uploads go to storage)."""
        return sum(not is_upload(entry) for entry in self.log)

    @property
    def uploads(self) -> int:
        return sum(is_upload(entry) for entry in self.log)
