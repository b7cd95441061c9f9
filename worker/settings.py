"""Every setting of pushsync, read from the environment in one typed place.

`load_settings()` validates the whole environment at start-up and raises `SettingsError`
naming each bad variable and the form it expects, so a typo never surfaces mid-push.
"""

from __future__ import annotations

import enum
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from emulator.defaults import DEFAULT_API_KEY, DEFAULT_ORGANIZATION, DEFAULT_PLATFORM_URL, DEFAULT_PUSH_URL
from producers import redis_urls
from producers.broker import NOT_A_CLUSTER, UNREADABLE_HINT, checked_urls, list_element
from producers.events.limits import CONTAINER_LIMIT_BYTES, MIB
from worker import redaction

LOCAL_PUSH_URL = DEFAULT_PUSH_URL
"""The local emulator, used when neither a region nor a base URL is given."""
LOCAL_PLATFORM_URL = DEFAULT_PLATFORM_URL

REGION_HOSTS = {
    "us": "https://api.cloud.coveo.com/push/v1",
    "ca": "https://api-ca.cloud.coveo.com/push/v1",
    "eu": "https://api-eu.cloud.coveo.com/push/v1",
    "au": "https://api-au.cloud.coveo.com/push/v1",
    "hipaa": "https://apihipaa.cloud.coveo.com/push/v1",
}
PLATFORM_HOSTS = {
    "us": "https://platform.cloud.coveo.com/rest",
    "ca": "https://platform-ca.cloud.coveo.com/rest",
    "eu": "https://platform-eu.cloud.coveo.com/rest",
    "au": "https://platform-au.cloud.coveo.com/rest",
    "hipaa": "https://platformhipaa.cloud.coveo.com/rest",
}
"""The Platform API of each region, where `pushsync check` reads sources and providers."""


class BurstStatus(str, enum.Enum):
    """The source status that opens a burst of incremental work."""

    REFRESH = "REFRESH"
    INCREMENTAL = "INCREMENTAL"


class LogFormat(str, enum.Enum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


LOG_FORMAT_VARIABLE = "PUSHSYNC_LOG_FORMAT"
"""The variable `pushsync --log-format` sets for its own process and for the children it starts."""


STORE_SCHEMES = redis_urls.STORE_SCHEMES
"""What REDIS_URL may name: Redis over TCP, TLS or a Unix socket, a Sentinel-watched primary, a Cluster."""
BROKER_SCHEMES = ("redis", "rediss", *redis_urls.SENTINEL_SCHEMES, "amqp", "amqps", "pyamqp")
"""What BROKER_URL may name: a Redis broker (one server, or a Sentinel-watched primary), or RabbitMQ (kombu's
spellings)."""
HTTP_SCHEMES = ("http", "https")
PUSH_API_ROOT = "/push/v1"
PLATFORM_API_ROOT = "/rest"
ORGANIZATION_ID = re.compile(r"[A-Za-z0-9_-]+")
CONSOLE_TOKEN_MIN_CHARS = 16
"""Shortest console token taken: one that can be guessed protects nothing."""


class SettingsError(ValueError):
    """The environment holds a setting pushsync cannot use; the message names the variable."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def _checked_url(value: str, schemes: tuple[str, ...], *, database: bool = False) -> str:
    """`value` when it is a URL of one of `schemes` with a usable host and port and (when `database`, for
    Redis: every form `producers.redis_urls` reads) database number; else ValueError saying what is wrong,
    without repeating the URL (it may hold a password)."""
    text = value.strip()
    if database and text.partition("://")[0].lower() in set(schemes) & set(redis_urls.STORE_SCHEMES):
        # redis_urls reads every Redis form itself; urlsplit would quote a bracketed part of a password.
        redis_urls.parse(value)
        return value
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"the URL cannot be read: {UNREADABLE_HINT}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        given = f"{scheme}://" if scheme and "://" in value else "no scheme"
        raise ValueError(f"expected a URL starting with {', '.join(s + '://' for s in schemes)}; got {given}")
    redis_urls.check_host(parts, scheme)
    return value


def _checked_broker_urls(value: str) -> str:
    """`value` when it is one broker URL, or kombu's failover list of a RabbitMQ cluster's nodes
    (`amqp://…;amqp://…`) each usable and of the same transport; else ValueError naming the bad one."""
    urls = checked_urls(value)
    for n, url in enumerate(urls, 1):
        try:
            _checked_url(url, BROKER_SCHEMES, database=True)
        except ValueError as exc:
            if len(urls) == 1:
                raise
            raise ValueError(f"{list_element(urls, n)}: {exc}") from None
    return value


def _api_root(value: str | None, api: str, root: str, example: str) -> str | None:
    """`value` when it is an http(s) URL ending in `root`, the `api`'s base (as in `example`)."""
    if value is None:
        return None
    _checked_url(value, HTTP_SCHEMES)
    if not urlsplit(value).path.rstrip("/").endswith(root):
        raise ValueError(f"expected the {api} API root, ending in {root} (as in {example}): every call would miss otherwise")
    return value


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def the_broker(redis_url: str | None, broker_url: str | None) -> str | None:
    """The broker of a store at `redis_url` given BROKER_URL `broker_url`: that one, else the store itself,
    which a Redis Cluster cannot be (ValueError, in one line)."""
    if broker_url:
        return broker_url
    if redis_url and redis_urls.parse(redis_url).topology is redis_urls.Topology.CLUSTER:
        raise ValueError(f"BROKER_URL: not set, and the store is a Redis Cluster: {NOT_A_CLUSTER}")
    return redis_url


class Settings(BaseSettings):
    """The validated configuration of one pushsync process."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    organization_id: str = Field(
        DEFAULT_ORGANIZATION, validation_alias=_env("COVEO_ORGANIZATION_ID"), description="Coveo organization id.",
    )
    api_key: SecretStr = Field(
        SecretStr(DEFAULT_API_KEY), validation_alias=_env("COVEO_API_KEY"), min_length=1,
        description="Push API key; never logged.",
    )
    region: str | None = Field(
        None, validation_alias=_env("COVEO_REGION"), description="Coveo region: us, ca, eu, au or hipaa.",
    )
    push_url: str | None = Field(
        None, validation_alias=_env("COVEO_PUSH_URL"),
        description="Explicit Push API base URL ending in /push/v1 (emulator, proxy).",
    )
    platform_url: str | None = Field(
        None, validation_alias=_env("COVEO_PLATFORM_URL"),
        description="Explicit Platform API base URL ending in /rest, where `pushsync check` reads sources and providers.",
    )
    redis_url: str | None = Field(
        None, validation_alias=_env("REDIS_URL"), description="Coalescing store; unset means embedded Redis.",
    )
    broker_url: str | None = Field(
        None, validation_alias=_env("BROKER_URL"),
        description="Celery broker (a RabbitMQ cluster as its nodes' URLs joined by `;`); unset means the Redis store.",
    )
    store_min_replicas: int = Field(
        0, ge=0, le=16, validation_alias=_env("PUSHSYNC_STORE_MIN_REPLICAS"),
        description="Replicas of the store that must confirm (Redis WAIT) what a step wrote before it is acknowledged; "
                    "0 confirms nothing.",
    )
    window_seconds: float = Field(
        5.0, gt=0, le=3600, validation_alias=_env("PUSHSYNC_WINDOW_SECONDS"),
        description="How long a source's window stays open after its first event.",
    )
    first_window_seconds: float = Field(
        0.5, ge=0, le=3600, validation_alias=_env("PUSHSYNC_FIRST_WINDOW_SECONDS"),
        description="How long the window of a quiet target (its last batch claimed a whole window ago, or never) "
                    "stays open, at most its window; a target still gets at most one batch per window.",
    )
    source_windows: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("PUSHSYNC_SOURCE_WINDOWS"),
        description="Per-target window seconds overriding the default, as `source-a=2,source-b=30`.",
    )
    window_max_items: int = Field(
        100_000, gt=0, validation_alias=_env("PUSHSYNC_WINDOW_MAX_ITEMS"),
        description="Item count that closes a window early.",
    )
    window_max_bytes: int = Field(
        200 * MIB, gt=0, validation_alias=_env("PUSHSYNC_WINDOW_MAX_BYTES"),
        description="Buffered bytes that close a window early.",
    )
    rebuild_window_max_bytes: int = Field(
        1024 * MIB, ge=MIB, validation_alias=_env("PUSHSYNC_REBUILD_WINDOW_MAX_BYTES"),
        description="Most event bytes the window of a `pushsync rebuild` run holds before it closes "
                    "(Redis holds up to about twice this while the run feeds).",
    )
    container_max_bytes: int = Field(
        CONTAINER_LIMIT_BYTES, ge=MIB, le=CONTAINER_LIMIT_BYTES, validation_alias=_env("PUSHSYNC_CONTAINER_MAX_BYTES"),
        description="Largest batch file written to one container (at most 256 MiB).",
    )
    compress_data: bool = Field(
        True, validation_alias=_env("PUSHSYNC_COMPRESS_DATA"),
        description="Send an item's `data` as ZLIB `compressedBinaryData` when it has a fileExtension and shrinks.",
    )
    connect_timeout: float = Field(
        10.0, gt=0, validation_alias=_env("PUSHSYNC_CONNECT_TIMEOUT"),
        description="Seconds to open a connection (a Push API call's: at most an eighth of the lease).",
    )
    read_timeout: float = Field(
        120.0, gt=0, validation_alias=_env("PUSHSYNC_READ_TIMEOUT"), description="Seconds to wait for an answer.",
    )
    retry_budget_seconds: float = Field(
        600.0, gt=0, validation_alias=_env("PUSHSYNC_RETRY_BUDGET_SECONDS"),
        description="Total time one call may spend retrying; keep under the broker's redelivery timeout.",
    )
    visibility_timeout: int = Field(
        3600, ge=60, validation_alias=_env("PUSHSYNC_VISIBILITY_TIMEOUT"),
        description="Seconds before Redis redelivers an unacknowledged task; every task hold stays under it.",
    )
    task_delivery_limit: int = Field(
        10, ge=2, validation_alias=_env("PUSHSYNC_TASK_DELIVERY_LIMIT"),
        description="Deliveries of one task message before RabbitMQ sets it aside as poison.",
    )
    events_claim_seconds: float = Field(
        30.0, ge=0.5, le=3600, validation_alias=_env("PUSHSYNC_EVENTS_CLAIM_SECONDS"),
        description="Redis broker: how long a message held by a silent worker waits before a living one takes it over.",
    )
    sweep_seconds: float = Field(
        0.5, gt=0, le=60, validation_alias=_env("PUSHSYNC_SWEEP_SECONDS"),
        description="How often beat sweeps windows whose time is up (a window waits up to this long past its end).",
    )
    lease_seconds: float = Field(
        20.0, ge=1, le=600, validation_alias=_env("PUSHSYNC_LEASE_SECONDS"),
        description="Life of a batch's lease; a task renews it while it pushes, a dead one lets it expire. Each "
                    "Push API request must connect, then be acknowledged, within an eighth of it.",
    )
    reap_after_seconds: float = Field(
        30.0, ge=1, validation_alias=_env("PUSHSYNC_REAP_AFTER_SECONDS"),
        description="How long a claimed batch may go without a lease holder before it is enqueued again.",
    )
    reap_max_seconds: float = Field(
        600.0, ge=1, validation_alias=_env("PUSHSYNC_REAP_MAX_SECONDS"),
        description="Longest wait before a batch whose push task never started is enqueued again (the waits double).",
    )
    burst_status: BurstStatus = Field(
        BurstStatus.REFRESH, validation_alias=_env("PUSHSYNC_BURST_STATUS"),
        description="Status that opens a burst: REFRESH or INCREMENTAL.",
    )
    idle_after_seconds: float = Field(
        10.0, ge=0, validation_alias=_env("PUSHSYNC_IDLE_AFTER_SECONDS"),
        description="Quiet seconds (nothing buffered or in flight) before a source is set IDLE.",
    )
    queue_seconds: float = Field(
        1.0, ge=0, le=3600, validation_alias=_env("PUSHSYNC_QUEUE_SECONDS"),
        description="Seconds of pushes, at the rate the pools finish them, that the sweeps claim ahead (at least "
                    "16 batches per pool process); past it, due windows stay open and keep filling, so a load the "
                    "pools cannot keep up with makes fewer, larger batches instead of a growing queue; 0: no bound.",
    )
    single_call_max_items: int = Field(
        2, ge=0, le=100, validation_alias=_env("PUSHSYNC_SINGLE_CALL_MAX_ITEMS"),
        description="Batches of at most this many items or identities go by single-item calls, one call each, "
                    "instead of a file container, its upload and a batch call; 0: always containers.",
    )
    pause_seconds: float = Field(
        3600.0, gt=0, validation_alias=_env("PUSHSYNC_PAUSE_SECONDS"),
        description="How long a target stays paused after a quota or item-limit answer that gives no "
                    "Retry-After; then one item probes whether the service takes items again.",
    )
    auth_pause_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("PUSHSYNC_AUTH_PAUSE_SECONDS"),
        description="How long pushing stops after a 401/403 or a paused organization before one item probes again.",
    )
    high_water_ttl_seconds: int = Field(
        7 * 24 * 3600, gt=0, validation_alias=_env("PUSHSYNC_HIGH_WATER_TTL_SECONDS"),
        description="How long the newest pushed version of an item is remembered to drop older events.",
    )
    clock_skew_seconds: float = Field(
        3600.0, ge=0, validation_alias=_env("PUSHSYNC_CLOCK_SKEW_SECONDS"),
        description="How far a producer's clock (an event's occurredAt) may be off the workers' clocks.",
    )
    ordering_horizon_seconds: float | None = Field(
        None, gt=0, validation_alias=_env("PUSHSYNC_ORDERING_HORIZON_SECONDS"),
        description="Events older than this (by occurredAt) are quarantined: pushsync can no longer order them "
                    "(default: the high-water TTL minus the clock skew).",
    )
    run_timeout_seconds: float = Field(
        3600.0, gt=0, validation_alias=_env("PUSHSYNC_RUN_TIMEOUT_SECONDS"),
        description="How long after its rebuild.end a broker-started full run may take to arrive and be pushed.",
    )
    run_poll_seconds: float = Field(
        2.0, gt=0, validation_alias=_env("PUSHSYNC_RUN_POLL_SECONDS"),
        description="How often the sweep looks again at a broker-started full run that ended but is not concluded.",
    )
    max_push_attempts: int = Field(
        5, ge=1, validation_alias=_env("PUSHSYNC_MAX_PUSH_ATTEMPTS"),
        description="Times a batch's push task may die mid-push (pauses never count); the next delivery dead-letters it.",
    )
    source_providers: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("PUSHSYNC_SOURCE_PROVIDERS"),
        description="Security providers whose identities a source's items name, as `src=prov-a|prov-b,src2=prov-c`.",
    )
    protected_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("PUSHSYNC_PROTECTED_SOURCES"),
        description="Comma-separated source ids pushsync must never call (Crawling Module, Coveo for Sitecore).",
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, validation_alias=_env("PUSHSYNC_METRICS_PORT"),
        description="Port on which a worker serves its Prometheus metrics at /metrics; 0 serves none.",
    )
    metrics_address: str = Field(
        "0.0.0.0", min_length=1, validation_alias=_env("PUSHSYNC_METRICS_ADDRESS"),
        description="Interface the metrics endpoint listens on.",
    )
    metrics_dir: Path | None = Field(
        None, validation_alias=_env("PUSHSYNC_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR"),
        description="Where a worker's processes keep metric values for its endpoint: a directory of this user that "
                    "nobody else may write (default: a private one made for each run).",
    )
    console_token: SecretStr | None = Field(
        None, validation_alias=_env("PUSHSYNC_CONSOLE_TOKEN"),
        description="Token `pushsync console` requires for replays and purges (default: a new one printed at start).",
    )

    log_format: LogFormat = Field(
        LogFormat.TEXT, validation_alias=_env(LOG_FORMAT_VARIABLE),
        description="Log lines as readable text or as one JSON object each: text or json.",
    )

    _split_protected = field_validator("protected_sources", mode="before")(_split_csv)

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("source_windows", mode="before")
    @classmethod
    def _parse_windows(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        windows = {}
        for pair in _split_csv(value):
            name, sep, seconds = pair.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"expected id=seconds pairs separated by commas, got {pair!r}")
            windows[name.strip()] = seconds.strip()
        return windows

    @field_validator("source_providers", mode="before")
    @classmethod
    def _parse_links(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        links = {}
        for pair in _split_csv(value):
            source, sep, providers = pair.partition("=")
            names = [name.strip() for name in providers.split("|") if name.strip()]
            if not sep or not source.strip() or not names:
                raise ValueError(f"expected source=provider|provider pairs separated by commas, got {pair!r}")
            links[source.strip()] = names
        return links

    @field_validator("source_windows")
    @classmethod
    def _positive_windows(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if not 0 < seconds <= 3600:
                raise ValueError(f"window of {name!r} must be between 0 and 3600 seconds")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = value.strip().lower()
        if region not in REGION_HOSTS:
            raise ValueError(f"expected one of {', '.join(REGION_HOSTS)}")
        return region

    @field_validator("organization_id")
    @classmethod
    def _organization_form(cls, value: str) -> str:
        if not ORGANIZATION_ID.fullmatch(value):
            shown = "nothing" if not value else "other characters"
            raise ValueError(f"expected the organization's id (letters, digits, '-' and '_'), got {shown}")
        return value

    @field_validator("region", "push_url", "platform_url", "redis_url", "broker_url", "console_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("console_token")
    @classmethod
    def _guessable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < CONSOLE_TOKEN_MIN_CHARS:
            raise ValueError(f"expected at least {CONSOLE_TOKEN_MIN_CHARS} characters")
        return value

    @field_validator("redis_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        return None if value is None else _checked_url(value, STORE_SCHEMES, database=True)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        return None if value is None else _checked_broker_urls(value)

    @field_validator("push_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        return _api_root(value, "Push", PUSH_API_ROOT, REGION_HOSTS["us"])

    @field_validator("platform_url")
    @classmethod
    def _platform_url(cls, value: str | None) -> str | None:
        return _api_root(value, "Platform", PLATFORM_API_ROOT, PLATFORM_HOSTS["us"])

    @model_validator(mode="after")
    def _one_endpoint(self) -> "Settings":
        if self.region and (self.push_url or self.platform_url):
            given = "COVEO_PUSH_URL" if self.push_url else "COVEO_PLATFORM_URL"
            raise ValueError(f"COVEO_REGION and {given} both set: give one of them")
        the_broker(self.redis_url, self.broker_url)
        if self.reap_after_seconds <= self.lease_seconds:
            raise ValueError("PUSHSYNC_REAP_AFTER_SECONDS must be longer than PUSHSYNC_LEASE_SECONDS")
        if self.reap_max_seconds < self.reap_after_seconds:
            raise ValueError("PUSHSYNC_REAP_MAX_SECONDS must be at least PUSHSYNC_REAP_AFTER_SECONDS")
        if self.horizon_seconds + self.clock_skew_seconds > self.high_water_ttl_seconds or self.horizon_seconds <= 0:
            raise ValueError(
                "PUSHSYNC_ORDERING_HORIZON_SECONDS plus PUSHSYNC_CLOCK_SKEW_SECONDS must be positive and at most "
                "PUSHSYNC_HIGH_WATER_TTL_SECONDS: an event is only accepted while the high-water mark that orders it "
                "is sure to be remembered"
            )
        if self.retry_budget_seconds * 2 > self.visibility_timeout:
            raise ValueError(
                "PUSHSYNC_RETRY_BUDGET_SECONDS must be at most half of PUSHSYNC_VISIBILITY_TIMEOUT, "
                "so a task that retries is never redelivered to a second worker"
            )
        return self

    def providers_of(self, source_id: str) -> list[str]:
        """The security providers whose identities must be pushed before `source_id`'s items."""
        return self.source_providers.get(source_id, [])

    def window_for(self, target_id: str) -> float:
        """Seconds a window of `target_id` stays open after its first event."""
        return self.source_windows.get(target_id, self.window_seconds)

    def first_window_for(self, target_id: str) -> float:
        """Seconds a window of `target_id` stays open when the target was quiet for a window before it."""
        return min(self.first_window_seconds, self.window_for(target_id))

    def window_due(self, target_id: str, opened_at: float, since_claim: float | None) -> float:
        """When a window of `target_id` that opened at `opened_at` is due: after the first window if the
        target's last claim came `since_claim` seconds or more before (None: never), else after the window."""
        window = self.window_for(target_id)
        quiet = since_claim is None or since_claim >= window
        return opened_at + (self.first_window_for(target_id) if quiet else window)

    @property
    def horizon_seconds(self) -> float:
        """The ordering horizon (invariant 11): the oldest an event may be, by its occurredAt, to be accepted."""
        if self.ordering_horizon_seconds is not None:
            return self.ordering_horizon_seconds
        return self.high_water_ttl_seconds - self.clock_skew_seconds

    @cached_property
    def push_base_url(self) -> str:
        """The Push API base URL, without the organization part."""
        if self.push_url:
            return self.push_url.rstrip("/")
        if self.region:
            return REGION_HOSTS[self.region]
        return LOCAL_PUSH_URL

    @cached_property
    def platform_base_url(self) -> str | None:
        """The Platform API base URL, without the organization part; None when only an explicit
        COVEO_PUSH_URL was given (a proxy's Platform API address cannot be guessed)."""
        if self.platform_url:
            return self.platform_url.rstrip("/")
        if self.region:
            return PLATFORM_HOSTS[self.region]
        return None if self.push_url else LOCAL_PLATFORM_URL


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; `overrides` win over it (tests, CLI options).

    The secrets the settings hold are registered for redaction before anything can log them.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    redaction.register(settings.api_key.get_secret_value())
    redaction.register_url(settings.redis_url)
    redaction.register_url(settings.broker_url)
    redaction.register_url(settings.push_url)
    redaction.register_url(settings.platform_url)
    if settings.console_token is not None:
        redaction.register(settings.console_token.get_secret_value())
    return settings


def _describe(exc: ValidationError) -> str:
    """One line: each variable that is wrong, and what it should be."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = error["loc"][0] if error["loc"] else None
        name = _variable_name(str(field)) if field else "settings"
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return ("invalid setting " if len(problems) == 1 else "invalid settings: ") + "; ".join(problems)


def _variable_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field
