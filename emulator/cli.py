"""`pushsync emulator` (also `python -m emulator`): serve the local Push API over HTTP.

Only click is imported at module level: `worker.cli` imports this module for every command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from emulator.config import EmulatorConfig, Limits
from emulator.defaults import DEFAULT_API_KEY, DEFAULT_HOST, DEFAULT_ORGANIZATION, DEFAULT_PORT
from emulator.paths import PUSH_PREFIX

ENV_PREFIX = "PUSHSYNC_EMULATOR_"
DEFAULT_KEEP_ALIVE_SECONDS = 5.0
"""uvicorn's own default."""
_DEFAULT_LIMITS = Limits()


def _option(*names: str, **kwargs: object):  # noqa: ANN202 - a click decorator
    """A click option also read from PUSHSYNC_EMULATOR_<NAME>."""
    variable = ENV_PREFIX + names[0].lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("show_default", True)
    return click.option(*names, envvar=variable, show_envvar=True, **kwargs)  # type: ignore[arg-type]


@click.command(name="emulator")
@_option("--host", default=DEFAULT_HOST, help="Interface to listen on.")
@_option("--port", default=DEFAULT_PORT, type=click.IntRange(0, 65535), help="Port to listen on.")
@_option("--organization", default=DEFAULT_ORGANIZATION, help="Organization id that exists from the start.")
@_option("--api-key", default=DEFAULT_API_KEY, show_default=False, help="The Bearer key the Push API accepts.")
@_option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
         help="Blob directory [default: a temporary one].")
@_option("--apply-delay", default=_DEFAULT_LIMITS.apply_delay, type=click.FloatRange(0),
         help="Seconds between a 202 and the change in the index.")
@_option("--container-limit", default=_DEFAULT_LIMITS.container_limit_bytes, type=click.IntRange(1),
         help="Largest container upload, in bytes (413 past it).")
@_option("--item-allowance", type=click.IntRange(0), help="Items the organization may hold (412 at it).")
@_option("--daily-request-limit", type=click.IntRange(0), help="Push API calls per day (429 past it).")
@_option("--daily-document-limit", type=click.IntRange(0), help="Items pushed per day (429 past it).")
@_option("--keep-alive", default=DEFAULT_KEEP_ALIVE_SECONDS, type=click.FloatRange(0, min_open=True),
         help="Seconds an idle connection is kept open for the client's next request.")
@_option("--source", "sources", multiple=True, help="Create this Push source at start-up (repeatable).")
@_option("--provider", "providers", multiple=True, help="Create this identity provider at start-up (repeatable).")
@_option("--strict-provider", "strict_providers", multiple=True,
         help="Create a provider that rejects items naming unknown identities (repeatable).")
def command(host: str, port: int, organization: str, api_key: str, data_dir: Path | None, apply_delay: float,
            container_limit: int, item_allowance: int | None, daily_request_limit: int | None,
            daily_document_limit: int | None, keep_alive: float, sources: tuple[str, ...], providers: tuple[str, ...],
            strict_providers: tuple[str, ...]) -> None:
    """Run a local Coveo Push API: same routes, errors, limits and asynchrony, plus /_emulator/."""
    import uvicorn

    from emulator.app import create_app

    limits = Limits(apply_delay, container_limit, item_allowance, daily_request_limit, daily_document_limit)
    with tempfile.TemporaryDirectory(prefix="pushsync-emulator-") as scratch:
        config = EmulatorConfig(
            data_dir=data_dir or Path(scratch), organization=organization, api_key=api_key, limits=limits,
            sources=sources, providers=providers, strict_providers=strict_providers,
        )
        click.echo(f"pushsync emulator: http://{host}:{port}{PUSH_PREFIX} (organization {organization!r})", err=True)
        # log_config=None keeps the logging `pushsync --log-format` configured (JSON or text).
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False, log_config=None,
                    timeout_keep_alive=keep_alive)
