"""A faithful local Coveo Push API: the stand-in for the service in the demo, tests and benchmarks.

It answers the routes, status codes, error bodies, limits and asynchrony of the service as
docs/push-api.md describes it, keeps its index in memory (blobs on disk), and adds an
administration and inspection API under `/_emulator/`. See docs/emulator.md.

Importing this package stays cheap: `worker.cli` imports `emulator.cli` for every command.
"""
