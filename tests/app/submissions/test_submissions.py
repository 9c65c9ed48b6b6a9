"""POST /submission as ODK Collect sends it: storage, idempotency, edits, splits, bad input."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.models import Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion
from tests.support.sample_forms import household_xml

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def _count(rt: Any, model: Any) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_head_preflight_is_204_with_size_limit(collect: Any, household: Any, rt: Any) -> None:
    resp = collect.head("/v1/projects/1/submission?deviceID=collect:abc")
    assert resp.status_code == 204
    assert resp.headers["X-OpenRosa-Version"] == "1.0"
    assert resp.headers["X-OpenRosa-Accept-Content-Length"] == str(rt.config["MAX_SUBMISSION_BYTES"])
    assert resp.data == b""


def test_submission_is_parsed_into_rows_and_photo_stored(submit: Any, rt: Any) -> None:
    resp = submit(files={"photo.jpg": PHOTO}, query_string={"deviceID": "collect:abc"})
    assert resp.status_code == 201, resp.data
    assert b"OpenRosaResponse" in resp.data and b"Submission received" in resp.data
    with rt.db.session() as s:
        sub = s.scalars(select(Submission)).one()
        assert sub.instance_id == "uuid:00000000-0000-4000-8000-000000000001"
        assert sub.device_id == "collect:abc"
        assert sub.region_code == "540102002201"
        ver = s.get(SubmissionVersion, sub.current_version_id)
        assert ver.data["child_name"] == "Tashi"
        assert ver.data["age"] == 9
        assert ver.data["needs"] == ["food", "health"]
        assert ver.data["location"]["coordinates"][:2] == [91.13, 29.65]
        rows = sorted(ver.repeat_rows, key=lambda r: r.ordinal)
        assert [(r.ordinal, r.data["member_role"], r.data["member_age"]) for r in rows] == [
            (1, "mother", 34), (2, "grandfather", 70)]
        assert rows[0].repeat.endswith("/members")
        (att,) = ver.attachments
        assert att.name == "photo.jpg" and att.size == len(PHOTO)
        with rt.store.open(att.blob_key) as fh:
            assert fh.read() == PHOTO
        assert b"<child_name>Tashi</child_name>" in ver.xml


def test_identical_resend_is_acknowledged_and_stored_once(submit: Any, rt: Any) -> None:
    assert submit(files={"photo.jpg": PHOTO}).status_code == 201
    again = submit(files={"photo.jpg": PHOTO})
    assert again.status_code == 201
    assert _count(rt, Submission) == 1 and _count(rt, SubmissionVersion) == 1
    assert _count(rt, SubmissionRepeatRow) == 2 and _count(rt, SubmissionAttachment) == 1


def test_same_instance_id_with_different_content_is_409(submit: Any, rt: Any) -> None:
    assert submit().status_code == 201
    resp = submit(household_xml(name="Other"))
    assert resp.status_code == 409
    assert b"different content" in resp.data
    with rt.db.session() as s:
        assert s.scalars(select(SubmissionVersion)).one().data["child_name"] == "Tashi"


def test_split_submission_parts_are_merged(submit: Any, rt: Any) -> None:
    first = submit(extra={"*isIncomplete*": "yes"})
    assert first.status_code == 201
    with rt.db.session() as s:
        assert s.scalars(select(SubmissionAttachment)).one().blob_key is None
    second = submit(files={"photo.jpg": PHOTO})
    assert second.status_code == 201
    with rt.db.session() as s:
        att = s.scalars(select(SubmissionAttachment)).one()
        assert att.blob_key is not None and att.size == len(PHOTO)
    assert _count(rt, Submission) == 1


def test_edit_with_deprecated_id_adds_a_version(submit: Any, rt: Any) -> None:
    assert submit(files={"photo.jpg": PHOTO}).status_code == 201
    edited = household_xml("uuid:00000000-0000-4000-8000-000000000002", name="Tashi D.",
                           deprecated_id="uuid:00000000-0000-4000-8000-000000000001")
    resp = submit(edited)
    assert resp.status_code == 201, resp.data
    with rt.db.session() as s:
        sub = s.scalars(select(Submission)).one()
        assert sub.instance_id == "uuid:00000000-0000-4000-8000-000000000001"
        assert sub.review_state == "edited"
        versions = s.scalars(select(SubmissionVersion).order_by(SubmissionVersion.id)).all()
        assert [v.current for v in versions] == [False, True]
        assert s.get(SubmissionVersion, sub.current_version_id).data["child_name"] == "Tashi D."
        # the photo was not re-sent: the edit keeps the earlier file
        assert versions[1].attachments[0].blob_key == versions[0].attachments[0].blob_key
    # editing the old copy again is refused
    stale = household_xml("uuid:00000000-0000-4000-8000-000000000003",
                          deprecated_id="uuid:00000000-0000-4000-8000-000000000001")
    assert submit(stale).status_code == 409
    unknown = household_xml("uuid:00000000-0000-4000-8000-000000000004", deprecated_id="uuid:nope")
    assert submit(unknown).status_code == 404


def test_unreferenced_files_are_ignored(submit: Any, rt: Any) -> None:
    resp = submit(files={"photo.jpg": PHOTO, "leftover.jpg": b"junk", "audit.csv": b"a,b"})
    assert resp.status_code == 201
    with rt.db.session() as s:
        assert [a.name for a in s.scalars(select(SubmissionAttachment))] == ["photo.jpg"]
    assert sum(1 for _ in rt.store.iter_keys()) == 2  # the form source and the photo


def test_missing_instance_id_gets_a_content_id(submit: Any, rt: Any) -> None:
    xml = household_xml().replace(b"<instanceID>uuid:00000000-0000-4000-8000-000000000001</instanceID>", b"")
    assert submit(xml).status_code == 201
    assert submit(xml).status_code == 201
    with rt.db.session() as s:
        (sub,) = s.scalars(select(Submission)).all()
        assert sub.instance_id.startswith("sha256:")


def test_non_ascii_attachment_name(submit: Any, rt: Any) -> None:
    xml = household_xml(photo="照片.jpg")
    assert submit(xml, files={"照片.jpg": PHOTO}).status_code == 201
    with rt.db.session() as s:
        att = s.scalars(select(SubmissionAttachment)).one()
        assert att.name == "照片.jpg" and att.blob_key is not None


def test_path_in_attachment_name_is_refused(submit: Any, rt: Any) -> None:
    resp = submit(household_xml(photo="../../etc/passwd"), files={"../../etc/passwd": b"x"})
    assert resp.status_code == 400
    assert b"plain file name" in resp.data
    assert _count(rt, Submission) == 0


def test_unknown_form_and_version(submit: Any) -> None:
    resp = submit(household_xml(form_id="nope"))
    assert resp.status_code == 404 and b"no form 'nope'" in resp.data
    resp = submit(household_xml(version="999"))
    assert resp.status_code == 404 and b"'999'" in resp.data


def test_old_version_still_accepted(submit: Any, publish: Any) -> None:
    from tests.support.sample_forms import household_md

    publish(household_md("2"))
    assert submit(household_xml(version="1")).status_code == 201
    assert submit(household_xml("uuid:x2", version="2")).status_code == 201


def test_closed_form_refuses_and_closing_accepts(submit: Any, rt: Any) -> None:
    from app.services import forms

    def set_state(state: str) -> None:
        with rt.db.write() as s:
            forms.set_state(s, forms.get_form(s, 1, "household"), state, user=None)

    set_state("closing")
    assert submit().status_code == 201
    set_state("closed")
    resp = submit(household_xml("uuid:other"))
    assert resp.status_code == 409 and b"closed" in resp.data


def test_malformed_xml_and_xxe_are_rejected(submit: Any, rt: Any) -> None:
    assert submit(b"<data id='household'><unclosed></data>").status_code == 400
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<data id="household" version="1"><child_name>&x;</child_name></data>')
    assert submit(xxe).status_code == 400
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
              b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]><data id="household" version="1"><child_name>&c;</child_name></data>')
    assert submit(laughs).status_code == 400
    assert submit(b"<data version='1'/>").status_code == 400
    assert _count(rt, Submission) == 0


def test_missing_xml_part_and_not_multipart(collect: Any, household: Any) -> None:
    resp = collect.post("/v1/projects/1/submission", data={"other": "x"}, content_type="multipart/form-data")
    assert resp.status_code == 400 and b"xml_submission_file" in resp.data
    resp = collect.post("/v1/projects/1/submission", data=household_xml(), content_type="text/xml")
    assert resp.status_code == 400


def test_oversize_body_is_413(app: Any, collect: Any, household: Any, rt: Any) -> None:
    rt.config["MAX_SUBMISSION_BYTES"] = 2000
    app.config["MAX_CONTENT_LENGTH"] = 2000
    from tests.app.conftest import submission_body

    resp = collect.post("/v1/projects/1/submission", data=submission_body(household_xml(), {"photo.jpg": PHOTO}),
                        content_type="multipart/form-data")
    assert resp.status_code == 413
    assert b"OpenRosaResponse" in resp.data


def test_submission_needs_openrosa_header(collect: Any, household: Any) -> None:
    from tests.app.conftest import submission_body

    resp = collect.post("/v1/projects/1/submission", data=submission_body(household_xml()),
                        content_type="multipart/form-data", headers={"X-OpenRosa-Version": ""})
    assert resp.status_code == 400


def test_concurrent_twin_is_caught_by_the_unique_constraint(submit: Any, rt: Any, monkeypatch: Any) -> None:
    """Two identical POSTs racing: both lookups see nothing; the second insert fails on the unique
    (form, instanceID) constraint and its retry answers as a duplicate, storing nothing twice."""
    from app.services.submissions import ingest as submissions

    assert submit(files={"photo.jpg": PHOTO}).status_code == 201
    real = submissions._lookup

    def lookup_before_the_twin_committed(*args: Any, **kwargs: Any) -> Any:
        form, version_id, schema, _seen = real(*args, **kwargs)
        return form, version_id, schema, False

    monkeypatch.setattr(submissions, "_lookup", lookup_before_the_twin_committed)
    writes: list[object] = []
    real_write, real_insert = submissions._write, submissions._insert_new

    def counting_write(*args: Any, **kwargs: Any) -> Any:
        writes.append(kwargs.get("known_new", False))
        return real_write(*args, **kwargs)

    def counting_insert(*args: Any, **kwargs: Any) -> Any:
        writes.append("insert")
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(submissions, "_write", counting_write)
    monkeypatch.setattr(submissions, "_insert_new", counting_insert)
    again = submit(files={"photo.jpg": PHOTO})
    assert again.status_code == 201 and b"already on the server" in again.data
    # The plain insert (a form without entities: on a driver connection) hit the constraint; the retry, through
    # the session, found the twin.
    assert writes == ["insert", False]
    assert _count(rt, Submission) == 1 and _count(rt, SubmissionVersion) == 1
