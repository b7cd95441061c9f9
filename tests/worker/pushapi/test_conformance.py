"""Every request the client sends conforms to the service's Swagger description."""

from __future__ import annotations

from tests.support.openapi import load_spec
from tests.support.scripted_server import REQUIRED_UPLOAD_HEADERS, UPLOAD_PREFIX
from tests.worker.pushapi.conftest import API_KEY
from worker.pushapi.batches import ContainerPusher, Delete, IdentityOp, Upsert

GROUP = {"name": "editors", "type": "GROUP", "additionalInfo": {}}
USER = {"name": "ann@example.com", "type": "USER", "additionalInfo": {"dept": "docs"}}
PERMISSIONS = [{"allowAnonymous": False, "allowedPermissions": [
    {"identity": "editors", "identityType": "Group", "securityProvider": "prov"}], "deniedPermissions": []}]


def exercise_every_operation(client, tmp_path):
    container = client.create_file_container()
    path = tmp_path / "batch.json"
    path.write_bytes(b'{"addOrUpdate":[],"delete":[]}')
    client.upload(container, path)
    client.create_file_container(use_virtual_hosted_style_url=True)
    client.add_document("src", {"documentId": "https://example.com/a", "title": "A", "data": "hello",
                                "fileExtension": ".txt", "permissions": PERMISSIONS, "tags": ["x", "y"]})
    client.add_document("src", {"documentId": "https://example.com/b", "compressedBinaryData": "eJwLAQAAUgBS",
                                "compressionType": "ZLIB"}, ordering_id=1_700_000_000_000)
    client.delete_document("src", "https://example.com/a", delete_children=True, ordering_id=1_700_000_000_000)
    client.push_documents_batch("src", container.file_id)
    client.push_documents_batch("src", container.file_id, ordering_id=1_700_000_000_001)
    client.delete_documents_older_than("src", 1_700_000_000_000, queue_delay=0)
    client.delete_documents_older_than("src", 1_700_000_000_000)
    for status in ("REBUILD", "REFRESH", "INCREMENTAL", "IDLE"):
        client.set_source_status("src", status)
    client.add_identity("prov", {"identity": GROUP, "members": [USER], "wellKnowns": []})
    client.add_identity("prov", {"identity": USER}, ordering_id=1_700_000_000_000)
    client.disable_identity("prov", USER)
    client.add_alias("prov", {"identity": USER, "mappings": [
        {"name": "ann", "type": "USER", "provider": "other", "additionalInfo": {}}], "wellKnowns": []})
    client.push_identities_batch("prov", container.file_id)
    client.disable_identities_older_than("prov", 1_700_000_000_000, queue_delay=5)
    pusher = ContainerPusher(client, max_bytes=1024 * 1024)
    pusher.push_documents("src", [Upsert({"documentId": "https://example.com/c", "data": "c"}),
                                  Upsert({"documentId": "https://example.com/d"}, content=b"\x00" * 10),
                                  Delete("https://example.com/e")])
    pusher.push_identities("prov", [IdentityOp("members", {"identity": GROUP, "members": [USER]}),
                                    IdentityOp("deleted", {"identity": USER})])


def test_every_request_conforms_to_the_swagger_file(client, server, tmp_path):
    spec = load_spec()
    exercise_every_operation(client, tmp_path)
    api_requests = [r for r in server.requests if not r.path.startswith(UPLOAD_PREFIX)]
    problems = []
    for request in api_requests:
        problems += spec.check(request.method, request.path, request.query, request.headers, request.body)
    assert problems == []
    covered = {(op.method, op.template) for r in api_requests if (op := spec.find(r.method, r.path))}
    assert covered == {(op.method, op.template) for op in spec.operations}


def test_upload_carries_only_the_required_headers(client, server, tmp_path):
    exercise_every_operation(client, tmp_path)
    uploads = server.matching("PUT", "^" + UPLOAD_PREFIX)
    assert uploads
    transport = {"host", "content-length", "connection"}
    for upload in uploads:
        sent = {name.lower(): value for name, value in upload.headers.items() if name.lower() not in transport}
        assert sent == {name.lower(): value for name, value in REQUIRED_UPLOAD_HEADERS.items()}
        assert all(API_KEY not in value for value in upload.headers.values())


def test_every_api_call_carries_user_agent_and_key(client, server, tmp_path):
    exercise_every_operation(client, tmp_path)
    for request in server.requests:
        if not request.path.startswith(UPLOAD_PREFIX):
            assert request.headers["User-Agent"].startswith("pushsync/")
            assert request.headers["Authorization"] == f"Bearer {API_KEY}"
