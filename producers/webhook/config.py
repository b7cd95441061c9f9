"""The receiver's TOML configuration: server limits, and one table per hook under [sources.<name>].

    [server]
    max_body_bytes = 1048576
    tolerance_seconds = 300
    read_timeout_seconds = 10

    [sources.blog]                       # POST /hooks/blog
    adapter = "contentful"
    secret_env = "BLOG_SIGNING_SECRET"   # or secret = "…"
    source_id = "myorg-blog"             # the Push source; defaults to the table's name

    [sources.blog.item]                  # how an entry becomes an item
    document_id = "https://blog.example.com/{contentType}/{id}"
    title = "title"
    body = "body"
    locale = "en-US"
    metadata = { author = "author", tags = "tags" }
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from producers.errors import ConfigError
from producers.events import Permissions

ADAPTERS = ("generic", "contentful", "strapi")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""CMS payloads are small; this bounds what one request can make the receiver read."""
DEFAULT_TOLERANCE_SECONDS = 300
"""How far a signature's timestamp may be from the receiver's clock (replay window)."""
DEFAULT_PUBLISH_RETRIES = 5
"""Broker retries within one request (waits of 0, 0.2, 0.4, 0.6 and 0.8 s: twice the 0.65 s that a
RabbitMQ cluster's quorum queue took to elect a new leader after a node loss, measured); the CMS
retries the whole request after a 503."""
DEFAULT_READ_TIMEOUT_SECONDS = 10.0
"""How long a connection may take to send a request's headers, and then its body: CMS hooks are
small and sent at once, and a slow sender must not hold a connection for ever."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Table):
    """Limits that apply to every hook."""

    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)
    tolerance_seconds: int = Field(DEFAULT_TOLERANCE_SECONDS, gt=0)
    publish_retries: int = Field(DEFAULT_PUBLISH_RETRIES, ge=0)
    read_timeout_seconds: float = Field(DEFAULT_READ_TIMEOUT_SECONDS, gt=0)
    """From a connection's start or its previous answer to the end of a request's headers, and
    from there to the end of its body; past either the connection is closed."""


class ItemMapping(_Table):
    """How a CMS entry becomes a Push item."""

    document_id: str
    """Template of the item's URI, with the adapter's {placeholders} (URL-escaped when filled)."""
    title: str | None = None
    """Entry field that becomes the item's title."""
    body: str
    """Entry field that becomes the item's text content (rich text is flattened to text). Required:
    the service takes no item without content, so a hook without it could only ever refuse."""
    metadata: dict[str, str] = {}
    """Metadata name -> entry field."""
    locale: str | None = None
    """Contentful: the locale whose field values are read. Strapi: only entries in this locale."""
    file_extension: str | None = None
    permissions: Permissions | None = None
    """The contract's permission model, the same for every item of this hook; none means public."""


class HookConfig(_Table):
    """One hook: `POST /hooks/<name>`."""

    name: str
    adapter: Literal[ADAPTERS]  # type: ignore[valid-type]
    secret: SecretStr = Field(min_length=1)
    """Resolved from `secret` or from the environment variable named by `secret_env`."""
    source_id: str
    """The Push source the hook's items go to."""
    provider_id: str | None = None
    """generic: the security provider its identity events may target."""
    token_header: str = "Authorization"
    """strapi: the header carrying the token configured on the Strapi webhook."""
    include_drafts: bool = False
    """strapi: index entries saved as drafts (publishedAt null) too."""
    item: ItemMapping | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        env = data.pop("secret_env", None)
        if env is not None:
            if "secret" in data:
                raise ValueError("give secret or secret_env, not both")
            if not os.environ.get(env):
                raise ValueError(f"secret_env names {env}, which is not set")
            data["secret"] = os.environ[env]
        data.setdefault("source_id", data.get("name"))
        return data

    @model_validator(mode="after")
    def _needs_mapping(self) -> HookConfig:
        if self.adapter != "generic" and self.item is None:
            raise ValueError(f"adapter {self.adapter!r} needs an [sources.{self.name}.item] table")
        secret = self.secret_value()
        if secret != secret.strip():
            # HTTP strips the spaces around a header value, so a token with them never matches.
            raise ValueError("the secret starts or ends with whitespace (a newline from a file?); "
                             "no request could match it")
        return self

    def secret_value(self) -> str:
        """The shared secret or token; never log it."""
        return self.secret.get_secret_value()


class WebhookConfig(_Table):
    """The whole file."""

    server: ServerConfig = ServerConfig()
    sources: dict[str, HookConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("sources"), dict):
            sources = {
                name: {**table, "name": name} if isinstance(table, dict) else table
                for name, table in data["sources"].items()
            }
            data = {**data, "sources": sources}
        return data


def load_config(path: Path) -> WebhookConfig:
    """Read and validate the configuration file; raise ConfigError naming the file and each bad setting."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the webhook configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, origin=str(path))


def parse_config(raw: dict[str, Any], *, origin: str = "webhook configuration") -> WebhookConfig:
    """Validate an already decoded configuration; `origin` names it in errors."""
    try:
        return WebhookConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(f"{origin}:\n  " + "\n  ".join(problems)) from None
