"""`pushsync check` and `pushsync health --coveo` against the emulator over HTTP, through the
real command line: what each says and the exit code of each cause."""

from __future__ import annotations

import pytest

from tests.worker.commands.test_failures import pushsync
from worker.commands.services import COVEO_MISSING, COVEO_REFUSED, COVEO_UNREACHABLE, HEALTHY
from worker.store import keys
from worker.store.embedded import free_port

pytestmark = pytest.mark.process


@pytest.fixture()
def coveo(clean_emulator):
    """The variables that point pushsync at the emulator, with source kb and provider groups in it."""
    clean_emulator.create_source("kb", security_providers=("groups",))
    clean_emulator.create_provider("groups")
    return {"COVEO_PUSH_URL": clean_emulator.push_url, "COVEO_PLATFORM_URL": clean_emulator.platform_url,
            "COVEO_ORGANIZATION_ID": clean_emulator.organization, "COVEO_API_KEY": clean_emulator.api_key}


def findings(output: str) -> dict[str, str]:
    """Subject -> outcome, from the lines `pushsync check` prints."""
    found = {}
    for line in output.splitlines()[:-1]:
        outcome, _, rest = line.strip().partition("  ")
        found[rest.split(":", 1)[0].strip()] = outcome
    return found


def test_a_sound_configuration_is_verified_and_changes_no_index(coveo, clean_emulator):
    done = pushsync("check", "--source", "kb", "--provider", "groups", **coveo)
    assert done.returncode == HEALTHY, done.stdout + done.stderr
    assert findings(done.stdout) == {"key and organization pushsync-local": "verified", "source kb": "verified",
                                     "provider groups": "verified"}
    assert done.stdout.splitlines()[-1] == "check: 3 verified"
    calls = [(entry["method"], entry["path"].rsplit("/", 2)[-2]) for entry in clean_emulator.requests()]
    assert calls == [("POST", "pushsync-local"), ("GET", "sources"), ("GET", "securityproviders")]
    assert clean_emulator.items("kb") == [] and clean_emulator.activities("kb")["transitions"] == []


def test_the_sources_and_providers_the_settings_name_are_checked_too(coveo):
    done = pushsync("check", PUSHSYNC_SOURCE_PROVIDERS="kb=groups|people", PUSHSYNC_SOURCE_WINDOWS="faq=2", **coveo)
    assert done.returncode == COVEO_MISSING, done.stdout + done.stderr
    assert findings(done.stdout) == {
        "key and organization pushsync-local": "verified", "source faq": "missing", "source kb": "verified",
        "provider groups": "verified", "provider people": "missing",
    }
    assert "create a security identity provider with this id first" in done.stdout


def test_a_missing_source_is_named_with_exit_12(coveo):
    done = pushsync("check", "--source", "kb", "--source", "no-such-source", **coveo)
    assert done.returncode == COVEO_MISSING
    line = next(line for line in done.stdout.splitlines() if "no-such-source" in line)
    assert line.split()[0] == "missing" and "404" in line and "create a Push source with this id first" in line


def test_a_missing_provider_is_named_with_exit_12(coveo):
    done = pushsync("check", "--provider", "no-such-provider", **coveo)
    assert done.returncode == COVEO_MISSING
    assert findings(done.stdout)["provider no-such-provider"] == "missing"


def test_a_wrong_key_is_refused_with_exit_11_and_never_printed(coveo):
    done = pushsync("check", "--source", "kb", **coveo | {"COVEO_API_KEY": "wrong-key-1234"})
    assert done.returncode == COVEO_REFUSED
    assert "refused the key (401 INVALID_TOKEN): COVEO_API_KEY is wrong" in done.stdout
    assert findings(done.stdout)["source kb"] == "not verified"
    assert "wrong-key-1234" not in done.stdout + done.stderr


def test_an_unknown_organization_is_refused_with_exit_11(coveo):
    done = pushsync("check", **coveo | {"COVEO_ORGANIZATION_ID": "someone-else"})
    assert done.returncode == COVEO_REFUSED
    assert "no such organization" in done.stdout and "check COVEO_ORGANIZATION_ID" in done.stdout


def test_an_unreachable_service_is_exit_10_in_a_few_lines(coveo):
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = pushsync("check", "--source", "kb",
                    **coveo | {"COVEO_PUSH_URL": nowhere + "/push/v1", "COVEO_PLATFORM_URL": nowhere + "/rest"})
    assert done.returncode == COVEO_UNREACHABLE
    assert "did not answer usefully: connection failed ([Errno 111] Connection refused)" in done.stdout
    assert done.stderr == "" and len(done.stdout.splitlines()) == 3


def test_a_key_that_may_not_read_sources_leaves_them_not_verified_and_exit_0(coveo, clean_emulator):
    clean_emulator.add_fault(method="GET", path="/rest/*", status=403, errorCode="ACCESS_DENIED")
    done = pushsync("check", "--source", "kb", "--provider", "groups", **coveo)
    assert done.returncode == HEALTHY, done.stdout
    assert findings(done.stdout) == {"key and organization pushsync-local": "verified", "source kb": "not verified",
                                     "provider groups": "not verified"}
    assert "grant View on Sources to let check verify it" in done.stdout


def test_without_a_platform_url_check_says_what_it_could_not_verify(coveo):
    done = pushsync("check", "--source", "kb", **{k: v for k, v in coveo.items() if k != "COVEO_PLATFORM_URL"})
    assert done.returncode == HEALTHY
    assert "not checked: COVEO_PLATFORM_URL is not set" in done.stdout


def test_a_protected_source_is_never_called(coveo, clean_emulator):
    done = pushsync("check", "--source", "kb", PUSHSYNC_PROTECTED_SOURCES="kb", **coveo)
    assert done.returncode == HEALTHY
    assert "protected (PUSHSYNC_PROTECTED_SOURCES): pushsync never calls it" in done.stdout
    assert all("/kb" not in entry["path"] for entry in clean_emulator.requests())


def test_the_targets_the_store_knows_are_checked(coveo, redis_url, redis_client):
    redis_client.sadd(keys.TARGETS, keys.Target("source", "kb").ref, keys.Target("provider", "gone").ref)
    done = pushsync("check", REDIS_URL=redis_url, **coveo)
    assert done.returncode == COVEO_MISSING
    assert findings(done.stdout) == {"key and organization pushsync-local": "verified", "source kb": "verified",
                                     "provider gone": "missing"}


def test_a_store_that_does_not_answer_is_a_note_not_a_failure(coveo):
    done = pushsync("check", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **coveo)
    assert done.returncode == HEALTHY
    assert done.stderr.startswith("note: Redis (store) at ") and "were not added" in done.stderr


def test_health_with_coveo_runs_the_check(coveo, redis_url, redis_client):
    healthy = pushsync("health", "--no-worker", "--coveo", REDIS_URL=redis_url, **coveo)
    assert healthy.returncode == HEALTHY, healthy.stderr
    assert healthy.stdout.startswith("healthy: store and broker answer; Coveo accepts the key (")
    refused = pushsync("health", "--no-worker", "--coveo", REDIS_URL=redis_url, **coveo | {"COVEO_API_KEY": "nope"})
    assert refused.returncode == COVEO_REFUSED
    assert refused.stderr.startswith("unhealthy: key and organization pushsync-local: the Push API refused the key")
    assert refused.stderr.count("\n") == 1


def test_a_password_in_the_push_url_is_never_printed(coveo):
    nowhere = f"http://proxyuser:S3cretProxyPass@127.0.0.1:{free_port()}/push/v1"
    done = pushsync("check", **coveo | {"COVEO_PUSH_URL": nowhere})
    assert done.returncode == COVEO_UNREACHABLE
    assert "S3cretProxyPass" not in done.stdout + done.stderr and "proxyuser:**@" in done.stdout
