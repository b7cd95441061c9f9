"""The Celery application: configuration from `celeryconfig`, ingestion as a consumer bootstep."""

from __future__ import annotations

from celery import Celery

from worker.ingest import IngestStep

app = Celery("pushsync")
app.config_from_object("celeryconfig")
app.steps["consumer"].add(IngestStep)
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
