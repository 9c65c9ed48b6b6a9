"""Restore trusts nothing (issue 19, Build 2): tampered manifests and archives are refused before anything is
written — into the new deployment or anywhere else (the issue's `/some/absolute/path` case) — with a message
saying what is wrong; the untampered copy restores."""
from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from tests.app.ops.test_backup import empty_config, filled, run  # noqa: F401  (fixtures)
from tests.support.cli import cli_runner

Runner = Callable[..., tuple[int, str, str]]
Tamper = Callable[[Path, Path, dict[str, Any]], Any]


def _set(path: tuple[str, ...], value: Any) -> Tamper:
    def tamper(_root: Path, _snap: Path, manifest: dict[str, Any]) -> None:
        target = manifest
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return tamper


def _blob(root: Path) -> Path:
    return next(p for p in sorted((root / "blobs").rglob("*")) if p.is_file())


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _database(snap: Path) -> Path:
    return next(p for p in snap.iterdir() if p.name.startswith("database."))


def _raw_manifest(content: bytes) -> Tamper:
    def tamper(_root: Path, snap: Path, _manifest: dict[str, Any]) -> str:
        (snap / "manifest.json").write_bytes(content)
        return "raw"
    return tamper


def _link(pick: Callable[[Path, Path], Path]) -> Tamper:
    def tamper(root: Path, snap: Path, _manifest: dict[str, Any]) -> None:
        victim = pick(root, snap)
        copy = root.parent / f"elsewhere-{victim.name}"
        shutil.copyfile(victim, copy)
        victim.unlink()
        victim.symlink_to(copy)  # the same bytes, through a link
    return tamper


def _linked_snapshot(root: Path, snap: Path, _manifest: dict[str, Any]) -> None:
    moved = root.parent / "moved-snapshot"
    shutil.copytree(snap, moved)
    shutil.rmtree(snap)
    snap.symlink_to(moved, target_is_directory=True)


def _outside(root: Path) -> Path:
    return root.parent / "outside" / "evil"


def tampers(root: Path) -> dict[str, Tamper]:
    outside = str(_outside(root))
    return {
        "absolute database name": _set(("database", "name"), outside),
        "database name with ..": _set(("database", "name"), "../../outside/evil"),
        "database name through ..": _set(("database", "name"), "database.sqlite/../../../outside/evil"),
        "database name of the other backend": lambda r, s, m: m["database"].update(
            name="database.pgdump" if m["backend"] == "sqlite" else "database.sqlite"),
        "extra database field": _set(("database", "path"), outside),
        "database sha256 not a hash": _set(("database", "sha256"), "../" * 20),
        "database size huge": _set(("database", "size"), 2 ** 62),
        "database size text": _set(("database", "size"), "12"),
        "blob key with ..": lambda r, s, m: m["blobs"].update({"../../../outside/evil": 3}),
        "blob key absolute": lambda r, s, m: m["blobs"].update({outside: 3}),
        "blob key uppercase": lambda r, s, m: m["blobs"].update({"A" * 64: 3}),
        "blob key short": lambda r, s, m: m["blobs"].update({"a" * 63: 3}),
        "blob size negative": lambda r, s, m: m["blobs"].update({k: -1 for k in m["blobs"]}),
        "blob size boolean": lambda r, s, m: m["blobs"].update({k: True for k in m["blobs"]}),
        "blob size float": lambda r, s, m: m["blobs"].update({k: 1.5 for k in m["blobs"]}),
        "blob size wrong": lambda r, s, m: m["blobs"].update({k: v + 1 for k, v in m["blobs"].items()}),
        "unknown backend": _set(("backend",), "mysql"),
        "other format": _set(("format",), 2),
        "other snapshot": _set(("snapshot",), "20000101T000000.000000Z"),
        "table name": lambda r, s, m: m["counts"].update({"x; DROP TABLE project": 1}),
        "missing_from_store path": _set(("missing_from_store",), ["../../x"]),
        "blobs a list": _set(("blobs",), ["a" * 64]),
        "manifest a list": _raw_manifest(b"[]"),
        "manifest not JSON": _raw_manifest(b"{\"format\": 1,"),
        "manifest not UTF-8": _raw_manifest(b"\xff\xfe{}"),
        "blob content changed": lambda r, s, m: _flip(_blob(r)),
        "blob truncated": lambda r, s, m: _blob(r).write_bytes(_blob(r).read_bytes()[:-7]),
        "blob missing": lambda r, s, m: _blob(r).unlink(),
        "database content changed": lambda r, s, m: _flip(_database(s)),
        "blob is a link": _link(lambda r, s: _blob(r)),
        "database is a link": _link(lambda r, s: _database(s)),
        "manifest is a link": _link(lambda r, s: s / "manifest.json"),
        "snapshot folder is a link": _linked_snapshot,
    }


def _random_tamper(rng: random.Random) -> Tamper:
    junk: list[Any] = [None, -1, 2 ** 70, 1.0, "", "/", "..", "../" * 8, "/etc/passwd", "C:\\x", "a\x00b", "雪" * 64,
                       "0" * 64 + "/", [], {}, [1, 2], {"name": "x"}, True, "database.sqlite\n"]
    fields = [("database", "name"), ("database", "size"), ("database", "sha256"), ("backend",), ("format",),
              ("snapshot",), ("missing_from_store",), ("blobs",), ("counts",), ("database",)]

    def tamper(root: Path, snap: Path, manifest: dict[str, Any]) -> None:
        for _ in range(rng.randint(1, 3)):
            field = rng.choice([*fields, ("blobs", "*")])
            value = rng.choice(junk)
            if field == ("blobs", "*"):
                key = rng.choice(sorted(manifest["blobs"]) or ["a" * 64]) if isinstance(manifest["blobs"], dict) \
                    else None
                if key is not None:
                    manifest["blobs"][key if rng.random() < 0.5 else str(value)] = value
                continue
            _set(field, value)(root, snap, manifest) if len(field) == 1 or isinstance(manifest["database"], dict) \
                else None
    return tamper


def _nothing_written(cfg: dict[str, Any], root: Path) -> None:
    engine = create_engine(cfg["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == [], "restore wrote into the database"
    finally:
        engine.dispose()
    blobs = Path(cfg["STORAGE_URL"])
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file() and ".tmp" not in p.parts], \
        "restore wrote into the blob store"
    assert not _outside(root).exists() and not (root.parent / "outside").exists(), "restore wrote outside"


def test_tampered_backups_are_refused_before_anything_is_written(
        filled: Any, run: Runner, empty_config: dict[str, Any], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    code, _, err = run("backup", str(good), "--unencrypted")
    assert code == 0, err
    restore = cli_runner(empty_config, monkeypatch, capsys)
    rng = random.Random(19)
    cases = list(tampers(tmp_path / "case" / "backup").items())
    cases += [(f"random {i}", _random_tamper(rng)) for i in range(30)]
    for name, tamper in cases:
        case = tmp_path / "case"
        shutil.rmtree(case, ignore_errors=True)
        root = case / "backup"
        shutil.copytree(good, root, symlinks=True)
        [snap] = list((root / "snapshots").iterdir())
        manifest = json.loads((snap / "manifest.json").read_bytes())
        if tamper(root, snap, manifest) != "raw":
            (snap / "manifest.json").write_text(json.dumps(manifest))
        code, out, err = restore("restore", str(root))
        assert code == 1, f"{name}: restored ({out})"
        assert "Error: " in err and "Traceback" not in err, name
        _nothing_written(empty_config, root)
    # the untampered backup restores
    code, out, err = restore("restore", str(good))
    assert code == 0, err


def test_local_backup_names_stay_inside(tmp_path: Path) -> None:
    from app.services.ops.target import BackupError, LocalTarget

    target = LocalTarget(tmp_path / "b")
    (tmp_path / "b").mkdir()
    for name in ("/etc/passwd", "../x", "a/../../x", "snapshots/../../x"):
        with pytest.raises(BackupError):
            target.open(name)
        with pytest.raises(BackupError):
            target.put_bytes(name, b"x")
    assert not (tmp_path / "x").exists()
    os.symlink(tmp_path, tmp_path / "b" / "up")  # a link out
    with pytest.raises(BackupError, match="bad name"):
        target.put_bytes("up/x", b"x")
    (tmp_path / "b" / "real").mkdir()
    os.symlink(tmp_path / "b" / "real", tmp_path / "b" / "in")  # a link, even one staying inside
    with pytest.raises(BackupError, match="link"):
        target.open("in/x")
    assert not (tmp_path / "x").exists()
