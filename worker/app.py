"""The Celery application: configuration from `celeryconfig`, ingestion as a bootstep (a consumer
step on RabbitMQ, a stream consumer thread on a Redis broker),
logging set up by pushsync (`worker/logs.py`) in worker and beat processes, and the worker's
metrics (`worker/observe/`) served by its main process."""

from __future__ import annotations

import logging
import sys
from logging.handlers import WatchedFileHandler

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init, worker_process_shutdown, worker_ready
from celery.utils.log import get_multiprocessing_logger
from celery.worker.consumer import Consumer as CeleryConsumer

from worker import logs
from worker.ingest.amqp import AmqpIngestStep
from worker.ingest.stream import StreamIngestStep
from worker.observe import metric_files
from worker.settings import LogFormat, load_settings

# prometheus_client decides where metric values live when it is first imported, which the modules
# below do (the stages do not: they report through `worker.hooks`): by then the processes of a
# worker serving metrics must be set to share files.
METRICS_DIRECTORY = metric_files.share(load_settings())

from worker import runtime, tasks  # noqa: E402
from worker.observe import endpoint  # noqa: E402
from worker.sweeper import SweepStep  # noqa: E402

runtime.observe()
# Until Celery sets up its logging (`configure_logging`), what it says (its warning about running
# as root comes first) goes through pushsync's handler too, in the chosen format.
logs.configure(load_settings().log_format)


class Consumer(CeleryConsumer):
    """Celery's consumer without its native delayed delivery step (ETA and countdown tasks on quorum
    queues), which pushsync never sends: that step declares its exchanges on every node of a failover
    list in turn, and after a reconnection it held the consumer back ~18 s retrying the dead node."""

    class Blueprint(CeleryConsumer.Blueprint):
        default_steps = [step for step in CeleryConsumer.Blueprint.default_steps
                         if not step.endswith(":DelayedDelivery")]


app = Celery("pushsync")
app.config_from_object("celeryconfig")
app.conf.worker_consumer = f"{__name__}:Consumer"
app.steps["consumer"].add(AmqpIngestStep)
app.steps["worker"].add(StreamIngestStep)
app.steps["worker"].add(SweepStep)
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)


@setup_logging.connect
def configure_logging(loglevel: int | str, logfile: str | None, **_: object) -> None:
    """Replace Celery's logging set-up with pushsync's: PUSHSYNC_LOG_FORMAT, redaction, log context.

    loglevel: Celery's --loglevel.
    logfile: Celery's --logfile, if given (reopened when rotated away).
    """
    # Bound to the real stream now: Celery redirects sys.stderr into logging later.
    handler = WatchedFileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    log_format = load_settings().log_format
    logs.configure(log_format, level=loglevel, handler=handler, routine_tasks=tasks.ROUTINE_TASKS)
    if log_format is LogFormat.JSON:
        logs.json_celery_notices()
    # The pool's own logger does not propagate; Celery gives it the root's handler for errors.
    pool = get_multiprocessing_logger()
    if pool is not None:
        pool.addHandler(handler)
        pool.setLevel(logging.ERROR)


@beat_init.connect
def no_sent_events(sender: object, **_: object) -> None:
    """Beat sends only sweeps, twice a second: their task-sent events would fill a monitor's task
    list (Flower's), which is for pushes. Workers keep sending theirs."""
    app.conf.task_send_sent_event = False


@worker_init.connect
def clean_metrics(**_: object) -> None:
    """Start the worker's metrics afresh: values an earlier run left are not this run's."""
    if METRICS_DIRECTORY is not None:
        metric_files.clean(METRICS_DIRECTORY)


@worker_ready.connect
def serve_metrics(**_: object) -> None:
    """Serve /metrics from the main process once the pool's children are forked (they would
    inherit the listening socket otherwise); a port in use is logged, not fatal to the sync."""
    if METRICS_DIRECTORY is None:
        return
    settings = load_settings()
    try:
        endpoint.serve(settings, METRICS_DIRECTORY)
    except OSError as exc:
        logging.getLogger(__name__).error("cannot serve metrics on %s:%d: %s", settings.metrics_address,
                                          settings.metrics_port, exc)


@worker_process_shutdown.connect
def forget_process_metrics(pid: int, **_: object) -> None:
    """A pool child is exiting: its live gauges must stop counting, and its last counts per minute
    go to the store now (the child ends with `os._exit`, which runs no `atexit` handler)."""
    runtime.THROUGHPUT.flush()
    if METRICS_DIRECTORY is not None:
        metric_files.forget(METRICS_DIRECTORY, pid)
