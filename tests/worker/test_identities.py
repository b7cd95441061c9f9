"""Identities end to end: identity batches land as sent, and items follow their identities."""

from __future__ import annotations

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for

SOURCE, PROVIDER = "secured", "security"
GROUP = {"name": "kb-editors", "type": "GROUP", "additionalInfo": {}}
USERS = [{"name": f"user{n}@example.com", "type": "USER", "additionalInfo": {}} for n in range(3)]
EVERYONE = {"name": "everyone", "type": "VIRTUAL_GROUP", "additionalInfo": {}}


def identity_events() -> list[dict]:
    return [
        {"kind": "identity.upsert", "provider": PROVIDER, "version": 1, "identity": GROUP, "members": USERS[:2],
         "wellKnowns": [EVERYONE]},
        {"kind": "identity.upsert", "provider": PROVIDER, "version": 2, "identity": GROUP, "members": USERS,
         "wellKnowns": [EVERYONE]},
        {"kind": "identity.alias", "provider": PROVIDER, "version": 1, "identity": USERS[0],
         "mappings": [{"name": "u0", "type": "USER", "provider": "Email Security Provider", "additionalInfo": {}}],
         "wellKnowns": [EVERYONE]},
    ]


def item_events(count: int) -> list[dict]:
    allowed = [{"identity": GROUP["name"], "identityType": "Group", "securityProvider": PROVIDER}]
    return [{"kind": "item.upsert", "source": SOURCE, "version": 1, "documentId": f"https://intranet.example.com/{n}",
             "item": {"data": f"secret {n}", "permissions": [{"allowAnonymous": False, "allowedPermissions": allowed,
                                                              "deniedPermissions": []}]}}
            for n in range(count)]


def test_identities_land_as_sent_and_items_naming_them_follow(workers, clean_emulator, redis_client, redis_url,
                                                              redis_broker_url):
    emulator = clean_emulator
    emulator.create_provider(PROVIDER, strict=True)
    emulator.create_source(SOURCE, security_providers=(PROVIDER,))
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_SOURCE_PROVIDERS=f"{SOURCE}={PROVIDER}",
                       PUSHSYNC_SOURCE_WINDOWS=f"{PROVIDER}=3")
    workers.start("worker", env)
    workers.start("beat", env)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([*identity_events(), *item_events(5)])
    wait_for(lambda: len(emulator.items(SOURCE)) == 5, 60, what="the items indexed")
    assert emulator.rejections(SOURCE) == []
    identities = {(i["name"], i["type"]): i for i in emulator.identities(PROVIDER)}
    group = identities[("kb-editors", "GROUP")]
    assert [m["name"] for m in group["members"]] == [u["name"] for u in USERS]
    assert [w["name"] for w in group["wellKnowns"]] == ["everyone"]
    alias = identities[("user0@example.com", "USER")]
    assert [(m["name"], m["provider"]) for m in alias["mappings"]] == [("u0", "Email Security Provider")]
    batches = ["identities" if "/providers/" in r["path"] else "items" for r in emulator.requests()
               if r["path"].endswith("/batch") and r["status"] == 202]
    assert batches.index("identities") < batches.index("items"), batches
