"""`carefile restore DEST`: fill an empty database and an empty blob store from a backup.

Refuses a database that has any table and a blob store that holds any blob (restore never merges
into or overwrites a live deployment). Blobs go first, each checked against its sha256 by the store;
then the database (SQLite: the file is moved into place; PostgreSQL: pg_restore in one
transaction); then the row count of every table is compared with the manifest.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from app.services.ops.backup import (
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
from app.services.ops.target import BackupError
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


def run_restore(engine: Engine, store: BlobStore, dest: Destination, snapshot: str | None = None,
                progress: Progress = _no_progress, spool_dir: str | None = None) -> RestoreSummary:
    chosen, manifest = dest.manifest(snapshot)
    if manifest["backend"] != engine.dialect.name:
        raise BackupError(f"This backup holds a {manifest['backend']} database but CAREFILE_DATABASE_URL names a "
                          f"{engine.dialect.name} database. Restore into the same kind of database.")
    check_empty(engine, store)
    items = sorted(manifest["blobs"].items())
    for i, (key, size) in enumerate(items):
        with tempfile.TemporaryFile(dir=spool_dir) as tmp:
            dest.read(blob_name(key), tmp)
            tmp.seek(0)
            store.put(tmp, expected_size=size, expected_sha256=key)  # type: ignore[arg-type]
        progress("files", i + 1, len(items))
    db = manifest["database"]
    progress("database", 0, 1)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="carefile-restore-") as tmpdir:
        tmp_db = Path(tmpdir) / db["name"]
        with tmp_db.open("wb") as fh:
            size, sha = dest.read(f"snapshots/{chosen}/{db['name']}", fh)
            fh.flush()
            os.fsync(fh.fileno())
        if (size, sha) != (db["size"], db["sha256"]):
            raise BackupError(f"The database file of snapshot {chosen} is damaged (sha256 {sha}, expected "
                              f"{db['sha256']}); try an older snapshot.")
        if engine.dialect.name == "sqlite":
            engine.dispose()
            path = sqlite_path(engine)
            path.parent.mkdir(parents=True, exist_ok=True)
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
    progress("database", 1, 1)
    with engine.connect() as conn:
        counts = table_counts(conn)
    wrong = {t: (counts.get(t), n) for t, n in manifest["counts"].items() if counts.get(t) != n}
    if wrong:
        raise BackupError(f"The restored database does not match the backup's row counts: {wrong}")
    return RestoreSummary(chosen, len(items), db["size"])


def _copy(src: Path, dst: Path) -> None:
    with src.open("rb") as a, dst.open("wb") as b:
        while chunk := a.read(1024 * 1024):
            b.write(chunk)
        b.flush()
        os.fsync(b.fileno())
