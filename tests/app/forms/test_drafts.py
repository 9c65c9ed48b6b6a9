"""Drafts: made from an upload, tested through the test token URL (as ODK Collect does, and with
ODK's own form engine), then published or abandoned; test submissions never mix with real data."""
from __future__ import annotations

import shutil
from io import BytesIO
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select

from app.errors import Problem
from app.models import DraftSubmission, Form, FormDraft, FormVersion, Submission
from tests.app.conftest import submission_body
from tests.support.sample_forms import household_md, household_xml

XFORMS_NS = "{http://openrosa.org/xforms/xformsList}"
MANIFEST_NS = "{http://openrosa.org/xforms/xformsManifest}"
REMARK = "| | text | remark | Remark | | |"

MEDIA_MD = """
| settings |
| | form_id | version | form_title |
| | media_form | {version} | Village survey |

| survey |
| | type | name | label |
| | select_one_from_file villages.csv | village | Village |
| | text | note_{version} | Note |
"""
VILLAGES = "name,label\r\n540102002201,村 A\r\n".encode()


def make_draft(rt: Any, md: str, filename: str = "household.md") -> Any:
    from app.services import forms

    with rt.db.write() as s:
        res = forms.create_draft(s, rt.store, project_id=1, data=md.encode(), filename=filename,
                                 validate=False, key=rt.config["SECRET_KEY"])
        token = forms.test_token(res.draft, rt.config["SECRET_KEY"])
        return token, res.draft.version, res.replaced, res.discarded, res.version_taken


def counts(rt: Any) -> dict[str, int]:
    with rt.db.session() as s:
        return {
            "versions": s.scalar(select(func.count()).select_from(FormVersion)) or 0,
            "drafts": s.scalar(select(func.count()).select_from(FormDraft)) or 0,
            "tests": s.scalar(select(func.count()).select_from(DraftSubmission)) or 0,
            "submissions": s.scalar(select(func.count()).select_from(Submission)) or 0,
        }


def draft_url(token: str, form_id: str = "household") -> str:
    return f"/v1/test/{token}/projects/1/forms/{form_id}/draft"


def post_test(client: Any, token: str, xml: bytes, files: dict[str, bytes] | None = None,
              form_id: str = "household") -> Any:
    return client.post(draft_url(token, form_id) + "/submission", data=submission_body(xml, files)(),
                       content_type="multipart/form-data", headers={"X-OpenRosa-Version": "1.0"})


# ---------------------------------------------------------------- the service

def test_a_new_form_has_no_draft(rt: Any) -> None:
    with pytest.raises(Problem) as err:
        make_draft(rt, household_md("1"))
    assert err.value.status == 404 and "Publish the form first" in err.value.message


def test_draft_leaves_the_published_version_on_phones(rt: Any, household: Any, collect: Any) -> None:
    token, version, replaced, _, taken = make_draft(rt, household_md("2", REMARK))
    assert (version, replaced, taken) == ("2", False, False)
    assert len(token) >= 40
    # Phones with the normal server address still get version 1.
    root = etree.fromstring(collect.get("/v1/projects/1/formList").data)
    assert [x.findtext(f"{XFORMS_NS}version") for x in root.iter(f"{XFORMS_NS}xform")] == ["1"]
    assert counts(rt) == {"versions": 1, "drafts": 1, "tests": 0, "submissions": 0}


def test_replacing_a_draft_keeps_its_token_and_discards_its_tests(rt: Any, app: Any, household: Any) -> None:
    token, *_ = make_draft(rt, household_md("2", REMARK))
    assert post_test(app.test_client(), token, household_xml(version="2")).status_code == 201
    token2, version, replaced, discarded, _ = make_draft(rt, household_md("3", REMARK))
    assert (token2, version, replaced, discarded) == (token, "3", True, 1)
    assert counts(rt)["tests"] == 0


def test_publish_with_a_used_version_is_refused_then_a_new_version_works(rt: Any, household: Any) -> None:
    from app.services import forms

    _, _, _, _, taken = make_draft(rt, household_md("1", REMARK))
    assert taken  # the upload page warns: version 1 is published already
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "household"))
        with pytest.raises(Problem) as err:
            forms.publish_draft(s, form, version="1")
        assert err.value.status == 409 and err.value.code == "409.6"
        with pytest.raises(Problem) as err:
            forms.publish_draft(s, form, version="a\nb")
        assert err.value.status == 400
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "household"))
        fv, discarded = forms.publish_draft(s, form, version="1.1")
        assert (fv.version, discarded) == ("1.1", 0)
        assert b'version="1.1"' in fv.xml
        assert form.current_version_id == fv.id
    assert counts(rt) == {"versions": 2, "drafts": 0, "tests": 0, "submissions": 0}


def test_abandon(rt: Any, household: Any) -> None:
    from app.services import forms

    make_draft(rt, household_md("2"))
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "household"))
        assert forms.delete_draft(s, form, user=None) == 0
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "household"))
        with pytest.raises(Problem) as err:
            forms.delete_draft(s, form, user=None)
        assert err.value.status == 404
    assert counts(rt)["drafts"] == 0


def test_draft_attachments_are_its_own_and_go_with_it_when_published(rt: Any, publish: Any) -> None:
    from app.services import forms

    publish(MEDIA_MD.format(version="1"), "media.md")
    make_draft(rt, MEDIA_MD.format(version="2"), "media.md")
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "media_form"))
        draft = forms.require_draft(s, form)
        forms.upload_draft_attachment(s, rt.store, draft, "villages.csv", BytesIO(VILLAGES), 10_000, user=None)
    with rt.db.session() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "media_form"))
        assert form.current_version is not None
        assert forms.missing_attachments(form.current_version) == ["villages.csv"]  # published one unchanged
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "media_form"))
        fv, _ = forms.publish_draft(s, form)
        assert fv.version == "2" and forms.missing_attachments(fv) == []


# ---------------------------------------------------------------- the test URL (as Collect uses it)

def test_test_url_serves_only_the_draft(rt: Any, app: Any, publish: Any) -> None:
    publish(MEDIA_MD.format(version="1"), "media.md")
    token, *_ = make_draft(rt, MEDIA_MD.format(version="2"), "media.md")
    client = app.test_client()
    base = draft_url(token, "media_form")
    resp = client.get(base + "/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 200 and resp.headers["X-OpenRosa-Version"] == "1.0"
    forms_ = list(etree.fromstring(resp.data).iter(f"{XFORMS_NS}xform"))
    assert len(forms_) == 1
    assert forms_[0].findtext(f"{XFORMS_NS}version") == "2"
    download = forms_[0].findtext(f"{XFORMS_NS}downloadUrl")
    assert download == f"http://localhost{base}.xml"
    assert forms_[0].findtext(f"{XFORMS_NS}manifestUrl") == f"http://localhost{base}/manifest"
    xml = client.get(download)
    assert xml.status_code == 200 and b"note_2" in xml.data
    # the manifest lists only files that are present
    assert list(etree.fromstring(client.get(base + "/manifest").data).iter(f"{MANIFEST_NS}mediaFile")) == []
    assert client.get(base + "/attachments/villages.csv").status_code == 404
    from app.services import forms

    with rt.db.write() as s:
        draft = forms.require_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "media_form")))
        forms.upload_draft_attachment(s, rt.store, draft, "villages.csv", BytesIO(VILLAGES), 10_000, user=None)
    files = list(etree.fromstring(client.get(base + "/manifest").data).iter(f"{MANIFEST_NS}mediaFile"))
    assert [f.findtext(f"{MANIFEST_NS}filename") for f in files] == ["villages.csv"]
    got = client.get(files[0].findtext(f"{MANIFEST_NS}downloadUrl"))
    assert got.status_code == 200 and got.data == VILLAGES
    assert client.head(base + "/submission", headers={"X-OpenRosa-Version": "1.0"}).status_code == 204


def test_wrong_or_old_token_is_404(rt: Any, app: Any, household: Any) -> None:
    token, *_ = make_draft(rt, household_md("2"))
    client = app.test_client()
    for bad in ("x" * len(token), token[:-1] + ("A" if token[-1] != "A" else "B")):
        resp = client.get(draft_url(bad) + "/formList", headers={"X-OpenRosa-Version": "1.0"})
        assert resp.status_code == 404 and "QR code" in resp.get_data(as_text=True)
    assert client.get(draft_url(token, "other") + ".xml").status_code == 404
    from app.services import forms

    with rt.db.write() as s:
        forms.delete_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")), user=None)
    assert client.get(draft_url(token) + ".xml").status_code == 404


def test_test_submissions_stay_apart_and_vanish_on_publish(rt: Any, app: Any, household: Any, submit: Any) -> None:
    assert submit().status_code == 201  # one real submission of version 1
    token, *_ = make_draft(rt, household_md("2", REMARK))
    client = app.test_client()
    xml = household_xml("uuid:00000000-0000-4000-8000-0000000000aa", version="2")
    resp = post_test(client, token, xml, {"photo.jpg": b"\xff\xd8test"})
    assert resp.status_code == 201, resp.data
    assert "Test submission received" in resp.get_data(as_text=True)
    assert post_test(client, token, xml).status_code == 201  # identical resend
    assert post_test(client, token, xml.replace(b"Tashi", b"Dawa")).status_code == 409
    wrong = post_test(client, token, household_xml("uuid:00000000-0000-4000-8000-0000000000ab", version="1"))
    assert wrong.status_code == 409 and "Get Blank Form" in wrong.get_data(as_text=True)
    assert counts(rt) == {"versions": 1, "drafts": 1, "tests": 1, "submissions": 1}
    # the real submission endpoints know nothing of the draft's version
    assert submit(household_xml("uuid:00000000-0000-4000-8000-0000000000ac", version="2")).status_code == 404
    from app.services import forms

    with rt.db.session() as s:
        draft = forms.require_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")))
        [test] = forms.list_test_submissions(s, draft)
        assert (test.data["child_name"], test.data["age"]) == ("Tashi", 9)
        assert [(f.name, f.size) for f in test.files] == [("photo.jpg", 6)]
    with rt.db.write() as s:
        _, discarded = forms.publish_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")))
        assert discarded == 1
    assert counts(rt) == {"versions": 2, "drafts": 0, "tests": 0, "submissions": 1}
    assert post_test(client, token, xml).status_code == 404  # the test URL is gone with the draft


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                    reason="node/npm not installed (needed for the ODK form engine)")
def test_draft_filled_by_odk_form_engine_through_the_test_url(rt: Any, app: Any, household: Any) -> None:
    from tests.e2e import engine

    token, *_ = make_draft(rt, household_md("2", REMARK))
    client = app.test_client()
    root = etree.fromstring(client.get(draft_url(token) + "/formList", headers={"X-OpenRosa-Version": "1.0"}).data)
    form_xml = client.get(next(root.iter(f"{XFORMS_NS}downloadUrl")).text).data
    filled = engine.fill(form_xml, [
        {"ref": "/data/child_name", "value": "Pema"},
        {"ref": "/data/age", "value": "8"},
        {"ref": "/data/remark", "value": "tried on the draft"},
        {"ref": "/data/photo", "file": b"\xff\xd8\xff\xe0draft-photo\xff\xd9", "name": "p.jpg", "type": "image/jpeg"},
    ])
    resp = post_test(client, token, filled.xml, filled.files)
    assert resp.status_code == 201, resp.data
    from app.services import forms

    with rt.db.session() as s:
        draft = forms.require_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")))
        [test] = forms.list_test_submissions(s, draft)
        assert test.instance_id == filled.instance_id
        assert b"tried on the draft" in test.xml
        assert all(f.blob_key for f in test.files)
    with rt.db.write() as s:
        fv, discarded = forms.publish_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")))
        assert (fv.version, discarded) == ("2", 1)
    assert counts(rt) == {"versions": 2, "drafts": 0, "tests": 0, "submissions": 0}


# ---------------------------------------------------------------- the command line

@pytest.fixture
def cli(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        app: Any) -> Any:
    from tests.support.cli import cli_runner

    return cli_runner(app_config, monkeypatch, capsys)


def test_cli_draft_versions_download_compare_publish(cli: Any, tmp_path: Any, rt: Any) -> None:
    v1, v2 = tmp_path / "household.md", tmp_path / "household-2.md"
    v1.write_text(household_md("1"))
    v2.write_text(household_md("2", REMARK))
    code, out, err = cli("form", "draft", str(v1))
    assert code == 1 and "Publish the form first" in err
    assert cli("form", "publish", str(v1))[0] == 0
    code, out, _ = cli("form", "draft", str(v2), "--public-url", "https://carefile.example.org")
    assert code == 0 and "household version 2: draft saved" in out
    assert "https://carefile.example.org/v1/test/" in out and "/projects/1/forms/household/draft" in out
    code, out, _ = cli("form", "versions", "household")
    assert code == 0 and out.splitlines()[0].startswith("draft") and len(out.splitlines()) == 2
    code, out, _ = cli("form", "compare", "household", out.splitlines()[1].split()[0], "draft")
    assert code == 0 and out.splitlines() == ["added    /data/remark [text]"]
    target = tmp_path / "back.md"
    assert cli("form", "download", "household", "draft", "-o", str(target))[0] == 0
    assert target.read_bytes() == v2.read_bytes()
    code, _, err = cli("form", "draft-publish", "household", "--version", "1")
    assert code == 1 and "already published" in err
    code, out, _ = cli("form", "draft-publish", "household")
    assert code == 0 and "household version 2: published" in out
    assert counts(rt) == {"versions": 2, "drafts": 0, "tests": 0, "submissions": 0}
    code, _, err = cli("form", "draft-abandon", "household")
    assert code == 1 and "has no draft" in err


def test_two_coordinators_publishing_at_once_get_one_version(rt: Any, household: Any) -> None:
    import threading

    from app.services import forms

    make_draft(rt, household_md("2", REMARK))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def publish() -> None:
        try:
            barrier.wait()
            with rt.db.write() as s:
                forms.publish_draft(s, s.scalar(select(Form).where(Form.xml_form_id == "household")))
            outcomes.append("published")
        except Problem as problem:
            outcomes.append(f"{problem.status}")

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["404", "published"]
    assert counts(rt)["versions"] == 2
