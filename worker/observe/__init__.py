"""Observing the pipeline: metrics, the status overview, liveness and probes."""
