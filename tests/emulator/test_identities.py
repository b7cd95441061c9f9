"""Security identities: members, aliases, well-knowns, disabling, batches and olderthan."""

from __future__ import annotations

import json

import pytest

from tests.emulator.conftest import PROVIDER, PushApi, assert_error

GROUP = {"name": "Engineers", "type": "GROUP", "additionalInfo": {"region": "eu"}}
ALICE = {"name": "alice@example.com", "type": "USER"}
BOB = {"name": "bob@example.com", "type": "USER"}
EVERYONE = {"name": "Everyone", "type": "VIRTUAL_GROUP"}


def by_name(api: PushApi) -> dict[str, dict]:
    return {identity["name"]: identity for identity in api.server.identities(PROVIDER)}


def test_pushing_a_group_replaces_its_members(api: PushApi) -> None:
    body = {"identity": GROUP, "members": [ALICE, BOB], "wellKnowns": [EVERYONE]}
    assert api.call("PUT", f"/providers/{PROVIDER}/permissions", json=body).status_code == 202
    group = by_name(api)["Engineers"]
    assert [m["name"] for m in group["members"]] == ["alice@example.com", "bob@example.com"]
    assert group["wellKnowns"][0]["name"] == "Everyone" and group["additionalInfo"] == {"region": "eu"}
    api.call("PUT", f"/providers/{PROVIDER}/permissions", json={"identity": GROUP, "members": [BOB]})
    assert [m["name"] for m in by_name(api)["Engineers"]["members"]] == ["bob@example.com"]


def test_an_alias_maps_an_identity_to_others(api: PushApi) -> None:
    body = {"identity": ALICE, "mappings": [{"name": "alice", "type": "USER", "provider": "Email Security Provider"}]}
    assert api.call("PUT", f"/providers/{PROVIDER}/mappings", json=body).status_code == 202
    (alias,) = api.server.identities(PROVIDER)
    assert alias["mappings"] == [{"name": "alice", "type": "USER", "provider": "Email Security Provider", "additionalInfo": {}}]


def test_disabling_an_identity_and_ordering_ids(api: PushApi) -> None:
    api.call("PUT", f"/providers/{PROVIDER}/permissions", params={"orderingId": 200}, json={"identity": ALICE})
    api.call("DELETE", f"/providers/{PROVIDER}/permissions", params={"orderingId": 100}, json={"identity": ALICE})
    assert by_name(api)["alice@example.com"]["disabled"] is False, "an older disable is ignored"
    api.call("DELETE", f"/providers/{PROVIDER}/permissions", params={"orderingId": 300}, json={"identity": ALICE})
    assert by_name(api)["alice@example.com"]["disabled"] is True
    api.call("PUT", f"/providers/{PROVIDER}/permissions", params={"orderingId": 250}, json={"identity": ALICE})
    assert by_name(api)["alice@example.com"]["disabled"] is True, "an older push does not re-enable"


def test_an_identity_batch_applies_members_mappings_and_deleted(api: PushApi) -> None:
    api.call("PUT", f"/providers/{PROVIDER}/permissions", json={"identity": BOB})
    batch = {
        "members": [{"identity": GROUP, "members": [ALICE]}, {"identity": {"name": "", "type": "USER"}}],
        "mappings": [{"identity": ALICE, "mappings": [{"name": "alice", "type": "USER"}]}],
        "deleted": [{"identity": BOB}],
    }
    file_id = api.upload(json.dumps(batch).encode())
    response = api.call("PUT", f"/providers/{PROVIDER}/permissions/batch", params={"fileId": file_id})
    assert response.status_code == 202
    identities = by_name(api)
    assert identities["Engineers"]["members"][0]["name"] == "alice@example.com"
    assert identities["alice@example.com"]["mappings"][0]["name"] == "alice"
    assert identities["bob@example.com"]["disabled"] is True
    (rejection,) = api.server.provider_rejections(PROVIDER)
    assert rejection["reason"] == "INVALID_IDENTITY"
    again = api.call("PUT", f"/providers/{PROVIDER}/permissions/batch", params={"fileId": file_id})
    assert_error(again, 404, "FILE_NOT_FOUND")


def test_an_identity_batch_of_the_wrong_shape_is_400(api: PushApi) -> None:
    file_id = api.upload(b'{"addOrUpdate": []}')
    assert_error(api.call("PUT", f"/providers/{PROVIDER}/permissions/batch", params={"fileId": file_id}), 400, "INVALID_JSON")


def test_olderthan_disables_identities_after_queue_delay(api: PushApi) -> None:
    api.call("PUT", f"/providers/{PROVIDER}/permissions", params={"orderingId": 100}, json={"identity": ALICE})
    api.call("PUT", f"/providers/{PROVIDER}/permissions", params={"orderingId": 200}, json={"identity": BOB})
    response = api.call("DELETE", f"/providers/{PROVIDER}/permissions/olderthan", params={"orderingId": 150, "queueDelay": 0})
    assert response.status_code == 202
    assert {name: i["disabled"] for name, i in by_name(api).items()} == {"alice@example.com": True, "bob@example.com": False}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/permissions", {"identity": {"name": "x"}}),
        ("/permissions", {"identity": {"name": "x", "type": "user"}}),
        ("/permissions", {"identity": {"name": "", "type": "USER"}}),
        ("/permissions", {"identity": ALICE, "members": "alice"}),
        ("/permissions", {"identity": ALICE, "membres": []}),
        ("/permissions", {"identity": {**ALICE, "additionalInfo": {"age": 3}}}),
        ("/mappings", {"identity": ALICE}),
        ("/mappings", {"identity": ALICE, "mappings": [{"name": "a", "type": "ROBOT"}]}),
    ],
)
def test_invalid_identity_bodies_are_400(api: PushApi, path: str, body: dict) -> None:
    assert_error(api.call("PUT", f"/providers/{PROVIDER}{path}", json=body), 400, "INVALID_JSON")


def test_an_unknown_provider_is_404(api: PushApi) -> None:
    assert_error(api.call("PUT", "/providers/nope/permissions", json={"identity": ALICE}), 404, "PROVIDER_NOT_FOUND")
