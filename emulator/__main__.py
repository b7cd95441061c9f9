"""`python -m emulator`: the same server as `pushsync emulator`."""

from emulator.cli import command

if __name__ == "__main__":
    command(prog_name="python -m emulator")
