"""Celery configuration of the pushsync worker, derived from the typed settings.

The choices keep every accepted event safe (see docs/architecture.md, "Broker settings that no loss depends on"):
late acknowledgement with a prefetch of one, tasks re-queued when their worker process dies,
and on RabbitMQ quorum queues with publisher confirms and a delivery limit. Sweeps have a queue of
their own, `pushsync.sweep`, that the pool never takes from: each worker's main process consumes it
(`worker.sweeper`), so a sweep never waits behind the push tasks.
"""

from kombu import Exchange, Queue

from producers import broker, redis_urls
from worker.settings import load_settings
from worker.store.connection import store_url

_settings = load_settings()

# A Sentinel-watched Redis is kombu's Sentinel transport, its master's name a transport option.
_broker = redis_urls.kombu_form(_settings.broker_url or store_url(_settings))
broker_url = _broker.url
if _broker.ssl is not None:
    broker_use_ssl = _broker.ssl
broker_connection_retry_on_startup = True
# Celery gives up after 100 reconnection attempts (about 45 minutes at its 30 s cap) and the worker
# exits; a broker outage must change when, never whether, so it keeps trying.
broker_connection_max_retries = None
task_default_queue = broker.TASKS_QUEUE
SWEEP_QUEUE_NAME = "pushsync.sweep"
task_serializer = "json"
accept_content = ["json"]
result_backend = None
task_ignore_result = True

# An acknowledged task is a finished task: a worker killed mid-push leaves its message to be redelivered.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

if broker.is_amqp(broker_url):
    # A task message redelivered past the limit goes to the poison queue instead of looping;
    # the reaper then finds its batch unfinished and dead-letters it with its context.
    task_queues = [
        Queue(f"{task_default_queue}.poison", Exchange(f"{task_default_queue}.dead-letter", type="direct"),
              routing_key=f"{task_default_queue}.poison", queue_arguments={"x-queue-type": "quorum"}),
        Queue(task_default_queue, Exchange(task_default_queue), routing_key=task_default_queue, queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": _settings.task_delivery_limit,
            "x-dead-letter-exchange": f"{task_default_queue}.dead-letter",
            "x-dead-letter-routing-key": f"{task_default_queue}.poison",
        }),
    ]
    task_default_exchange = task_default_queue
    task_default_routing_key = task_default_queue
    # No dead-lettering: a sweep that keeps failing is dropped past the limit, and a newer one follows.
    sweep_queue = Queue(SWEEP_QUEUE_NAME, Exchange(SWEEP_QUEUE_NAME), routing_key=SWEEP_QUEUE_NAME, queue_arguments={
        "x-queue-type": "quorum", "x-delivery-limit": _settings.task_delivery_limit})
    worker_detect_quorum_queues = True
    broker_transport_options = {"confirm_publish": True}
else:
    # Redis redelivers an unacknowledged task after this long; every task's hold stays under it.
    broker_transport_options = {"visibility_timeout": _settings.visibility_timeout, **_broker.transport_options}
    sweep_queue = Queue(SWEEP_QUEUE_NAME, Exchange(SWEEP_QUEUE_NAME), routing_key=SWEEP_QUEUE_NAME)

# A Queue, not a name: it stays out of the queues the pool consumes (`task_queues`, the default one).
task_routes = {"pushsync.sweep": {"queue": sweep_queue}}

# The one schedule is a sweep every fraction of a second: nothing is worth keeping across beat
# restarts, so beat keeps it in memory (Celery's default writes a file into the working directory),
# and only while it holds the beat lock (a second beat exits).
beat_scheduler = "worker.scheduler:OneBeat"
beat_schedule = {
    # A sweep not started within a few periods is pointless: a newer one follows.
    "sweep-windows": {"task": "pushsync.sweep", "schedule": _settings.sweep_seconds,
                      "options": {"expires": _settings.sweep_seconds * 5}},
}

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
