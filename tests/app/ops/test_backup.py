"""carefile backup / backup verify / restore: round trips on both backends, local folder and S3 (SeaweedFS),
refusals, damage detection, incremental copies, encryption."""
from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.support.cli import cli_runner
from tests.support.sample_forms import household_xml

PHOTO = b"\xff\xd8\xff" + os.urandom(3000)
PHOTO_KEY = hashlib.sha256(PHOTO).hexdigest()
Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    return cli_runner(app_config, monkeypatch, capsys)


@pytest.fixture
def filled(app: Any, rt: Any, submit: Callable[..., Any]) -> Any:
    resp = submit(household_xml("uuid:b-1"), files={"photo.jpg": PHOTO})
    assert resp.status_code == 201
    return rt


@pytest.fixture
def empty_config(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings of a new, empty deployment: data folder, database and blob folder."""
    cfg: dict[str, Any] = {"DATA_DIR": str(tmp_path / "new-data"), "STORAGE_URL": str(tmp_path / "new-blobs"),
                           "SECRET_KEY": "test-secret", "XLSFORMS_DIR": str(tmp_path / "no-forms"),
                           "ODK_VALIDATE": "off"}
    if backend == "sqlite":
        cfg["DATABASE_URL"] = f"sqlite:///{tmp_path / 'new-data' / 'carefile.db'}"
        yield cfg
        return
    server = request.getfixturevalue("pg_server")
    name = f"restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    cfg["DATABASE_URL"] = server.url(name)
    yield cfg
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def restored_app(cfg: dict[str, Any]) -> Any:
    from app import create_app

    return create_app(cfg)


def check_restored(cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The restored deployment answers like the original: the submission, its photo, a collector's login."""
    from app.models import Submission, SubmissionAttachment

    for key in ("S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION"):
        if os.environ.get(f"CAREFILE_{key}"):
            cfg.setdefault(key, os.environ[f"CAREFILE_{key}"])
    application = restored_app(cfg)
    rt2 = application.extensions["carefile"]
    try:
        with rt2.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == 1
            att = s.scalars(select(SubmissionAttachment).where(SubmissionAttachment.blob_key.is_not(None))).one()
        with rt2.store.open(att.blob_key) as fh:
            assert fh.read() == PHOTO
        from tests.support.digest_client import DigestClient

        client = DigestClient(application.test_client(), "tashi", "correct horse")
        resp = client.get("/v1/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
        assert resp.status_code == 200 and b"household" in resp.data
    finally:
        rt2.db.dispose()


def test_backup_verify_restore_round_trip(filled: Any, run: Runner, empty_config: dict[str, Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "backup"
    code, out, err = run("backup", str(dest), "--unencrypted")
    assert code == 0, err
    assert "2 file(s), 2 new" in out  # the photo and the form's XLSForm
    code, out, err = run("backup", "verify", str(dest))
    assert code == 0, out + err
    assert "all checksums match" in out
    code, out, err = cli_runner(empty_config, monkeypatch, capsys)("restore", str(dest), "--progress")
    assert code == 0, err
    assert "row counts match" in out and "files" in err  # the progress bar went to stderr
    check_restored(empty_config, monkeypatch)


def test_restore_refuses_a_deployment_that_holds_data(filled: Any, run: Runner, empty_config: dict[str, Any],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from app.models import Submission

    dest = tmp_path / "backup"
    assert run("backup", str(dest), "--unencrypted")[0] == 0
    code, _, err = run("restore", str(dest))  # into the live deployment itself
    assert code == 1 and "already holds" in err and "never overwrites" in err
    with filled.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 1
    # An empty database, but a blob folder with a file in it: refused as well, nothing written.
    blobs = Path(empty_config["STORAGE_URL"])
    (blobs / "ab" / "cd").mkdir(parents=True)
    (blobs / "ab" / "cd" / ("abcd" + "0" * 60)).write_bytes(b"x")
    code, _, err = cli_runner(empty_config, monkeypatch, capsys)("restore", str(dest))
    assert code == 1 and "blob store" in err
    engine = create_engine(empty_config["DATABASE_URL"])
    with engine.connect() as c:
        assert c.dialect.get_table_names(c) == []
    engine.dispose()


def test_verify_detects_damaged_and_missing_files(filled: Any, run: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert run("backup", str(dest), "--unencrypted")[0] == 0
    [blob] = [p for p in (dest / "blobs").rglob("*") if p.name == PHOTO_KEY]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    code, out, _ = run("backup", "verify", str(dest))
    assert code == 1 and "damaged" in out and blob.name in out
    blob.unlink()
    code, out, _ = run("backup", "verify", str(dest))
    assert code == 1 and "missing" in out and blob.name in out
    [db] = list((dest / "snapshots").rglob("database.*"))
    db.write_bytes(db.read_bytes()[:-10])
    code, out, _ = run("backup", "verify", str(dest))
    assert code == 1 and db.name in out and "2 problem(s)" in out


def test_second_backup_copies_only_new_files(filled: Any, run: Runner, submit: Callable[..., Any],
                                             tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert "2 file(s), 2 new" in run("backup", str(dest), "--unencrypted")[1]
    assert "2 file(s), 0 new (0 bytes)" in run("backup", str(dest), "--unencrypted")[1]
    other = b"\xff\xd8\xff" + os.urandom(1234)
    assert submit(household_xml("uuid:b-2"), files={"photo.jpg": other}).status_code == 201
    assert f"3 file(s), 1 new ({len(other)} bytes)" in run("backup", str(dest), "--unencrypted")[1]
    assert len(list((dest / "snapshots").iterdir())) == 3
    assert len([p for p in (dest / "blobs").rglob("*") if p.is_file()]) == 3


def test_encrypted_backup(filled: Any, run: Runner, empty_config: dict[str, Any], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "backup"
    passfile = tmp_path / "passphrase"
    passfile.write_text("tsampa and butter tea\n")
    assert run("backup", str(dest), "--passphrase-file", str(passfile))[0] == 0
    stored = b"".join(p.read_bytes() for p in dest.rglob("*") if p.is_file())
    assert PHOTO[3:200] not in stored and b"SQLite format 3" not in stored and b"PGDMP" not in stored
    assert b'"snapshot"' not in stored  # the manifest is encrypted too
    code, _, err = run("backup", "verify", str(dest))
    assert code == 1 and "encrypted" in err
    code, _, err = run("backup", "verify", str(dest), "--passphrase", "wrong")
    assert code == 1 and "passphrase does not open" in err
    code, _, err = run("backup", str(dest))  # no passphrase: refused (backups are encrypted by default)
    assert code == 1 and "encrypted" in err
    assert run("backup", "verify", str(dest), "--passphrase", "tsampa and butter tea")[0] == 0
    [blob] = [p for p in (dest / "blobs").rglob("*") if p.name == PHOTO_KEY]
    data = bytearray(blob.read_bytes())
    data[-5] ^= 1
    blob.write_bytes(bytes(data))
    code, out, _ = run("backup", "verify", str(dest), "--passphrase", "tsampa and butter tea")
    assert code == 1 and "damaged" in out
    data[-5] ^= 1
    blob.write_bytes(bytes(data))
    code, out, err = cli_runner(empty_config, monkeypatch, capsys)("restore", str(dest), "--passphrase",
                                                                   "tsampa and butter tea")
    assert code == 0, err
    check_restored(empty_config, monkeypatch)


def test_backups_are_encrypted_unless_asked_otherwise(filled: Any, run: Runner, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREFILE_BACKUP_PASSPHRASE", raising=False)
    dest = tmp_path / "backup"
    code, _, err = run("backup", str(dest))
    assert code == 1 and "--passphrase-file" in err and "--unencrypted" in err
    assert not dest.exists()  # nothing written
    code, _, err = run("backup", str(dest), "--unencrypted", "--passphrase-file", str(tmp_path / "missing"))
    assert code == 1 and "cannot be read" in err and not dest.exists()
    (tmp_path / "empty").write_text("")
    code, _, err = run("backup", str(dest), "--passphrase-file", str(tmp_path / "empty"))
    assert code == 1 and "empty" in err and not dest.exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("yak butter\n"))
    code, _, err = run("backup", str(dest), "--passphrase-stdin")
    assert code == 0, err
    assert b'"encryption": {' in (dest / "carefile-backup.json").read_bytes()
    monkeypatch.setenv("CAREFILE_BACKUP_PASSPHRASE", "yak butter")
    assert run("backup", "verify", str(dest))[0] == 0
    monkeypatch.setenv("CAREFILE_BACKUP_PASSPHRASE", "")
    monkeypatch.setattr("sys.stdin", io.StringIO("yak butter\n"))
    assert run("backup", "verify", str(dest), "--passphrase-stdin")[0] == 0


def _open_to_others(root: Path) -> list[str]:
    return [f"{p} {oct(p.stat().st_mode & 0o777)}" for p in [root, *root.rglob("*")]
            if not p.is_symlink() and p.stat().st_mode & 0o077]


def test_files_on_disk_are_owner_only_whatever_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The data folder, the SQLite database with its WAL and SHM, blobs, the secret key and backups: 0600 files
    in 0700 folders, though the umask is 022 (create_app sets 077; the places that create files do not rely
    on it: the umask is put back to 022 after create_app)."""
    from app import create_app
    from app.services.ops import setup

    old = os.umask(0o022)
    try:
        data = tmp_path / "srv" / "data"
        cfg = {"DATA_DIR": str(data), "XLSFORMS_DIR": str(tmp_path / "no-forms"), "ODK_VALIDATE": "off"}
        application = create_app(cfg)
        os.umask(0o022)
        rt = application.extensions["carefile"]
        try:
            setup.init_schema(rt)
            rt.store.put(io.BytesIO(PHOTO))
            with rt.db.write() as s:
                s.execute(text("UPDATE project SET name = 'CareFile' WHERE id = 1"))
            names = {p.name for p in data.iterdir()}
            assert {"carefile.db", "secret_key", "blobs"} <= names
            assert (data / "carefile.db-wal").exists() or rt.db.engine.dialect.name != "sqlite"
            run = cli_runner({**cfg, "DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'carefile.db'}",
                              "STORAGE_URL": str(data / "blobs"), "SECRET_KEY": (data / "secret_key").read_text()},
                             monkeypatch, capsys)
            os.umask(0o022)
            backups = tmp_path / "backups"
            code, _, err = run("backup", str(backups / "plain"), "--unencrypted")
            assert code == 0, err
            monkeypatch.setenv("CAREFILE_BACKUP_PASSPHRASE", "yak butter")
            assert run("backup", str(backups / "sealed"))[0] == 0
            assert _open_to_others(data) == []
            assert _open_to_others(backups) == []
            assert (tmp_path / "srv").stat().st_mode & 0o077 == 0  # the folders it made on the way, too
        finally:
            rt.db.dispose()
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.s3server import start_seaweedfs

    server = start_seaweedfs(tmp_path_factory.mktemp("seaweed-backup"))
    try:
        yield server
    finally:
        server.stop()


def test_backup_to_s3_and_restore_into_s3(filled: Any, run: Runner, empty_config: dict[str, Any], seaweed: Any,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CAREFILE_S3_ENDPOINT_URL", seaweed.endpoint_url)
    monkeypatch.setenv("CAREFILE_S3_ACCESS_KEY", seaweed.access_key)
    monkeypatch.setenv("CAREFILE_S3_SECRET_KEY", seaweed.secret_key)
    monkeypatch.setenv("CAREFILE_S3_REGION", seaweed.region)
    run_id = uuid.uuid4().hex[:10]
    dest = f"s3://{seaweed.bucket}/backups-{run_id}"
    code, out, err = run("backup", dest, "--unencrypted")
    assert code == 0, err
    assert "2 new" in out
    assert "0 new" in run("backup", dest, "--unencrypted")[1]
    assert run("backup", "verify", dest)[0] == 0
    empty_config["STORAGE_URL"] = f"s3://{seaweed.bucket}/restored-{run_id}"
    code, out, err = cli_runner(empty_config, monkeypatch, capsys)("restore", dest)
    assert code == 0, err
    check_restored(empty_config, monkeypatch)
    code, out, err = cli_runner(empty_config, monkeypatch, capsys)("restore", dest)  # now it holds data
    assert code == 1 and "already holds" in err
