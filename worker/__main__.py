"""`python -m worker` runs the `pushsync` command line."""

from worker.cli import run

run()
