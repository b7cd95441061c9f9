"""`python -m emulator`: the same server as `pushsync emulator`."""

import logging

from emulator.cli import command

LOG_FORMAT = "[%(asctime)s: %(levelname)s] %(name)s: %(message)s"
"""Alone, the emulator logs as text (under `pushsync`, it takes the format `--log-format` chose)."""

if __name__ == "__main__":
    logging.basicConfig(format=LOG_FORMAT)
    command(prog_name="python -m emulator")
