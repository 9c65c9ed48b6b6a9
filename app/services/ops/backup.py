"""`carefile backup DEST` and `carefile backup verify DEST`.

A destination (a folder or `s3://bucket/prefix`) holds:

    carefile-backup.json                  format, and the encryption header if encrypted
    blobs/ab/cd/<sha256>                  every blob any snapshot refers to, named by its content hash,
                                          so a later backup copies only blobs that are not there yet
    snapshots/<UTC time>/database.sqlite  (or database.pgdump: pg_dump custom format)
    snapshots/<UTC time>/manifest.json    written last: a snapshot without it is incomplete

The snapshot is consistent while the server runs: SQLite through its online backup API (one read
transaction), PostgreSQL through `pg_dump --snapshot` on a REPEATABLE READ transaction in which the
referenced blob keys and the row counts are read too. Blobs are immutable and content-addressed, so
copying them after the database snapshot is safe. The manifest lists the database file's size and
sha256, every referenced blob with its size (its name is its sha256) and the row count of every table.
With a passphrase every file is encrypted (crypto.py); file names and sizes stay visible.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from glob import glob
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.models import Base
from app.services.ops.blobs import referenced_keys_query
from app.services.ops.crypto import CHUNK, TAG, Sealer
from app.services.ops.target import BackupError, Target
from storage import BlobNotFound, BlobStore

FORMAT = 1
HEADER = "carefile-backup.json"
Progress = Callable[[str, int, int], None]


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def blob_name(key: str) -> str:
    return f"blobs/{key[:2]}/{key[2:4]}/{key}"


class _HashingSink:
    def __init__(self, inner: Any | None = None) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)


class _HashingReader(io.RawIOBase):
    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = self.src.read(size)
        self.sha.update(data)
        self.size += len(data)
        return data


class Destination:
    """A backup target with its encryption (if any)."""

    def __init__(self, target: Target, sealer: Sealer | None) -> None:
        self.target = target
        self.sealer = sealer

    @property
    def encrypted(self) -> bool:
        return self.sealer is not None

    def plain_size(self, stored: int) -> int:
        if self.sealer is None:
            return stored
        body = stored - 12
        chunks = max(1, -(-body // (CHUNK + TAG)))
        return body - TAG * chunks

    def write(self, name: str, src: BinaryIO, spool_dir: str | None = None) -> tuple[int, str]:
        """Store `src` as `name`; the plaintext's (size, sha256)."""
        reader = _HashingReader(src)
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix="carefile-backup-", delete=False) as tmp:
            try:
                if self.sealer is not None:
                    self.sealer.encrypt(reader, tmp, name)  # type: ignore[arg-type]
                else:
                    shutil.copyfileobj(reader, tmp, CHUNK)  # type: ignore[misc]
                tmp.flush()
                tmp.close()
                self.target.put_file(name, Path(tmp.name))
            finally:
                os.unlink(tmp.name)
        return reader.size, reader.sha.hexdigest()

    def read(self, name: str, sink: Any | None = None) -> tuple[int, str]:
        """Read `name` (decrypting it) into `sink`; the plaintext's (size, sha256)."""
        out = _HashingSink(sink)
        with self.target.open(name) as fh:
            if self.sealer is not None:
                self.sealer.decrypt(fh, out, name)
            else:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
        return out.size, out.sha.hexdigest()

    def write_json(self, name: str, value: Any) -> None:
        self.write(name, io.BytesIO(json.dumps(value, indent=1, sort_keys=True).encode()))

    def read_json(self, name: str) -> Any:
        buf = io.BytesIO()
        self.read(name, buf)
        return json.loads(buf.getvalue())

    def snapshots(self) -> list[str]:
        """Complete snapshots (with a manifest), oldest first."""
        ids = {n.split("/")[1] for n, _ in self.target.names("snapshots/") if n.endswith("/manifest.json")}
        return sorted(ids)

    def manifest(self, snapshot: str | None) -> tuple[str, dict[str, Any]]:
        ids = self.snapshots()
        if not ids:
            raise BackupError(f"There is no complete backup in {self.target.url}.")
        chosen = snapshot or ids[-1]
        if chosen not in ids:
            raise BackupError(f"There is no snapshot {chosen} in {self.target.url}; there are: {', '.join(ids)}.")
        try:
            return chosen, self.read_json(f"snapshots/{chosen}/manifest.json")
        except ValueError:  # not JSON, not UTF-8
            raise BackupError(f"The manifest of snapshot {chosen} is not JSON: it was damaged or changed after the "
                              "backup was made; nothing was restored. Try another snapshot (--snapshot).") from None


def open_destination(target: Target, passphrase: str | None, create: bool) -> Destination:
    """Open (or, for a backup, set up) a destination; checks the passphrase against it."""
    if target.exists(HEADER):
        header = json.loads(target.read_bytes(HEADER))
        if header.get("format") != FORMAT:
            raise BackupError(f"{target.url} holds backups of format {header.get('format')}; this CareFile "
                              f"reads format {FORMAT}.")
        enc = header.get("encryption")
        if enc and not passphrase:
            raise BackupError(f"The backups in {target.url} are encrypted: give the passphrase (--passphrase "
                              "or CAREFILE_BACKUP_PASSPHRASE).")
        if not enc and passphrase:
            raise BackupError(f"The backups in {target.url} are not encrypted; back up to a new destination "
                              "to encrypt (one destination holds one kind).")
        return Destination(target, Sealer.open(passphrase, enc) if enc and passphrase else None)
    if not create:
        raise BackupError(f"There is no CareFile backup in {target.url} ({HEADER} is missing).")
    if any(True for _ in target.names("")):
        raise BackupError(f"{target.url} is not empty and holds no CareFile backup: choose an empty folder "
                          "or prefix.")
    sealer, enc = Sealer.create(passphrase) if passphrase else (None, None)
    target.put_bytes(HEADER, json.dumps({"format": FORMAT, "encryption": enc}, indent=1).encode())
    return Destination(target, sealer)


# ---------------------------------------------------------------------------------- database


def find_pg_tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else the newest /usr/lib/postgresql/<version>/bin (Debian)."""
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4])
                        if p.split("/")[4].isdigit() else 0, reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise BackupError(f"{name} was not found. Install the PostgreSQL client (apt-get install "
                          "postgresql-client, the same major version as the server or newer).")
    return found


def libpq_args(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment carrying it."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def table_counts(conn: Connection) -> dict[str, int]:
    existing = set(conn.dialect.get_table_names(conn))
    return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables if t.name in existing}


def _read_snapshot_facts(conn: Connection) -> tuple[set[str], dict[str, int], str | None]:
    keys = {k for (k,) in conn.execute(referenced_keys_query()) if k}
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return keys, table_counts(conn), revision


def snapshot_database(engine: Engine, out: Path) -> tuple[str, set[str], dict[str, int], str | None]:
    """Write a consistent copy of the database to `out`: (file name, blob keys, row counts, revision)."""
    if engine.dialect.name == "sqlite":
        src_path = engine.url.database
        src = sqlite3.connect(str(src_path), timeout=60)
        dst = sqlite3.connect(str(out))
        try:
            src.backup(dst)  # SQLite's online backup API: one consistent read of every page
        finally:
            dst.close()
            src.close()
        copy = create_engine(f"sqlite:///{out}")
        try:
            with copy.connect() as conn:
                keys, counts, revision = _read_snapshot_facts(conn)
        finally:
            copy.dispose()
        return "database.sqlite", keys, counts, revision
    if engine.dialect.name != "postgresql":
        raise BackupError(f"Backups of {engine.dialect.name} databases are not supported.")
    pg_dump = find_pg_tool("pg_dump")
    uri, env = libpq_args(engine)
    with engine.connect() as raw:
        conn = raw.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snap = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            keys, counts, revision = _read_snapshot_facts(conn)
            # pg_dump reads the very snapshot this transaction sees (it must stay open meanwhile).
            proc = subprocess.run([pg_dump, "--format=custom", "--no-owner", "--no-privileges",
                                   f"--snapshot={snap}", f"--file={out}", f"--dbname={uri}"],
                                  env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"pg_dump failed: {proc.stderr.strip()[-2000:]}")
    return "database.pgdump", keys, counts, revision


# ---------------------------------------------------------------------------------- backup


@dataclass
class BackupSummary:
    snapshot: str
    database_bytes: int
    blobs: int
    blobs_copied: int
    bytes_copied: int
    missing_from_store: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_backup(engine: Engine, store: BlobStore, dest: Destination, progress: Progress = _no_progress,
               spool_dir: str | None = None) -> BackupSummary:
    """Snapshot the database, copy the blobs it refers to that DEST lacks, write the manifest."""
    started = datetime.now(UTC)
    snapshot = started.strftime("%Y%m%dT%H%M%S.%fZ")
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="carefile-backup-") as tmp:
        progress("database", 0, 1)
        db_path = Path(tmp) / "db"
        db_name, keys, counts, revision = snapshot_database(engine, db_path)
        with db_path.open("rb") as fh:
            db_size, db_sha = dest.write(f"snapshots/{snapshot}/{db_name}", fh, spool_dir)
        progress("database", 1, 1)
    present = {n.rsplit("/", 1)[1]: dest.plain_size(size) for n, size in dest.target.names("blobs/")}
    blobs: dict[str, int] = {}
    missing: list[str] = []
    copied = copied_bytes = 0
    ordered = sorted(keys)
    for i, key in enumerate(ordered):
        if key in present:
            blobs[key] = present[key]
        else:
            try:
                with store.open(key) as src:
                    size, sha = dest.write(blob_name(key), src, spool_dir)
            except BlobNotFound:
                missing.append(key)
                continue
            if sha != key:
                raise BackupError(f"The stored file {key} is damaged (its content hashes to {sha}); "
                                  "it was not backed up. Restore it from an older backup.")
            blobs[key] = size
            copied += 1
            copied_bytes += size
        progress("files", i + 1, len(ordered))
    manifest = {
        "format": FORMAT, "snapshot": snapshot, "created_at": started.isoformat(),
        "backend": engine.dialect.name, "schema_revision": revision,
        "database": {"name": db_name, "size": db_size, "sha256": db_sha},
        "counts": counts, "blobs": blobs, "missing_from_store": missing, "encrypted": dest.encrypted,
    }
    dest.write_json(f"snapshots/{snapshot}/manifest.json", manifest)
    return BackupSummary(snapshot, db_size, len(blobs), copied, copied_bytes, missing,
                         (datetime.now(UTC) - started).total_seconds())


# ---------------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    snapshot: str
    blobs_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(dest: Destination, snapshot: str | None = None, progress: Progress = _no_progress) -> VerifyReport:
    """Re-read every file of the snapshot: checksums, sizes, and every referenced blob present."""
    chosen, manifest = dest.manifest(snapshot)
    report = VerifyReport(chosen)
    db = manifest["database"]
    name = f"snapshots/{chosen}/{db['name']}"
    try:
        size, sha = dest.read(name)
        if (size, sha) != (db["size"], db["sha256"]):
            report.problems.append(f"{name}: expected {db['size']} bytes with sha256 {db['sha256']}, found "
                                   f"{size} bytes with sha256 {sha}")
    except BackupError as exc:
        report.problems.append(str(exc))
    for key in manifest.get("missing_from_store", []):
        report.problems.append(f"{blob_name(key)}: was already missing from the server's store at backup time")
    present = {n for n, _ in dest.target.names("blobs/")}
    items = sorted(manifest["blobs"].items())
    for i, (key, expected) in enumerate(items):
        bname = blob_name(key)
        if bname not in present:
            report.problems.append(f"{bname}: missing")
        else:
            try:
                size, sha = dest.read(bname)
                if sha != key or size != expected:
                    report.problems.append(f"{bname}: damaged (sha256 {sha}, {size} bytes; expected {expected})")
            except BackupError as exc:
                report.problems.append(str(exc))
        report.blobs_checked += 1
        progress("files", i + 1, len(items))
    return report


def database_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not conn.dialect.get_table_names(conn) and not conn.dialect.get_view_names(conn)


def sqlite_path(engine: Engine) -> Path:
    return Path(str(make_url(str(engine.url)).database))
