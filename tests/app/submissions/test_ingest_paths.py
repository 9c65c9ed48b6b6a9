"""A new submission is written by plain INSERTs (the hot path); edits, duplicates and entity changes go
through the ORM. Both must write the same rows: these tests send the same records both ways and compare."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion
from app.services.submissions import ingest as submission_service
from tests.app.conftest import PASSWORD, submission_body
from tests.support.digest_client import DigestClient

NESTED_MD = """
| settings |
| | form_id | version | form_title |
| | nested | 3 | Nested |

| survey |
| | type | name | label |
| | begin group | grp | Basics |
| | text | child_name | Name |
| | select_one vil | village | Village |
| | end group | | |
| | integer | age | Age |
| | select_multiple needs | needs | Needs |
| | geopoint | location | Location |
| | image | photo | Photo |
| | image | signature | Signature |
| | begin repeat | members | Members |
| | text | role | Role |
| | begin repeat | kids | Kids |
| | text | kid_name | Kid |
| | end repeat | | |
| | end repeat | | |
| | begin repeat | visits | Visits |
| | date | visit_date | Date |
| | end repeat | | |

| choices |
| | list_name | name | label |
| | vil | 540102002201 | A |
| | needs | food | Food |
| | needs | school | School |
"""
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


def nested_xml(iid: str, members: list[tuple[str, list[str]]], visits: int) -> bytes:
    reps = "".join(f"<members><role>{r}</role>" + "".join(f"<kids><kid_name>{k}</kid_name></kids>" for k in kids)
                   + "</members>" for r, kids in members)
    reps += "".join(f"<visits><visit_date>2026-0{i + 1}-15</visit_date></visits>" for i in range(visits))
    return ('<?xml version="1.0"?><data xmlns:orx="http://openrosa.org/xforms" id="nested" version="3">'
            "<grp><child_name>卓玛</child_name><village>540102002201</village></grp><age>9</age>"
            "<needs>food school</needs><location>29.65 91.13 3650 5</location><photo>p.jpg</photo>"
            f"<signature>sig.png</signature>{reps}<meta><instanceID>{iid}</instanceID>"
            "<instanceName>卓玛 9</instanceName></meta></data>").encode()


@pytest.fixture
def phone(app: Any, publish: Any, make_user: Any) -> DigestClient:
    publish(NESTED_MD, "nested.md")
    make_user("dolma", "collector", ["54"])
    return DigestClient(app.test_client(), "dolma", PASSWORD)


def _rows(rt: Any, iid: str) -> dict[str, Any]:
    """Everything stored for one submission, without its ids, instanceID and times (which must differ)."""
    with rt.db.session() as s:
        sub = s.scalars(select(Submission).where(Submission.instance_id == iid)).one()
        ver = s.scalars(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id)).one()
        assert sub.current_version_id == ver.id
        rows = list(s.scalars(select(SubmissionRepeatRow).where(SubmissionRepeatRow.version_id == ver.id)
                              .order_by(SubmissionRepeatRow.id)))
        ids = {r.id: i for i, r in enumerate(rows)}
        atts = list(s.scalars(select(SubmissionAttachment).where(SubmissionAttachment.version_id == ver.id)
                              .order_by(SubmissionAttachment.id)))
        return {
            "submission": {c: getattr(sub, c) for c in ("form_id", "submitter_id", "device_id", "region_code",
                                                         "entity_uuid", "review_state", "deleted_at")}
            | {"times": sub.created_at is not None and sub.updated_at is not None},
            "version": {c: getattr(ver, c) for c in ("form_id", "form_version_id", "deprecated_id", "instance_name",
                                                      "current", "data", "submitter_id", "user_agent",
                                                      "encrypted_file")}
            | {"xml": ver.xml.replace(iid.encode(), b"IID"), "data": {**ver.data, "meta/instanceID": "IID"}},
            "rows": [(r.repeat, r.ordinal, ids.get(r.parent_id) if r.parent_id else None, r.data) for r in rows],
            "attachments": [(a.name, a.blob_key, a.md5, a.size, a.content_type, a.received_at is not None)
                            for a in atts],
        }


@pytest.mark.parametrize("members,visits", [
    ([("母亲", ["次仁", "-2+3"]), ("舅舅", []), ("父亲", ["x"])], 2),  # nested: a row without kids in between
    ([("母亲", [])], 1),                                              # a nested repeat left empty
    ([], 3),                                                           # flat repeats only
    ([], 0),                                                           # no repeat rows at all
])
def test_core_inserts_write_what_the_orm_writes(phone: DigestClient, rt: Any, monkeypatch: Any,
                                                members: list[tuple[str, list[str]]], visits: int) -> None:
    answers = []
    for core, iid in ((True, "uuid:core"), (False, "uuid:orm")):
        monkeypatch.setattr(submission_service, "CORE_INSERTS", core)
        resp = phone.post("/v1/projects/1/submission?deviceID=collect:x", headers={"User-Agent": "Collect/1"},
                          data=submission_body(nested_xml(iid, members, visits), {"p.jpg": PHOTO}),
                          content_type="multipart/form-data")
        assert resp.status_code == 201, resp.data
        answers.append(resp.data)
    assert answers[0] == answers[1]
    core_rows, orm_rows = _rows(rt, "uuid:core"), _rows(rt, "uuid:orm")
    assert core_rows == orm_rows
    assert core_rows["submission"]["region_code"] == "540102002201"
    assert [a[0] for a in core_rows["attachments"]] == ["p.jpg", "sig.png"]
    assert core_rows["attachments"][1][1] is None  # the signature has not arrived yet
    assert len(core_rows["rows"]) == sum(1 + len(k) for _, k in members) + visits


def test_missing_file_then_its_part_completes_a_core_insert(phone: DigestClient, rt: Any) -> None:
    """A split submission: the first part (written by the hot path) lacks a file, the second brings it."""
    xml = nested_xml("uuid:split", [], 1)
    first = phone.post("/v1/projects/1/submission", data=submission_body(xml, {"p.jpg": PHOTO}),
                       content_type="multipart/form-data")
    assert first.status_code == 201
    second = phone.post("/v1/projects/1/submission", data=submission_body(xml, {"sig.png": PHOTO[:100]}),
                        content_type="multipart/form-data")
    assert second.status_code == 201
    atts = _rows(rt, "uuid:split")["attachments"]
    assert [(a[0], a[3]) for a in atts] == [("p.jpg", len(PHOTO)), ("sig.png", 100)]


def test_token_user_is_loaded_whole_and_detached(rt: Any, make_user: Any, publish: Any) -> None:
    """The token URL's user is built from Core rows: same columns, regions and form assignments as the ORM
    loads, detached, and safe to use in a later session (nothing is inserted twice)."""
    from sqlalchemy import func
    from sqlalchemy.orm import joinedload
    from sqlalchemy.orm.base import instance_state

    from app.models import FormAssignment, User, UserRegion
    from app.services.identity import users

    publish(NESTED_MD, "nested.md")
    make_user("pema", "collector", ["540102", "540121", "5401"])
    with rt.db.write() as s:
        pema = users.get_user(s, "pema")
        s.add(FormAssignment(user_id=pema.id, form_id=1))
        token = users.renew_token(s, pema, rt.config["SECRET_KEY"]).token
    with rt.db.reader() as s:
        found = users.user_for_token(s, token)
    user = found.user
    assert found.reason == "ok" and user is not None
    assert instance_state(user).detached and not instance_state(user).expired_attributes
    with rt.db.session() as s:
        orm = s.execute(select(User).options(joinedload(User.regions), joinedload(User.assignments))
                        .where(User.id == user.id)).unique().scalar_one()
        for column in User.__table__.columns:
            assert getattr(user, column.key) == getattr(orm, column.key), column.key
        assert user.region_codes == orm.region_codes == ["5401", "540102", "540121"]
        assert [a.form_id for a in user.assignments] == [a.form_id for a in orm.assignments] == [1]
    with rt.db.write() as s:  # attached to a later session: known rows, not new ones
        s.add(user)
        user.display_name = "Pema"
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(UserRegion)) == 3
        assert s.scalar(select(func.count()).select_from(FormAssignment)) == 1
        assert s.get(User, user.id).display_name == "Pema"  # type: ignore[union-attr]
    with rt.db.write() as s:
        users.revoke_tokens(s, users.get_user(s, "pema"))
    with rt.db.reader() as s:
        assert users.user_for_token(s, token).reason == "revoked"
        assert users.user_for_token(s, "x" * 64).reason == "unknown"


def _entity_rows(rt: Any, iid: str) -> dict[str, Any]:
    """The submission's entity effects, without ids, uuids and times."""
    from app.models import Entity, EntityEvent, EntityVersion, HeldChange

    with rt.db.session() as s:
        sub = s.scalars(select(Submission).where(Submission.instance_id == iid)).one()
        ver = s.get(SubmissionVersion, sub.current_version_id)
        events = list(s.scalars(select(EntityEvent).where(EntityEvent.submission_version_id == ver.id)))
        versions = list(s.scalars(select(EntityVersion).where(EntityVersion.submission_id == sub.id)))
        entities = [s.get(Entity, v.entity_id) for v in versions]
        held = list(s.scalars(select(HeldChange).where(HeldChange.version_id == ver.id)))
        return {
            "submission": (sub.region_code, sub.review_state, sub.entity_uuid is not None),
            "events": [(e.dataset, e.status, e.code, e.message) for e in events],
            "versions": [(v.version, v.label, v.data, v.data_received, v.user_id, v.base_version) for v in versions],
            "entities": [(e.label, e.version, e.region_code, e.deleted_at) for e in entities if e is not None],
            "held": [(h.kind, h.status, h.regions, h.reason, h.submitter_id) for h in held],
        }


@pytest.mark.parametrize("village", ["540102002201", "540221100201"])  # in the collector's regions, and not
def test_core_inserts_apply_entity_changes_as_the_orm_path(app: Any, rt: Any, publish: Any, make_user: Any,
                                                           monkeypatch: Any, village: str) -> None:
    from tests.support.entity_forms import REGISTER_MD, register_xml

    publish(REGISTER_MD, "register.md")
    make_user("dawa", "collector", ["540102"])
    phone = DigestClient(app.test_client(), "dawa", PASSWORD)
    answers = []
    for core, iid in ((True, "uuid:core"), (False, "uuid:orm")):
        monkeypatch.setattr(submission_service, "CORE_INSERTS", core)
        resp = phone.post("/v1/projects/1/submission", content_type="multipart/form-data",
                          data=submission_body(register_xml(iid, str(uuid.uuid4()), "卓玛", village)))
        assert resp.status_code == 201, resp.data
        answers.append(resp.data)
    assert answers[0] == answers[1]
    core_rows, orm_rows = _entity_rows(rt, "uuid:core"), _entity_rows(rt, "uuid:orm")
    assert core_rows == orm_rows
    if village.startswith("540102"):
        assert core_rows["events"][0][1] == "applied" and core_rows["entities"][0][0] == "卓玛"
    else:  # outside the collector's regions: held for a coordinator, in both paths
        assert core_rows["events"][0][1] == "held" and core_rows["held"] and b"review" in answers[0]
