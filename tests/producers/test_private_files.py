"""Files holding content or secrets are created 0600 (directories 0700) whatever the umask, and no
planted symlink makes pushsync write or delete elsewhere: the helper, `pushsync dlq export`,
`pushsync publish --invalid-output`, the emulator's blobs (over HTTP) and a real worker's metrics directory."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from producers.cli import EXIT_INVALID
from producers.events import decode_event
from producers.private_files import NotPrivateError, check_private_directory, private_directory, replacing
from tests.plugins.emulator import start_emulator, stop_emulator
from tests.support.times import occurred
from worker.cli import main
from worker.deadletter.operator import DeadLetterBrowser
from worker.store.embedded import EmbeddedRedis, free_port

USUAL_UMASK = 0o022
NOBODY_UID = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture()
def usual_umask() -> Iterator[None]:
    """The umask most systems give, under which open() and mkdir() make files others can read."""
    previous = os.umask(USUAL_UMASK)
    yield
    os.umask(previous)


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A file of someone else's (here: the victim) and a directory where a symlink to it can be planted."""
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours to overwrite")
    shared = tmp_path / "shared"
    shared.mkdir()
    return victim, shared


def test_a_replacing_file_is_private_and_replaces_a_planted_symlink_without_following_it(usual_umask, planted):
    victim, shared = planted
    fresh = shared / "fresh.ndjson"
    with replacing(fresh, "w") as stream:
        stream.write("one\n")
    assert fresh.read_text() == "one\n" and mode(fresh) == 0o600
    trap = shared / "trap.ndjson"
    trap.symlink_to(victim)
    with replacing(trap) as stream:
        stream.write(b"two\n")
    assert not trap.is_symlink() and trap.read_bytes() == b"two\n" and mode(trap) == 0o600
    assert victim.read_text() == "not yours to overwrite"
    with pytest.raises(RuntimeError), replacing(fresh, "w") as stream:
        stream.write("half")
        raise RuntimeError("the writer failed")
    assert fresh.read_text() == "one\n" and sorted(p.name for p in shared.iterdir()) == ["fresh.ndjson", "trap.ndjson"]


def test_a_private_directory_is_made_0700_with_its_parents_and_a_doubtful_one_is_refused(usual_umask, tmp_path):
    made = private_directory(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == 0o700 and mode(made) == 0o700
    assert private_directory(made) == made  # an existing private one is fine
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(elsewhere)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    (tmp_path / "file").write_text("")
    for path, why in [(tmp_path / "link", "is a symlink"), (loose, "writable by its group or others"),
                      (tmp_path / "file", "is not a directory"), (tmp_path / "missing", "does not exist")]:
        with pytest.raises(NotPrivateError, match=why):
            check_private_directory(path)
    with pytest.raises(NotPrivateError, match="is a symlink"):
        private_directory(tmp_path / "link")


def test_a_directory_someone_else_could_swap_for_a_symlink_is_refused(tmp_path):
    """Checked, then swapped for a symlink before use: possible when others may rename entries of its parent."""
    for sticky, refused in [(0, True), (0o1000, False)]:
        shared = tmp_path / f"shared-{sticky:o}"
        shared.mkdir()
        shared.chmod(0o777 | sticky)
        inside = private_directory(shared / "metrics") if not refused else shared / "metrics"
        if refused:
            inside.mkdir(mode=0o700)
            with pytest.raises(NotPrivateError, match="without the sticky bit"):
                check_private_directory(inside)
        else:
            check_private_directory(inside)
    with pytest.raises(NotPrivateError, match="without the sticky bit"):
        private_directory(tmp_path / "shared-0" / "other")


def test_dlq_export_is_private_and_never_follows_a_planted_symlink(usual_umask, planted, redis_client, redis_url,
                                                                  redis_broker_url):
    victim, shared = planted
    letters = DeadLetterBrowser(redis_broker_url, redis_client)
    letters.purge()
    secret = {"schemaVersion": 1, "eventId": "e-1", "kind": "item.upsert", "source": "s", "version": 1,
              "documentId": "https://example.com/1", "occurredAt": occurred(), "item": {"data": "confidential"}}
    letters.send("source:s", "batch-1", [decode_event(json.dumps(secret)).encoded], RuntimeError("refused"), attempts=1)
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}
    export = shared / "dlq.ndjson"
    export.symlink_to(victim)
    result = CliRunner().invoke(main, ["dlq", "export", str(export)], env=env)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "not yours to overwrite"
    assert not export.is_symlink() and mode(export) == 0o600 and "confidential" in export.read_text()
    letters.purge()


def test_publish_invalid_output_is_private_and_never_follows_a_planted_symlink(usual_umask, planted,
                                                                              redis_broker_url):
    victim, shared = planted
    source = shared / "events.ndjson"
    source.write_text('{"kind": "item.upsert", "source": "s", "note": "a secret token"}\n')
    rejects = shared / "rejects.ndjson"
    rejects.symlink_to(victim)
    result = CliRunner().invoke(main, ["publish", str(source), "--broker-url", redis_broker_url, "--skip-invalid",
                                       "--invalid-output", str(rejects)])
    assert result.exit_code == EXIT_INVALID, result.output  # some lines were invalid
    assert victim.read_text() == "not yours to overwrite"
    assert not rejects.is_symlink() and mode(rejects) == 0o600 and "a secret token" in rejects.read_text()


@pytest.mark.process
def test_the_emulators_blobs_and_their_directories_are_private(usual_umask, tmp_path):
    server = start_emulator(tmp_path / "emulator")
    try:
        created = requests.post(f"{server.push_url}/organizations/{server.organization}/files",
                                headers=server.headers(), timeout=10)
        assert created.status_code == 201, created.text
        container = created.json()
        uploaded = requests.put(container["uploadUri"], data=b"item content", headers=container["requiredHeaders"],
                                timeout=10)
        assert uploaded.status_code == 200, uploaded.text
        data = tmp_path / "emulator" / "data"
        [blob] = data.rglob(f"{container['fileId']}*")
        assert blob.read_bytes() == b"item content" and mode(blob) == 0o600
        for directory in [data, *(parent for parent in blob.parents if data in parent.parents)]:
            assert mode(directory) == 0o700, directory
    finally:
        stop_emulator(server)


def test_a_worker_refuses_a_planted_metrics_directory_and_deletes_nothing_outside(workers, usual_umask, tmp_path,
                                                                                redis_url, redis_broker_url):
    someone_elses = tmp_path / "someone-elses"
    someone_elses.mkdir()
    (someone_elses / "counter_1.db").write_bytes(b"their values")
    planted_link = tmp_path / "pushsync-metrics"
    planted_link.symlink_to(someone_elses)
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, "PUSHSYNC_METRICS_PORT": str(free_port()),
           "PUSHSYNC_METRICS_DIR": str(planted_link)}
    with pytest.raises(RuntimeError, match="exited") as refused:
        workers.start("worker", env)
    assert f"PUSHSYNC_METRICS_DIR: refusing {planted_link} is a symlink" in str(refused.value)
    assert (someone_elses / "counter_1.db").read_bytes() == b"their values"


def test_a_worker_keeps_its_metrics_in_a_private_directory_of_its_own_by_default(workers, usual_umask, tmp_path,
                                                                              redis_url, redis_broker_url):
    port = free_port()
    predictable = tmp_path / f"pushsync-metrics-{port}"
    predictable.mkdir()
    (predictable / "counter_1.db").write_bytes(b"planted values")
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, "PUSHSYNC_METRICS_PORT": str(port),
           "TMPDIR": str(tmp_path)}
    worker = workers.start("worker", env)
    [own] = tmp_path.glob(f"pushsync-metrics-{port}-*")
    assert own.is_dir() and not own.is_symlink() and mode(own) == 0o700
    assert (predictable / "counter_1.db").read_bytes() == b"planted values"
    worker.stop(timeout=30)
    assert not own.exists()


@pytest.mark.process
def test_the_embedded_redis_keeps_its_data_in_a_private_directory(usual_umask, tmp_path):
    directory = tmp_path / "embedded" / "store"
    server = EmbeddedRedis(directory)
    try:
        assert mode(directory) == 0o700 and mode(directory.parent) == 0o700
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_a_directory_under_a_parent_of_another_user_is_refused(tmp_path):
    """That user could swap the directory after the check, whatever the parent's mode."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY_UID, NOBODY_UID)
    mine = theirs / "mine"
    mine.mkdir(mode=0o700)
    with pytest.raises(NotPrivateError, match=f"belongs to user id {NOBODY_UID}"):
        check_private_directory(mine)
    (tmp_path / "ours").mkdir(mode=0o700)
    (tmp_path / "ours" / "sub").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "ours")
    os.lchown(tmp_path / "link", NOBODY_UID, NOBODY_UID)
    with pytest.raises(NotPrivateError, match=f"belongs to user id {NOBODY_UID}"):
        check_private_directory(tmp_path / "link" / "sub")
