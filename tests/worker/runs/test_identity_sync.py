"""`pushsync identities sync` disables exactly the identities an export no longer has."""

from __future__ import annotations

import json

from click.testing import CliRunner

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for
from worker.cli import main

SOURCE, PROVIDER = "intranet", "directory"


def group(n: int, version: int) -> dict:
    return {"kind": "identity.upsert", "provider": PROVIDER, "version": version,
            "identity": {"name": f"group-{n}", "type": "GROUP"}, "members": [{"name": f"user{n}", "type": "USER"}]}


def states(emulator) -> dict[str, bool]:
    return {i["name"]: i["disabled"] for i in emulator.identities(PROVIDER) if i["type"] == "GROUP"}


def test_sync_disables_exactly_the_missing_identities(workers, clean_emulator, redis_client, redis_url,
                                                      redis_broker_url, tmp_path):
    emulator = clean_emulator
    emulator.create_provider(PROVIDER)
    emulator.create_source(SOURCE, security_providers=(PROVIDER,))
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_SOURCE_PROVIDERS=f"{SOURCE}={PROVIDER}")
    workers.start("worker", env)
    workers.start("beat", env)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([group(n, 1) for n in range(5)])
    wait_for(lambda: len(states(emulator)) == 5, 60, what="the seeded groups")
    export = tmp_path / "identities.ndjson"
    export.write_text("\n".join(json.dumps(group(n, 2)) for n in range(3)) + "\n")
    result = CliRunner().invoke(main, ["identities", "sync", PROVIDER, str(export), "--queue-delay", "0",
                                       "--timeout", "60"], env=env)
    assert result.exit_code == 0, result.output
    assert "identities last touched before orderingId" in result.output
    expected = {"group-0": False, "group-1": False, "group-2": False, "group-3": True, "group-4": True}
    wait_for(lambda: states(emulator) == expected, 30, what="exactly the missing groups disabled")


def test_a_provider_linked_to_no_source_is_refused(workers, clean_emulator, redis_client, redis_url,
                                                   redis_broker_url, tmp_path):
    export = tmp_path / "identities.ndjson"
    export.write_text(json.dumps(group(0, 1)) + "\n")
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    result = CliRunner().invoke(main, ["identities", "sync", PROVIDER, str(export)], env=env)
    assert result.exit_code == 1 and "linked to no source" in result.output
    assert not any("/providers/" in r["path"] for r in clean_emulator.requests())
