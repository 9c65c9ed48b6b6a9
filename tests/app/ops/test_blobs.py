"""Orphan blobs (files no row refers to, left by a crash before a commit) are swept by
`carefile blobs sweep`; everything a row refers to, and anything young, is kept."""
from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cli import cli_runner

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
HOUR = 3600


def _age(rt: Any, key: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(rt.store.path(key), (t, t))


def _keys(rt: Any) -> set[str]:
    return {k for k, _ in rt.store.iter_keys()}


@pytest.fixture
def stored(rt: Any, submit: Callable[..., Any]) -> dict[str, str]:
    """A form with its source, a submission with a photo, an uploaded form file, and two orphans."""
    from app.models import SubmissionAttachment
    from app.services import forms

    assert submit(files={"photo.jpg": PHOTO}).status_code == 201
    with rt.db.write() as s:
        photo_key = s.query(SubmissionAttachment.blob_key).scalar()
        fv = forms.get_form(s, 1, "household").current_version
        source_key = fv.source_blob_key
    keys = {"photo": photo_key, "source": source_key}
    keys["old_orphan"] = rt.store.put(io.BytesIO(b"left by a crash yesterday")).key
    keys["young_orphan"] = rt.store.put(io.BytesIO(b"a submission arriving right now")).key
    for name, key in keys.items():
        _age(rt, key, 60 if name == "young_orphan" else 2 * 24 * HOUR)
    assert set(keys.values()) == _keys(rt)
    return keys


def test_sweep_deletes_only_old_orphans(rt: Any, stored: dict[str, str]) -> None:
    from app.services.ops import blobs

    assert blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR) == [stored["old_orphan"]]
    assert _keys(rt) == set(stored.values()) - {stored["old_orphan"]}
    assert blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR) == []
    # once past the grace period the other orphan goes too
    _age(rt, stored["young_orphan"], 2 * HOUR)
    assert blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR) == [stored["young_orphan"]]
    assert _keys(rt) == {stored["photo"], stored["source"]}
    with rt.store.open(stored["photo"]) as fh:
        assert fh.read() == PHOTO


def test_dry_run_deletes_nothing(rt: Any, stored: dict[str, str]) -> None:
    from app.services.ops import blobs

    assert blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR, dry_run=True) == [stored["old_orphan"]]
    assert _keys(rt) == set(stored.values())


def test_form_files_and_older_versions_are_kept(rt: Any, publish: Callable[..., Any],
                                                stored: dict[str, str]) -> None:
    from app.services import forms
    from app.services.ops import blobs
    from tests.support.sample_forms import household_md

    md = household_md("2").replace("| | text | child_name | Child's name | yes | |",
                                   "| | note | logo_note | ![logo](jr://images/logo.png) | | |\n"
                                   "| | text | child_name | Child's name | yes | |")
    publish(md)
    with rt.db.write() as s:
        fv = forms.get_form(s, 1, "household").current_version
        assert [a.filename for a in fv.attachments] == ["logo.png"], "the test form should expect logo.png"
        logo = forms.upload_attachment(s, rt.store, fv, "logo.png", io.BytesIO(b"\x89PNG logo"), 10**6,
                                       user=None).blob_key
    assert logo is not None
    for key in _keys(rt):
        _age(rt, key, 2 * 24 * HOUR)
    removed = blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR)
    assert sorted(removed) == sorted([stored["old_orphan"], stored["young_orphan"]])
    # version 1's source, version 2's source, the photo of a version-1 submission, the logo
    assert stored["source"] in _keys(rt) and stored["photo"] in _keys(rt) and logo in _keys(rt)
    assert len(_keys(rt)) == 4


def test_cli_sweep(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str], rt: Any, stored: dict[str, str]) -> None:
    cli = cli_runner(app_config, monkeypatch, capsys)
    code, out, _ = cli("blobs", "sweep", "--dry-run")
    assert code == 0 and "Would remove 1 orphan blob" in out
    assert _keys(rt) == set(stored.values())
    code, out, _ = cli("blobs", "sweep", "--grace", "30")
    assert code == 0 and "Removed 2 orphan blob" in out
    assert _keys(rt) == {stored["photo"], stored["source"]}


def test_finished_export_files_are_kept(rt: Any) -> None:
    from app.models import ExportJob
    from app.services.ops import blobs

    key = rt.store.put(io.BytesIO(b"an export someone will download tomorrow")).key
    _age(rt, key, 2 * HOUR)
    with rt.db.write() as s:
        s.add(ExportJob(project_id=1, kind="csvzip", status="done", blob_key=key, filename="x.zip"))
    assert key not in blobs.sweep_orphans(rt.db, rt.store, grace_seconds=HOUR)
    assert key in _keys(rt)
