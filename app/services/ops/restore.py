"""`carefile restore DEST`: fill an empty database and an empty blob store from a backup.

Restore trusts nothing in DEST. Before anything is written:
1. the whole manifest is checked (`check_manifest`): only the expected file names (`database.sqlite` /
   `database.pgdump` by backend), blob keys of the content-address shape (64 hex digits), sizes and
   sha256 values of the right shape; nothing absolute, no `..`, no other name is ever formed from it;
2. every file is read and checked against the manifest (sizes and sha256; the database copy is kept
   in a private temporary folder); a local backup's files must be plain files (no links).
Only then: refuses a database that has any table and a blob store that holds any blob (restore never
merges into or overwrites a live deployment); blobs go in, each checked again by the store; then the
database (SQLite: the verified file is moved into place; PostgreSQL: pg_restore in one transaction);
then the row count of every table is compared with the manifest.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app.services.ops.backup import (
    FORMAT,
    Destination,
    Progress,
    _no_progress,
    blob_name,
    database_is_empty,
    find_pg_tool,
    libpq_args,
    sqlite_path,
    table_counts,
)
from app.services.ops.target import BackupError, private_dirs
from storage import BlobStore


@dataclass
class RestoreSummary:
    snapshot: str
    blobs: int
    database_bytes: int


def check_empty(engine: Engine, store: BlobStore) -> None:
    """Raise BackupError unless both the database and the blob store are empty."""
    if engine.dialect.name == "sqlite":
        path = sqlite_path(engine)
        if path.exists() and path.stat().st_size > 0 and not database_is_empty(engine):
            raise BackupError(f"The database {path} already holds data. Restore into a new, empty data folder "
                              "(CAREFILE_DATA_DIR / CAREFILE_DATABASE_URL); restore never overwrites.")
    elif not database_is_empty(engine):
        raise BackupError("The database already holds tables. Restore into a new, empty database "
                          "(CREATE DATABASE ...); restore never overwrites.")
    if next(iter(store.iter_keys()), None) is not None:
        raise BackupError(f"The blob store {store!r} already holds files. Restore into an empty folder or "
                          "bucket prefix (CAREFILE_STORAGE_URL); restore never overwrites.")


SNAPSHOT = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z")
SHA256 = re.compile(r"[0-9a-f]{64}")
TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DATABASE_NAMES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
MAX_SIZE = 1 << 50


def _size(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_SIZE


def check_manifest(chosen: str, manifest: Any) -> None:
    """Raise BackupError unless the manifest has exactly the shape `carefile backup` writes."""
    where = f"snapshots/{chosen}/manifest.json"

    def bad(what: str) -> BackupError:
        return BackupError(f"The backup's manifest ({where}) is not valid: {what}. It was damaged or changed "
                           "after the backup was made; nothing was restored. Try another snapshot (--snapshot) or "
                           "another copy of the backup.")

    if not SNAPSHOT.fullmatch(chosen):
        raise bad(f"the snapshot name {chosen[:80]!r} is not a backup time such as 20261129T023000.123456Z")
    if not isinstance(manifest, dict):
        raise bad("it is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise bad(f"format {str(manifest.get('format'))[:20]!r} (this CareFile reads format {FORMAT})")
    if manifest.get("snapshot") != chosen:
        raise bad("it names another snapshot than the folder it is in")
    backend = manifest.get("backend")
    if backend not in DATABASE_NAMES:
        raise bad(f"unknown database kind {str(backend)[:40]!r} (expected sqlite or postgresql)")
    db = manifest.get("database")
    if not isinstance(db, dict) or set(db) != {"name", "size", "sha256"}:
        raise bad("`database` must hold exactly name, size and sha256")
    if db["name"] != DATABASE_NAMES[backend]:
        raise bad(f"the database file must be named {DATABASE_NAMES[backend]}, not {str(db['name'])[:80]!r}")
    if not _size(db["size"]) or not isinstance(db["sha256"], str) or not SHA256.fullmatch(db["sha256"]):
        raise bad("the database file's size or sha256 is not a size or a sha256")
    blobs = manifest.get("blobs")
    if not isinstance(blobs, dict):
        raise bad("`blobs` must map each file's sha256 to its size")
    for key, size in blobs.items():
        if not SHA256.fullmatch(key):
            raise bad(f"{key[:80]!r} is not a stored file's name (64 lowercase hex digits, its sha256)")
        if not _size(size):
            raise bad(f"the size of {key} is not a size")
    missing = manifest.get("missing_from_store", [])
    if not isinstance(missing, list) or not all(isinstance(k, str) and SHA256.fullmatch(k) for k in missing):
        raise bad("`missing_from_store` must list sha256 values")
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(t, str) and TABLE.fullmatch(t) and _size(n)
                                               for t, n in counts.items()):
        raise bad("`counts` must map table names to row counts")


def verify_files(dest: Destination, chosen: str, manifest: dict[str, Any], spool: Path,
                 progress: Progress = _no_progress) -> Path:
    """Read every file of the snapshot and check it against the (checked) manifest, writing nothing but
    the database's copy in `spool` (a private temporary folder): that copy's path."""
    db = manifest["database"]
    tmp_db = spool / DATABASE_NAMES[manifest["backend"]]
    with os.fdopen(os.open(tmp_db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
        size, sha = dest.read(f"snapshots/{chosen}/{DATABASE_NAMES[manifest['backend']]}", fh)
        fh.flush()
        os.fsync(fh.fileno())
    if (size, sha) != (db["size"], db["sha256"]):
        raise BackupError(f"The database file of snapshot {chosen} is damaged (sha256 {sha}, expected "
                          f"{db['sha256']}); nothing was restored. Try an older snapshot.")
    items = sorted(manifest["blobs"].items())
    for i, (key, expected) in enumerate(items):
        size, sha = dest.read(blob_name(key))
        if (size, sha) != (expected, key):
            raise BackupError(f"The stored file {blob_name(key)} is damaged (sha256 {sha}, {size} bytes; expected "
                              f"{expected} bytes); nothing was restored. Try an older snapshot.")
        progress("checking", i + 1, len(items))
    return tmp_db


def run_restore(engine: Engine, store: BlobStore, dest: Destination, snapshot: str | None = None,
                progress: Progress = _no_progress, spool_dir: str | None = None) -> RestoreSummary:
    chosen, manifest = dest.manifest(snapshot)
    check_manifest(chosen, manifest)
    if manifest["backend"] != engine.dialect.name:
        raise BackupError(f"This backup holds a {manifest['backend']} database but CAREFILE_DATABASE_URL names a "
                          f"{engine.dialect.name} database. Restore into the same kind of database.")
    check_empty(engine, store)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="carefile-restore-") as tmpdir:
        tmp_db = verify_files(dest, chosen, manifest, Path(tmpdir), progress)
        items = _write(engine, store, dest, manifest, tmp_db, progress, spool_dir)
    progress("database", 1, 1)
    with engine.connect() as conn:
        counts = table_counts(conn)
    wrong = {t: (counts.get(t), n) for t, n in manifest["counts"].items() if counts.get(t) != n}
    if wrong:
        raise BackupError(f"The restored database does not match the backup's row counts: {wrong}")
    return RestoreSummary(chosen, items, manifest["database"]["size"])


def _write(engine: Engine, store: BlobStore, dest: Destination, manifest: dict[str, Any], tmp_db: Path,
           progress: Progress, spool_dir: str | None) -> int:
    """Write the verified snapshot into the (empty) deployment: the files, then the database."""
    items = sorted(manifest["blobs"].items())
    for i, (key, size) in enumerate(items):
        with tempfile.TemporaryFile(dir=spool_dir) as tmp:
            dest.read(blob_name(key), tmp)
            tmp.seek(0)
            store.put(tmp, expected_size=size, expected_sha256=key)  # type: ignore[arg-type]
        progress("files", i + 1, len(items))
    progress("database", 0, 1)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        path = sqlite_path(engine)
        private_dirs(path.parent)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        part = path.with_name(path.name + ".restoring")
        _copy(tmp_db, part)  # the temporary folder may be on another file system
        os.replace(part, path)
    else:
        uri, env = libpq_args(engine)
        proc = subprocess.run([find_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                               "--single-transaction", f"--dbname={uri}", str(tmp_db)],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackupError(f"pg_restore failed: {proc.stderr.strip()[-2000:]}")
    return len(items)


def _copy(src: Path, dst: Path) -> None:
    with src.open("rb") as a, os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as b:
        while chunk := a.read(1024 * 1024):
            b.write(chunk)
        b.flush()
        os.fsync(b.fileno())
