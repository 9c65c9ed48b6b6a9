"""Retention: closed files are anonymised after the retention period; dry runs change nothing."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Entity, Submission, SubmissionAttachment, SubmissionComment, SubmissionVersion
from tests.app.children.casework_helpers import FOLLOW_MD, REG_MD, Api, phone, post, reg_xml
from tests.support.cli import cli_runner

VILLAGE_A = "540102002001"
PHOTO_A = b"\xff\xd8\xff\xe0 photo of child A" + b"a" * 64
SHARED = b"\xff\xd8\xff\xe0 the same picture sent for two children" + b"s" * 64
ID_A = "540102201001010011"


@pytest.fixture
def cli(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return cli_runner(app_config, monkeypatch, capsys)


@pytest.fixture
def files(app: Any, make_user: Any, publish: Any, rt: Any) -> dict[str, str]:
    """old: closed in 2019; shared: closed in 2019, its photo also in an open file; recent: closed now; open."""
    publish(REG_MD, "reg.md")
    publish(FOLLOW_MD, "follow.md")
    make_user("dolma", "collector", ["540102"])
    make_user("mgr", "manager", ["540102"])
    uids = {k: str(uuid.uuid4()) for k in ("old", "shared", "recent", "open")}
    dolma = phone(app, "dolma")
    post(dolma, reg_xml("uuid:old", uids["old"], "扎西", "2001-01-01", VILLAGE_A, ID_A, "a.jpg"), {"a.jpg": PHOTO_A})
    post(dolma, reg_xml("uuid:sh", uids["shared"], "卓玛", "2002-02-02", VILLAGE_A, "", "s.jpg"), {"s.jpg": SHARED})
    post(dolma, reg_xml("uuid:rec", uids["recent"], "次仁", "2003-03-03", VILLAGE_A))
    post(dolma, reg_xml("uuid:open", uids["open"], "达瓦", "2010-04-04", VILLAGE_A, "", "s.jpg"), {"s.jpg": SHARED})
    mgr = Api(app, "mgr")
    for key in ("old", "shared", "recent"):
        assert mgr.post(f"/v1/projects/1/children/{uids[key]}/close",
                        {"reason": "other", "note": "家长电话 13900000000"}).status_code == 200
    with rt.db.write() as s:
        for instance, body in (("uuid:old", "扎西的妈妈说…"), ("uuid:open", "达瓦 looks well")):
            sub = s.scalars(select(Submission).where(Submission.instance_id == instance)).one()
            s.add(SubmissionComment(submission_id=sub.id, body=body))
        for key in ("old", "shared"):
            s.scalars(select(Entity).where(Entity.uuid == uids[key])).one().closed_at = datetime(2019, 5, 1, tzinfo=UTC)
    return uids


def _state(rt: Any, instance: str) -> tuple[dict[str, Any], bytes, str | None]:
    with rt.db.session() as s:
        sv = s.scalars(select(SubmissionVersion).where(SubmissionVersion.instance_id == instance)).one()
        key = next((a.blob_key for a in sv.attachments), None)
        return dict(sv.data), bytes(sv.xml), key


def test_dry_run_changes_nothing(files: dict[str, str], cli: Any, rt: Any) -> None:
    before = {i: _state(rt, i) for i in ("uuid:old", "uuid:sh", "uuid:rec", "uuid:open")}
    code, out, _ = cli("retention", "run", "--dry-run", "--now", "2030-06-01T00:00:00")
    assert code == 0
    assert "Would anonymise 2 child file(s)" in out and files["old"] in out and files["recent"] not in out
    assert {i: _state(rt, i) for i in before} == before
    with rt.db.session() as s:
        assert s.scalars(select(AuditEvent).where(AuditEvent.action.startswith("retention"))).all() == []


def test_run_anonymises_only_what_is_due(files: dict[str, str], cli: Any, rt: Any, app: Any) -> None:
    old_key = _state(rt, "uuid:old")[2]
    shared_key = _state(rt, "uuid:sh")[2]
    assert old_key and rt.store.exists(old_key)
    code, out, _ = cli("retention", "run", "--now", "2030-06-01T00:00:00", "--years", "10")
    assert code == 0, out
    assert "Anonymised 2 child file(s)" in out and "1 stored file(s) deleted" in out and "1 review comment(s)" in out

    data, xml, key = _state(rt, "uuid:old")
    assert "grp/child_name" not in data and "grp/id_number" not in data and "photo" not in data
    assert data["grp/birth_date"] == "2001-01-01" and data["village"] == VILLAGE_A  # statistics kept
    assert "扎西".encode() not in xml and ID_A.encode() not in xml and b"a.jpg" not in xml
    assert b"2001-01-01" in xml and key is None
    assert not rt.store.exists(old_key)
    # The shared picture's row is cleared, but the file stays: the open child's record still uses it.
    assert _state(rt, "uuid:sh")[2] is None and rt.store.exists(shared_key)
    assert _state(rt, "uuid:open")[2] == shared_key
    # Not due yet (closed a few years before "now") and open files are untouched.
    assert _state(rt, "uuid:rec")[0]["grp/child_name"] == "次仁"
    assert _state(rt, "uuid:open")[0]["grp/child_name"] == "达瓦"
    file = Api(app, "mgr").get(f"/v1/projects/1/children/{files['old']}").get_json()
    assert file["anonymised"] and file["child"]["label"].startswith("（已匿名）")
    assert all(h["note"] is None for h in file["history"])
    assert file["child"]["status"] == "closed"
    with rt.db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "child.anonymise")).all()
        assert sorted(e.target for e in events) == sorted(f"child:{files[k]}" for k in ("old", "shared"))
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "retention.run")).one().details["children"] == 2
        assert s.scalars(select(SubmissionAttachment).where(SubmissionAttachment.blob_key == old_key)).all() == []
        assert s.scalar(select(Submission.id).where(Submission.instance_id == "uuid:old")) is not None
        assert sorted(s.scalars(select(SubmissionComment.body))) == ["", "达瓦 looks well"]
    # A second run finds nothing more to do.
    code, out, _ = cli("retention", "run", "--now", "2030-06-01T00:00:00", "--years", "10")
    assert "Anonymised 0 child file(s)" in out
