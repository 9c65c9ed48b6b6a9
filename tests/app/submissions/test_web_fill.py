"""Paper entry and web edits (app/web/fill.py) on both backends: the same ingest as Collect,
attributed to the web user; who may edit; region scope; CSRF; clear 4xx refusals; audited."""
from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Submission, SubmissionVersion, User
from tests.app.conftest import submission_body
from tests.app.web_helpers import Browser
from tests.support.sample_forms import household_xml


@pytest.fixture(autouse=True)
def _renderer_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the page's configuration, not the renderer: they must not depend on whether
    scripts/vendor_webforms.py has run yet (in a fresh clone the browser tests vendor it later)."""
    monkeypatch.setattr("app.web.fill.web_forms_vendored", lambda: True)

FIRST = "uuid:00000000-0000-4000-8000-00000000f001"
EDIT = "uuid:00000000-0000-4000-8000-00000000f002"
PHOTO = b"\xff\xd8paper form photo"
URL = "/forms/household/fill/submission"


def signed_in(app: Any, make_user: Any, name: str, role: str, regions: list[str] | None = None,
              lang: str = "en") -> Browser:
    make_user(name, role, regions)
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")
    assert b.post("/language", {"lang": lang, "next": "/"}).status_code == 302
    return b


def send(b: Any, xml: bytes, files: dict[str, bytes] | None = None) -> Any:
    return b.post(URL, submission_body(xml, files)(), content_type="multipart/form-data")


def versions(rt: Any, instance_id: str) -> list[SubmissionVersion]:
    with rt.db.session() as s:
        sub = s.scalar(select(Submission).where(Submission.instance_id == instance_id))
        if sub is None:
            return []
        rows = list(s.scalars(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id)
                              .order_by(SubmissionVersion.id)))
        for row in rows:
            _ = row.attachments
        s.expunge_all()
        return rows


def username(rt: Any, user_id: int | None) -> str | None:
    with rt.db.session() as s:
        user = s.get(User, user_id) if user_id else None
        return user.username if user else None


def actions(rt: Any) -> list[tuple[str, str]]:
    with rt.db.session() as s:
        return [(e.action, e.username) for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action.like("submission.web_%")).order_by(AuditEvent.id))]


def test_manager_enters_a_paper_form_through_the_collect_ingest(app: Any, rt: Any, make_user: Any,
                                                               household: Any) -> None:
    b = signed_in(app, make_user, "dawa", "manager", ["540102"])
    page = b.get("/submissions/household").get_data(as_text=True)
    assert 'href="/forms/household/fill"' in page
    fill = b.get("/forms/household/fill")
    assert fill.status_code == 200 and "Content-Security-Policy" in fill.headers
    config = json.loads(fill.get_data(as_text=True).split('id="fill-config">')[1].split("</script>")[0])
    assert config["submissionUrl"] == URL and config["edit"] is None
    assert b.get(config["formUrl"]).data.startswith(b"<?xml")

    resp = send(b, household_xml(FIRST, name="Paper Tashi"), {"photo.jpg": PHOTO})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["status"] == "created" and resp.json["message"] == "The form was saved."
    assert resp.json["url"] == f"/submissions/household/{FIRST}"
    [v] = versions(rt, FIRST)
    assert v.data["child_name"] == "Paper Tashi" and username(rt, v.submitter_id) == "dawa"
    [photo] = v.attachments
    assert photo.blob_key is not None and photo.size == len(PHOTO)
    assert actions(rt) == [("submission.web_entry", "dawa")]


def test_without_the_csrf_token_nothing_is_stored(app: Any, rt: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, "dawa", "manager", ["540102"])
    resp = b.client.post(URL, data=submission_body(household_xml(FIRST))(), content_type="multipart/form-data")
    assert resp.status_code == 400
    assert versions(rt, FIRST) == []


def test_bad_input_is_a_clear_4xx(app: Any, rt: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, "coord", "coordinator", ["540102"])
    resp = b.post(URL, {"note": "no xml"}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "no form data" in resp.json["message"]
    resp = b.post(URL, submission_body(b"<data id='household'><unclosed></data>")(),
                  content_type="multipart/form-data")
    assert resp.status_code == 400 and resp.json["message"]
    # the XML of another form is not accepted on this form's page
    other = household_xml(FIRST, form_id="elsewhere")
    assert send(b, other).status_code == 404
    assert b.get("/forms/nosuch/fill").status_code == 404


def test_coordinator_edit_makes_a_new_version_and_keeps_the_photo(app: Any, rt: Any, make_user: Any,
                                                                  household: Any) -> None:
    mgr = signed_in(app, make_user, "dawa", "manager", ["540102"])
    assert send(mgr, household_xml(FIRST), {"photo.jpg": PHOTO}).status_code == 201
    # a manager may not edit: no button, the page is refused, and an edit sent anyway is refused
    assert 'id="edit"' not in mgr.get(f"/submissions/household/{FIRST}").get_data(as_text=True)
    assert mgr.get(f"/submissions/household/{FIRST}/edit").status_code == 403
    refused = send(mgr, household_xml(EDIT, name="Changed", deprecated_id=FIRST))
    assert refused.status_code == 403 and "coordinators" in refused.json["message"]
    assert len(versions(rt, FIRST)) == 1

    b = signed_in(app, make_user, "lhamo", "coordinator", ["540102"])
    view = b.get(f"/submissions/household/{FIRST}").get_data(as_text=True)
    assert f'href="/submissions/household/{FIRST}/edit"' in view
    page = b.get(f"/submissions/household/{FIRST}/edit").get_data(as_text=True)
    config = json.loads(page.split('id="fill-config">')[1].split("</script>")[0])
    assert config["edit"]["files"] == ["photo.jpg"]
    assert b.get(config["edit"]["instanceUrl"]).data == household_xml(FIRST)
    assert b.get(config["edit"]["fileBase"] + "photo.jpg").data == PHOTO

    resp = send(b, household_xml(EDIT, name="Tashi Dorje", deprecated_id=FIRST))  # the photo is not re-sent
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["status"] == "edited" and resp.json["version_instance_id"] == EDIT
    old, new = versions(rt, FIRST)
    assert not old.current and new.current and new.deprecated_id == FIRST
    assert new.data["child_name"] == "Tashi Dorje" and username(rt, new.submitter_id) == "lhamo"
    assert [(a.name, a.blob_key) for a in new.attachments] == [(a.name, a.blob_key) for a in old.attachments]
    assert new.attachments[0].blob_key is not None
    assert actions(rt) == [("submission.web_entry", "dawa"), ("submission.web_edit", "lhamo")]
    # the edited version is no longer the current one: editing it again is refused with a message
    again = send(b, household_xml("uuid:00000000-0000-4000-8000-00000000f003", deprecated_id=FIRST))
    assert again.status_code == 409 and again.json["message"]


def test_edit_pages_of_another_region_answer_404(app: Any, rt: Any, make_user: Any, household: Any) -> None:
    mgr = signed_in(app, make_user, "dawa", "manager", ["540102"])
    assert send(mgr, household_xml(FIRST), {"photo.jpg": PHOTO}).status_code == 201
    b = signed_in(app, make_user, "far", "coordinator", ["540121"])
    for path in ("edit", "edit/instance.xml", "edit/form.xml", "edit/files/photo.jpg"):
        assert b.get(f"/submissions/household/{FIRST}/{path}").status_code == 404, path


def test_managers_still_do_not_submit_from_collect(app: Any, make_user: Any, household: Any) -> None:
    from tests.app.conftest import PASSWORD, DigestClient

    make_user("dawa", "manager", ["540102"])
    phone = DigestClient(app.test_client(), "dawa", PASSWORD)
    resp = phone.post("/v1/projects/1/submission", content_type="multipart/form-data",
                      data=submission_body(household_xml(FIRST)))
    assert resp.status_code == 403


def test_a_child_registered_outside_the_managers_regions_is_held(app: Any, rt: Any, make_user: Any,
                                                                 publish: Any) -> None:
    import uuid

    from app.models import Entity, HeldChange
    from tests.support.entity_forms import REGISTER_MD, register_xml

    publish(REGISTER_MD)
    b = signed_in(app, make_user, "dawa", "manager", ["540102"])
    home, away = str(uuid.uuid4()), str(uuid.uuid4())
    ok = b.post("/forms/register/fill/submission", submission_body(register_xml(FIRST, home, "Pema", "540102002201"))(),
                content_type="multipart/form-data")
    assert ok.status_code == 201 and ok.json["held"] is False
    held = b.post("/forms/register/fill/submission",
                  submission_body(register_xml(EDIT, away, "Norbu", "540121000000"))(),
                  content_type="multipart/form-data")
    assert held.status_code == 201 and held.json["held"] is True
    assert "waits for a coordinator's review" in held.json["message"]
    with rt.db.session() as s:
        assert s.scalar(select(Entity.uuid).where(Entity.uuid == home)) == home
        assert s.scalar(select(Entity.uuid).where(Entity.uuid == away)) is None  # not created until reviewed
        assert s.scalar(select(HeldChange.id)) is not None
