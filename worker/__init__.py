"""pushsync worker: the Celery app, its tasks and everything they call."""
