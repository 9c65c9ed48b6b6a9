"""What ODK Collect reads to get blank forms: formList, the form XML, the manifest and media files
(docs/odk-protocol.md, *Form list and form download*, *Manifest, media and entity lists*)."""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import etree

from tests.app.conftest import PASSWORD
from tests.support.digest_client import DigestClient

XFORMS_NS = "http://openrosa.org/xforms/xformsList"
MANIFEST_NS = "http://openrosa.org/xforms/xformsManifest"
DEVICE = "deviceID=collect:AbCdEfGh12345678"

MEDIA_MD = """
| settings |
| | form_id | version | form_title |
| | media_form | 3 | Village survey |

| survey |
| | type | name | label | media::image |
| | note | intro | Welcome | logo.png |
| | select_one_from_file villages.csv | village | Village | |
| | text | remark | Remark | |
"""
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
VILLAGES = "name,label\r\n540102002201,村 A\r\n540102002202,村 B\r\n".encode()


def _xforms(resp: Any) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.data
    root = etree.fromstring(resp.data)
    assert root.tag == f"{{{XFORMS_NS}}}xforms"
    out = []
    for xf in root.findall(f"{{{XFORMS_NS}}}xform"):
        out.append({etree.QName(c).localname: (c.text or "") for c in xf})
    return out


def _media(resp: Any) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.data
    assert resp.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert resp.headers["X-OpenRosa-Version"] == "1.0"
    root = etree.fromstring(resp.data)
    assert root.tag == f"{{{MANIFEST_NS}}}manifest"
    return [{etree.QName(c).localname: (c.text or "") for c in mf} | {"@type": mf.get("type") or ""}
            for mf in root.findall(f"{{{MANIFEST_NS}}}mediaFile")]


def _path(url: str) -> str:
    """The path+query of an absolute URL the server returned, with Collect's deviceID added."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "localhost", url
    return parts.path + ("?" + parts.query + "&" if parts.query else "?") + DEVICE


@pytest.fixture
def media_form(publish: Callable[..., Any]) -> Any:
    return publish(MEDIA_MD, "media_form.md")


def _upload(rt: Any, filename: str, data: bytes, form_id: str = "media_form") -> None:
    from app.services import forms

    with rt.db.write() as s:
        form = forms.get_form(s, 1, form_id)
        forms.upload_attachment(s, rt.store, form.current_version, filename, io.BytesIO(data), 10**7, user=None)


def test_form_list_document(collect: DigestClient, household: Any, media_form: Any) -> None:
    resp = collect.get(f"/v1/projects/1/formList?{DEVICE}")
    assert resp.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert resp.headers["X-OpenRosa-Version"] == "1.0"
    items = _xforms(resp)
    # ordered by title, as Central does
    assert [(i["formID"], i["name"], i["version"]) for i in items] == [
        ("household", "Household visit", "1"), ("media_form", "Village survey", "3")]
    for item in items:
        assert item["hash"].startswith("md5:") and len(item["hash"]) == 36
        assert item["downloadUrl"] == f"http://localhost/v1/projects/1/forms/{item['formID']}.xml"
    # manifestUrl only for the form that references media / data files
    assert "manifestUrl" not in items[0]
    assert items[1]["manifestUrl"] == "http://localhost/v1/projects/1/forms/media_form/manifest"


def test_hash_is_md5_of_the_exact_downloaded_bytes(collect: DigestClient, household: Any, media_form: Any) -> None:
    for item in _xforms(collect.get("/v1/projects/1/formList")):
        resp = collect.get(_path(item["downloadUrl"]), openrosa=False)
        assert resp.status_code == 200
        assert "xml" in resp.headers["Content-Type"]
        assert item["hash"] == "md5:" + hashlib.md5(resp.data).hexdigest()
        assert f'id="{item["formID"]}"'.encode() in resp.data


def test_form_list_filter_by_form_id(collect: DigestClient, household: Any, media_form: Any) -> None:
    items = _xforms(collect.get(f"/v1/projects/1/formList?formID=media_form&{DEVICE}"))
    assert [i["formID"] for i in items] == ["media_form"]
    assert _xforms(collect.get("/v1/projects/1/formList?formID=nothing")) == []


def test_token_url_links_keep_the_token(app: Any, rt: Any, collector: Any, household: Any, media_form: Any) -> None:
    from app.models import User
    from app.services.identity import users

    with rt.db.write() as s:
        token = users.issue_token(s, s.get(User, collector.id), rt.config["SECRET_KEY"]).token
    client = app.test_client()
    base = f"/v1/key/{token}/projects/1"
    items = _xforms(client.get(f"{base}/formList?{DEVICE}", headers={"X-OpenRosa-Version": "1.0"}))
    assert len(items) == 2
    for item in items:
        assert item["downloadUrl"].startswith(f"http://localhost{base}/forms/")
        resp = client.get(_path(item["downloadUrl"]))  # no credentials at all
        assert resp.status_code == 200
        assert item["hash"] == "md5:" + hashlib.md5(resp.data).hexdigest()
    manifest_url = items[1]["manifestUrl"]
    assert manifest_url == f"http://localhost{base}/forms/media_form/manifest"
    _upload(rt, "logo.png", LOGO)
    (logo,) = _media(client.get(_path(manifest_url), headers={"X-OpenRosa-Version": "1.0"}))
    assert logo["downloadUrl"] == f"http://localhost{base}/forms/media_form/attachments/logo.png"
    assert client.get(_path(logo["downloadUrl"])).data == LOGO


def test_closing_and_closed_forms_are_not_listed(rt: Any, collect: DigestClient, household: Any,
                                                 media_form: Any) -> None:
    from app.services import forms

    def set_state(state: str) -> None:
        with rt.db.write() as s:
            forms.set_state(s, forms.get_form(s, 1, "household"), state, user=None)

    set_state("closing")
    assert [i["formID"] for i in _xforms(collect.get("/v1/projects/1/formList"))] == ["media_form"]
    # phones that have it may still fetch it (and still submit: closing accepts submissions)
    assert collect.get("/v1/projects/1/forms/household.xml", openrosa=False).status_code == 200
    set_state("closed")
    assert [i["formID"] for i in _xforms(collect.get("/v1/projects/1/formList"))] == ["media_form"]
    resp = collect.get("/v1/projects/1/forms/household.xml", openrosa=False)
    assert resp.status_code == 403 and b"closed" in resp.data
    set_state("open")
    assert len(_xforms(collect.get("/v1/projects/1/formList"))) == 2


def test_assigned_collector_sees_only_assigned_forms(app: Any, rt: Any, make_user: Callable[..., Any],
                                                     collect: DigestClient, household: Any,
                                                     media_form: Any) -> None:
    from app.models import User
    from app.services import forms

    make_user("dolma", "collector")
    with rt.db.write() as s:
        forms.assign_forms(s, s.get(User, 2), [forms.get_form(s, 1, "media_form")])
        assert s.get(User, 2).username == "dolma"
    dolma = DigestClient(app.test_client(), "dolma", PASSWORD)
    assert [i["formID"] for i in _xforms(dolma.get("/v1/projects/1/formList"))] == ["media_form"]
    resp = dolma.get("/v1/projects/1/forms/household.xml", openrosa=False)
    assert resp.status_code == 403
    assert b"household" in resp.data
    assert dolma.get("/v1/projects/1/forms/media_form.xml", openrosa=False).status_code == 200
    # a collector without assignments still sees every open form
    assert len(_xforms(collect.get("/v1/projects/1/formList"))) == 2


def test_manager_sees_no_forms(app: Any, make_user: Callable[..., Any], household: Any, media_form: Any) -> None:
    make_user("norbu", "manager")
    manager = DigestClient(app.test_client(), "norbu", PASSWORD)
    assert _xforms(manager.get("/v1/projects/1/formList")) == []
    assert manager.get("/v1/projects/1/forms/household.xml", openrosa=False).status_code == 403
    assert manager.get("/v1/projects/1/forms/media_form/manifest").status_code == 403


def test_coordinator_sees_all_forms(app: Any, make_user: Callable[..., Any], household: Any, media_form: Any) -> None:
    make_user("sonam", "coordinator")
    coordinator = DigestClient(app.test_client(), "sonam", PASSWORD)
    assert len(_xforms(coordinator.get("/v1/projects/1/formList"))) == 2


def test_root_base_serves_the_default_project(app: Any, collector: Any, household: Any) -> None:
    client = DigestClient(app.test_client(), "tashi", PASSWORD)
    (item,) = _xforms(client.get(f"/formList?{DEVICE}"))
    assert item["downloadUrl"] == "http://localhost/forms/household.xml"
    resp = client.get(_path(item["downloadUrl"]), openrosa=False)
    assert resp.status_code == 200
    assert item["hash"] == "md5:" + hashlib.md5(resp.data).hexdigest()
    assert client.head(f"/submission?{DEVICE}").status_code == 204


def test_public_url_is_used_for_links(app: Any, rt: Any, collect: DigestClient, household: Any) -> None:
    rt.config["PUBLIC_URL"] = "https://carefile.example.org/"
    (item,) = _xforms(collect.get("/v1/projects/1/formList"))
    assert item["downloadUrl"] == "https://carefile.example.org/v1/projects/1/forms/household.xml"


def test_unknown_form(collect: DigestClient, household: Any) -> None:
    resp = collect.get("/v1/projects/1/forms/nope.xml", openrosa=False)
    assert resp.status_code == 404 and b"nope" in resp.data
    assert collect.get("/v1/projects/1/forms/nope/manifest").status_code == 404


def test_manifest_lists_only_uploaded_files(rt: Any, collect: DigestClient, media_form: Any) -> None:
    url = f"/v1/projects/1/forms/media_form/manifest?{DEVICE}"
    assert _media(collect.get(url)) == []
    _upload(rt, "logo.png", LOGO)
    (logo,) = _media(collect.get(url))
    assert logo["filename"] == "logo.png"
    assert logo["hash"] == "md5:" + hashlib.md5(LOGO).hexdigest()
    assert logo["downloadUrl"] == "http://localhost/v1/projects/1/forms/media_form/attachments/logo.png"
    assert logo["@type"] == ""
    _upload(rt, "villages.csv", VILLAGES)
    files = {m["filename"]: m for m in _media(collect.get(url))}
    assert sorted(files) == ["logo.png", "villages.csv"]
    # a plain CSV of choices is an ordinary media file, not an entity list
    assert files["villages.csv"]["@type"] == ""
    assert files["villages.csv"]["hash"] == "md5:" + hashlib.md5(VILLAGES).hexdigest()
    resp = collect.get(_path(files["villages.csv"]["downloadUrl"]), openrosa=False)
    assert resp.status_code == 200 and resp.data == VILLAGES


def test_media_download_with_etag(rt: Any, collect: DigestClient, media_form: Any) -> None:
    _upload(rt, "logo.png", LOGO)
    url = f"/v1/projects/1/forms/media_form/attachments/logo.png?{DEVICE}"
    resp = collect.get(url, openrosa=False)
    assert resp.status_code == 200
    assert resp.data == LOGO
    assert resp.headers["Content-Type"] == "image/png"
    etag = resp.headers["ETag"]
    assert etag == f'"{hashlib.md5(LOGO).hexdigest()}"'
    cached = collect.get(url, openrosa=False, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""
    changed = collect.get(url, openrosa=False, headers={"If-None-Match": '"0123"'})
    assert changed.status_code == 200 and changed.data == LOGO


def test_media_not_uploaded_or_unknown_is_404(collect: DigestClient, media_form: Any) -> None:
    resp = collect.get("/v1/projects/1/forms/media_form/attachments/logo.png", openrosa=False)
    assert resp.status_code == 404 and b"logo.png" in resp.data
    resp = collect.get("/v1/projects/1/forms/media_form/attachments/other.png", openrosa=False)
    assert resp.status_code == 404


def test_form_xml_etag(collect: DigestClient, household: Any) -> None:
    resp = collect.get("/v1/projects/1/forms/household.xml", openrosa=False)
    again = collect.get("/v1/projects/1/forms/household.xml", openrosa=False,
                        headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304


def test_non_ascii_media_file_name(rt: Any, collect: DigestClient, publish: Callable[..., Any]) -> None:
    publish(MEDIA_MD.replace("logo.png", "村徽.png").replace("media_form", "badge_form"), "badge.md")
    _upload(rt, "村徽.png", LOGO, "badge_form")
    (item,) = _media(collect.get("/v1/projects/1/forms/badge_form/manifest"))
    assert item["filename"] == "村徽.png"
    assert item["downloadUrl"] == ("http://localhost/v1/projects/1/forms/badge_form/attachments/"
                                   "%E6%9D%91%E5%BE%BD.png")
    resp = collect.get(_path(item["downloadUrl"]), openrosa=False)
    assert resp.status_code == 200 and resp.data == LOGO
    assert "UTF-8''%E6%9D%91%E5%BE%BD.png" in resp.headers["Content-Disposition"]
