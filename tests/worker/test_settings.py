"""Settings are read from the environment once and refuse bad values by variable name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.runtime import push_api_client
from worker.settings import LOCAL_PUSH_URL, REGION_HOSTS, SettingsError, load_settings

VARIABLES = ("COVEO_ORGANIZATION_ID", "COVEO_API_KEY", "COVEO_REGION", "COVEO_PUSH_URL", "REDIS_URL", "BROKER_URL",
             "PUSHSYNC_WINDOW_SECONDS", "PUSHSYNC_CONTAINER_MAX_BYTES", "PUSHSYNC_PROTECTED_SOURCES", "PUSHSYNC_BURST_STATUS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_suit_local_use():
    settings = load_settings()
    assert settings.push_base_url == LOCAL_PUSH_URL
    assert settings.window_seconds == 5.0 and settings.container_max_bytes == 256 * 1024 * 1024
    assert settings.redis_url is None and settings.broker_url is None


@pytest.mark.parametrize("region", list(REGION_HOSTS))
def test_regions(monkeypatch, region):
    monkeypatch.setenv("COVEO_REGION", region.upper())
    assert load_settings().push_base_url == REGION_HOSTS[region]


def test_explicit_base_url_and_client(monkeypatch):
    monkeypatch.setenv("COVEO_PUSH_URL", "http://proxy.internal:8080/push/v1/")
    monkeypatch.setenv("COVEO_ORGANIZATION_ID", "myorg")
    client = push_api_client(load_settings())
    assert client.organization_url == "http://proxy.internal:8080/push/v1/organizations/myorg"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("COVEO_REGION", "mars", "COVEO_REGION: expected one of us, ca, eu, au, hipaa"),
        ("PUSHSYNC_WINDOW_SECONDS", "soon", "PUSHSYNC_WINDOW_SECONDS: Input should be a valid number"),
        ("PUSHSYNC_WINDOW_SECONDS", "-1", "PUSHSYNC_WINDOW_SECONDS: Input should be greater than 0"),
        ("PUSHSYNC_CONTAINER_MAX_BYTES", str(300 * 1024 * 1024), "PUSHSYNC_CONTAINER_MAX_BYTES: Input should be less"),
        ("REDIS_URL", "localhost", "REDIS_URL: expected a URL"),
        ("COVEO_ORGANIZATION_ID", "my org!", "COVEO_ORGANIZATION_ID: String should match pattern"),
        ("COVEO_API_KEY", "", "COVEO_API_KEY: Value should have at least 1 item"),
        ("PUSHSYNC_BURST_STATUS", "RESCAN", "PUSHSYNC_BURST_STATUS: Input should be 'REFRESH' or 'INCREMENTAL'"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_region_and_url_together_are_refused(monkeypatch):
    monkeypatch.setenv("COVEO_REGION", "eu")
    monkeypatch.setenv("COVEO_PUSH_URL", "http://127.0.0.1:1/push/v1")
    with pytest.raises(SettingsError, match="give one of them"):
        load_settings()


def test_protected_sources_list(monkeypatch):
    monkeypatch.setenv("PUSHSYNC_PROTECTED_SOURCES", "crawler-src, sitecore-src,")
    assert load_settings().protected_sources == ["crawler-src", "sitecore-src"]


def test_api_key_is_hidden_in_repr(monkeypatch):
    monkeypatch.setenv("COVEO_API_KEY", "very-secret-key")
    settings = load_settings()
    assert "very-secret-key" not in repr(settings) and "very-secret-key" not in str(settings.model_dump())


@pytest.mark.process
def test_cli_version_and_help():
    version = subprocess.run([sys.executable, "-m", "worker", "version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("pushsync ")
    usage = subprocess.run([sys.executable, "-m", "worker", "--help"], capture_output=True, text=True, check=True)
    assert "version" in usage.stdout
