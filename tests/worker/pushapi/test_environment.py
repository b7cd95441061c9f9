"""What the client takes from its environment: the proxies (HTTP_PROXY, NO_PROXY, ...), which a
deployment behind a proxy needs, and never a netrc login, which would replace the API key."""

from __future__ import annotations

from tests.worker.pushapi.conftest import API_KEY, ORGANIZATION
from worker.pushapi.client import PushApiClient

UNRESOLVABLE_PUSH_URL = "http://push.pushsync-test.invalid/push/v1"


def test_a_netrc_login_for_the_push_apis_host_never_replaces_the_key(server, client, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password curl-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client.set_source_status("src", "REFRESH")
    (status_call,) = server.matching("POST", r"/status$")
    assert status_call.headers["Authorization"] == f"Bearer {API_KEY}"


def test_the_proxy_the_environment_names_carries_the_calls_and_no_proxy_is_honoured(server, waits, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("NO_PROXY", "")
    proxied = PushApiClient(base_url=UNRESOLVABLE_PUSH_URL, organization_id=ORGANIZATION, api_key=API_KEY,
                            connect_timeout=2, read_timeout=2, retry_budget_seconds=30, sleep=waits)
    try:
        proxied.set_source_status("src", "REFRESH")
    finally:
        proxied.close()
    (status_call,) = server.matching("POST", r"/status$")
    assert status_call.headers["Host"] == "push.pushsync-test.invalid", "the call went through the proxy"
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = PushApiClient(base_url=server.push_url, organization_id=ORGANIZATION, api_key=API_KEY,
                           connect_timeout=2, read_timeout=2, retry_budget_seconds=30, sleep=waits)
    try:
        direct.set_source_status("src", "IDLE")
    finally:
        direct.close()
    assert [call.query["statusType"] for call in server.matching("POST", r"/status$")] == [["REFRESH"], ["IDLE"]]
    assert waits == [], "no call needed a retry"


def test_a_proxied_push_api_connection_is_fenced_as_a_direct_one(monkeypatch):
    """TCP_USER_TIMEOUT on the proxy's connection too: a request sent into a partition must die, not reach the
    service after its batch's successor (docs/architecture.md, invariant 10)."""
    from worker.pushapi.client import TCP_USER_TIMEOUT

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    client = PushApiClient(base_url=UNRESOLVABLE_PUSH_URL, organization_id=ORGANIZATION, api_key=API_KEY,
                           fence_seconds=2.5)
    try:
        adapter = client.session.get_adapter(client.organization_url + "/")
        manager = adapter.proxy_manager_for("http://127.0.0.1:9")
        options = manager.connection_pool_kw["socket_options"]
    finally:
        client.close()
    if TCP_USER_TIMEOUT is not None:
        assert any(option[1] == TCP_USER_TIMEOUT and option[2] == 2500 for option in options), options
