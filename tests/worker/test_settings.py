"""Settings are read from the environment once and refuse bad values by variable name."""

from __future__ import annotations

import os
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
        ("COVEO_ORGANIZATION_ID", "my org!", "COVEO_ORGANIZATION_ID: expected the organization's id (letters, digits"),
        ("COVEO_ORGANIZATION_ID", "", "COVEO_ORGANIZATION_ID: expected the organization's id (letters, digits, '-' "
                                      "and '_'), got nothing"),
        ("REDIS_URL", "http://cache:6379", "REDIS_URL: expected a URL starting with redis://, rediss://, unix://, "
                                           "redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster://; "
                                           "got http://"),
        ("REDIS_URL", "redis://cache:notaport/0", "REDIS_URL: the port must be a number from 1 to 65535"),
        ("REDIS_URL", "redis://cache:6379/zero", "REDIS_URL: the path must be a database number"),
        ("REDIS_URL", "redis:///0", "REDIS_URL: expected a host after redis://"),
        ("BROKER_URL", "rabbit://guest@mq:5672//", "BROKER_URL: expected a URL starting with redis://, rediss://, redis+sentinel://, "
                                                   "rediss+sentinel://, amqp://, amqps://, pyamqp://; got rabbit://"),
        ("COVEO_PUSH_URL", "http://proxy:8080", "COVEO_PUSH_URL: expected the Push API root, ending in /push/v1"),
        ("COVEO_PUSH_URL", "proxy:8080/push/v1", "COVEO_PUSH_URL: expected a URL starting with http://, https://"),
        ("COVEO_API_KEY", "", "COVEO_API_KEY: Value should have at least 1 item"),
        ("PUSHSYNC_BURST_STATUS", "RESCAN", "PUSHSYNC_BURST_STATUS: Input should be 'REFRESH' or 'INCREMENTAL'"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_bad_setting_is_one_line_that_keeps_a_password_out(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2-secret@cache:port/0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "\n" not in str(caught.value) and "hunter2-secret" not in str(caught.value)


def test_several_bad_settings_are_named_on_one_line(monkeypatch):
    monkeypatch.setenv("COVEO_REGION", "usa")
    monkeypatch.setenv("PUSHSYNC_WINDOW_SECONDS", "soon")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and "COVEO_REGION:" in message and "PUSHSYNC_WINDOW_SECONDS:" in message


@pytest.mark.parametrize("variable", ["REDIS_URL", "BROKER_URL", "COVEO_PUSH_URL", "COVEO_REGION"])
def test_an_empty_optional_variable_means_unset(monkeypatch, variable):
    monkeypatch.setenv(variable, " ")
    settings = load_settings()
    assert (settings.redis_url, settings.broker_url, settings.push_url, settings.region) == (None, None, None, None)


@pytest.mark.parametrize("good", ["redis://cache:6379/0", "rediss://:pw@cache:6380", "unix:///run/redis.sock?db=2",
                                  "redis://[::1]:6379/1"])
def test_every_form_of_store_url_a_server_takes_is_accepted(monkeypatch, good):
    monkeypatch.setenv("REDIS_URL", good)
    assert load_settings().redis_url == good


@pytest.mark.process
@pytest.mark.parametrize(("role", "variables", "expected"), [
    ("worker", {"COVEO_REGION": "usa", "REDIS_URL": "redis://127.0.0.1:1/0"},
     "pushsync: invalid setting COVEO_REGION: expected one of us, ca, eu, au, hipaa"),
    ("beat", {}, "pushsync: REDIS_URL: not set. Point it at a Redis server"),
])
def test_worker_and_beat_report_a_bad_setting_in_one_line_before_celery_starts(role, variables, expected):
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES} | variables
    done = subprocess.run([sys.executable, "-m", "worker", role], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


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


def test_a_cluster_store_needs_a_broker_of_its_own():
    store = "redis+cluster://h1:7000,h2:7001"
    with pytest.raises(SettingsError, match="BROKER_URL: not set, and the store is a Redis Cluster: a Redis Cluster cannot be the broker"):
        load_settings(redis_url=store)
    assert load_settings(redis_url=store, broker_url="redis://broker:6379/1").redis_url == store
    assert load_settings(redis_url=store, broker_url="redis+sentinel://s1,s2/mymaster/1").broker_url


def test_a_sentinel_store_is_the_broker_through_kombus_sentinel_transport():
    from producers.redis_urls import kombu_form

    store = "redis+sentinel://:p%40ss@s1:26379,[::1]:26380/mymaster/2"
    assert load_settings(redis_url=store).broker_url is None
    assert kombu_form(store) == ("sentinel://:p%40ss@s1:26379/2;sentinel://:p%40ss@[::1]:26380/2",
                                 {"master_name": "mymaster"}, None)
    assert kombu_form("redis://h:6379/1") == ("redis://h:6379/1", {}, None)


def test_a_sentinel_store_over_tls_is_the_broker_over_tls_to_the_sentinels_and_the_primary():
    from producers.redis_urls import kombu_form

    store = "rediss+sentinel://s1:26379,s2/mymaster/2?ssl_ca_certs=/etc/pushsync/ca.pem&ssl_check_hostname=false"
    assert load_settings(redis_url=store).broker_url is None
    assert kombu_form(store) == (
        "sentinel://s1:26379/2;sentinel://s2:26379/2",
        {"master_name": "mymaster",
         "sentinel_kwargs": {"ssl": True, "ssl_ca_certs": "/etc/pushsync/ca.pem", "ssl_check_hostname": False}},
        {"ssl_cert_reqs": "required", "ssl_ca_certs": "/etc/pushsync/ca.pem", "ssl_check_hostname": False})


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h1:26379", "REDIS_URL: expected the master's name after the Sentinel hosts"),
    ("redis+cluster://h1:7000/3", "REDIS_URL: a Redis Cluster has only database 0"),
])
def test_malformed_topology_urls_name_the_variable(url, says):
    with pytest.raises(SettingsError, match=says):
        load_settings(redis_url=url, broker_url="redis://broker:6379/1")



def test_store_min_replicas_defaults_to_none():
    assert load_settings().store_min_replicas == 0
    assert load_settings(store_min_replicas=1, redis_url="redis+cluster://h1:7000",
                         broker_url="redis://b:6379/1").store_min_replicas == 1
    with pytest.raises(SettingsError, match="PUSHSYNC_STORE_MIN_REPLICAS"):
        load_settings(store_min_replicas=-1)
