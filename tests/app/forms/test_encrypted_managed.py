"""Managed encryption (as ODK Central): a coordinator turns it on with a passphrase; phones get a new
version with the public key; the web and API exports decrypt with the passphrase; entity forms are refused."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import select, text

from app.models import Form, FormVersion, ManagedKey
from tests.app.web_helpers import Browser
from tests.support.entity_forms import REGISTER_MD
from tests.support.odk_encrypt import enc_instance, encrypt_record, plain_form_md, public_key_of

PASS = "yak butter tea at dawn"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(200)) * 10
IID = "uuid:11111111-2222-4333-8444-555555555555"
FAR = "uuid:11111111-2222-4333-8444-666666666666"


def post(collect: Any, manifest: bytes, parts: dict[str, bytes]) -> None:
    def body() -> dict[str, Any]:
        data: dict[str, Any] = {"xml_submission_file": (BytesIO(manifest), "submission.xml", "text/xml")}
        data.update({n: (BytesIO(c), n, "application/octet-stream") for n, c in parts.items()})
        return data
    resp = collect.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data


def rows(data: bytes) -> tuple[dict[str, dict[str, str]], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        main = list(csv.DictReader(io.StringIO(zf.read("enc_visit.csv").decode("utf-8-sig"), newline="")))
        media = {n: zf.read(n) for n in zf.namelist() if n.startswith("media/")}
    return {r["KEY"]: r for r in main}, media


@pytest.fixture
def coordinator(app: Any, make_user: Any) -> Browser:
    make_user("drolma", "coordinator", ["54"])  # every form of the project
    b = Browser(app)
    assert b.login("drolma").status_code == 302
    return b


@pytest.fixture
def encrypted(app: Any, rt: Any, publish: Any, coordinator: Browser, collect: Any, make_user: Any) -> dict[str, Any]:
    """The form encrypted through the web page, and two records sent by Collect with the published key."""
    publish(plain_form_md())
    page = coordinator.get("/encryption")
    assert page.status_code == 200 and "Encrypted visit" in page.get_data(as_text=True)
    resp = coordinator.post("/encryption/enable", {"form": "enc_visit", "passphrase": PASS, "passphrase2": PASS,
                                                   "hint": "what we drink"})
    assert resp.status_code == 200, resp.data
    with rt.db.session() as s:
        form = s.scalars(select(Form).where(Form.xml_form_id == "enc_visit")).one()
        fv = s.get(FormVersion, form.current_version_id)
        xform, version = fv.xml, fv.version
    assert re.fullmatch(r"1\[encrypted:[A-Za-z0-9+/]+\]", version)
    pub = public_key_of(xform)
    rec = encrypt_record(pub, form_id="enc_visit", version=version, instance_id=IID,
                         xml=enc_instance(IID, version=version), media={"photo.jpg": PHOTO})
    post(collect, rec.manifest, rec.files)
    # A record about a child in another county (the collector's region says 540102; the answers say 540201).
    far = encrypt_record(pub, form_id="enc_visit", version=version, instance_id=FAR,
                         xml=enc_instance(FAR, version=version, name="Far", village="540201000001"))
    post(collect, far.manifest, far.files)
    return {"version": version}


def test_passphrase_is_never_stored(rt: Any, encrypted: dict[str, Any]) -> None:
    with rt.db.session() as s:
        key = s.scalars(select(ManagedKey)).one()
        assert key.kdf == "scrypt" and key.hint == "what we drink" and key.form_id is not None
        assert PASS.encode() not in key.private_key and b"PRIVATE KEY" not in key.private_key
        dump = "\n".join(str(r) for t in ("managed_key", "audit_event") for r in s.execute(text(f"SELECT * FROM {t}")))
    assert PASS not in dump


def test_web_export_decrypts_with_the_passphrase_only(app: Any, make_user: Any, encrypted: dict[str, Any]) -> None:
    make_user("norbu", "coordinator", ["540102"])  # a county's coordinator exports the county's records
    coordinator = Browser(app)
    assert coordinator.login("norbu").status_code == 302
    coordinator.get("/encryption")  # a fresh CSRF token after signing in
    wrong = coordinator.post("/encryption/export", {"form": "enc_visit", "passphrase": "not it at all", "media": "1"})
    assert wrong.status_code == 400
    assert "密码短语与此表单的加密密钥不符" in wrong.get_data(as_text=True)  # the UI speaks Chinese by default
    assert "what we drink" in wrong.get_data(as_text=True)  # the hint
    resp = coordinator.post("/encryption/export", {"form": "enc_visit", "passphrase": PASS, "media": "1"})
    assert resp.status_code == 200 and resp.content_type == "application/zip"
    main, media = rows(resp.data)
    assert list(main) == [IID]  # the record about a child outside the coordinator's regions is left out
    assert main[IID]["child_name"] == "Dolma" and main[IID]["Status"] == ""
    assert main[IID]["FormVersion"] == encrypted["version"]
    assert media == {"media/photo.jpg": PHOTO}


def test_api_export_with_key_id_and_passphrase(app: Any, rt: Any, make_user: Any, encrypted: dict[str, Any]) -> None:
    make_user("boss", "admin")
    client = app.test_client()
    token = client.post("/v1/sessions", json={"email": "boss", "password": "correct horse"}).get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with rt.db.session() as s:
        key_id = s.scalars(select(ManagedKey.id)).one()
    keys = client.get("/v1/projects/1/forms/enc_visit/submissions/keys", headers=auth).get_json()
    assert keys == [{"id": key_id, "public": keys[0]["public"], "managed": True, "hint": "what we drink"}]
    url = "/v1/projects/1/forms/enc_visit/submissions.csv.zip"
    plain, _ = rows(client.get(url, headers=auth).data)
    assert plain[IID]["Status"] == "not decrypted" and plain[IID]["child_name"] == ""
    bad = client.post(url, data={str(key_id): "wrong passphrase"}, headers=auth)
    assert bad.status_code == 400 and "passphrase" in bad.get_json()["message"]
    good = client.post(url, json={str(key_id): PASS, "attachments": True}, headers=auth)
    assert good.status_code == 200, good.data
    main, media = rows(good.data)
    assert main[IID]["child_name"] == "Dolma" and main[FAR]["child_name"] == "Far"  # an admin sees every region
    assert main[FAR]["RegionCode"] == "540201000001"
    assert media == {"media/photo.jpg": PHOTO}
    odata = client.get("/v1/projects/1/forms/enc_visit.svc/Submissions", headers=auth).get_json()
    statuses = {r["__id"]: r["__system"]["status"] for r in odata["value"]}
    assert statuses == {IID: "notDecrypted", FAR: "notDecrypted"}
    assert "child_name" not in odata["value"][0]


def test_submission_page_says_it_is_encrypted(coordinator: Browser, encrypted: dict[str, Any]) -> None:
    page = coordinator.get(f"/submissions/enc_visit/{IID}")
    assert page.status_code == 200, page.data
    assert 'id="encrypted"' in page.get_data(as_text=True)


def test_entity_forms_cannot_be_encrypted(publish: Any, coordinator: Browser, rt: Any) -> None:
    publish(REGISTER_MD)
    publish(plain_form_md())
    with rt.db.session() as s:
        entity_form = s.scalars(select(Form).where(Form.xml_form_id != "enc_visit")).one().xml_form_id
    assert "无法加密" in coordinator.get("/encryption").get_data(as_text=True)  # "cannot be encrypted"
    resp = coordinator.post("/encryption/enable", {"form": entity_form, "passphrase": PASS, "passphrase2": PASS})
    assert resp.status_code == 409
    assert "实体" in resp.get_data(as_text=True)  # "…creates or updates entities (the children list)…"
    whole = coordinator.post("/encryption/enable", {"form": "", "passphrase": PASS, "passphrase2": PASS})
    assert whole.status_code == 200, whole.data
    with rt.db.session() as s:
        xml = {f.xml_form_id: s.get(FormVersion, f.current_version_id).xml for f in s.scalars(select(Form))}
    assert b"base64RsaPublicKey" in xml["enc_visit"] and b"base64RsaPublicKey" not in xml[entity_form]
    # A later upload of the form gets the project's key injected.
    publish(plain_form_md(version="2"))
    with rt.db.session() as s:
        form = s.scalars(select(Form).where(Form.xml_form_id == "enc_visit")).one()
        assert b"base64RsaPublicKey" in s.get(FormVersion, form.current_version_id).xml


def test_short_passphrase_and_managers_are_refused(app: Any, make_user: Any, publish: Any,
                                                    coordinator: Browser) -> None:
    publish(plain_form_md())
    coordinator.get("/encryption")
    short = coordinator.post("/encryption/enable", {"form": "enc_visit", "passphrase": "short", "passphrase2": "short"})
    assert short.status_code == 400 and "10" in short.get_data(as_text=True)
    make_user("mgr", "manager", ["540102"])
    m = Browser(app)
    m.login("mgr")
    assert m.get("/encryption").status_code == 200
    refused = m.post("/encryption/enable", {"form": "enc_visit", "passphrase": PASS, "passphrase2": PASS})
    assert refused.status_code == 403


def test_cli_encrypt_and_export_with_the_passphrase(app_config: Any, monkeypatch: Any, capsys: Any, tmp_path: Any,
                                                    publish: Any, collect: Any, rt: Any) -> None:
    from tests.support.cli import cli_runner

    publish(plain_form_md())
    cli = cli_runner(app_config, monkeypatch, capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASS + "\n"))
    code, out, _ = cli("form", "encrypt", "enc_visit", "--hint", "tea", "--passphrase-stdin")
    assert code == 0 and "enc_visit: encrypted" in out
    with rt.db.session() as s:
        form = s.scalars(select(Form).where(Form.xml_form_id == "enc_visit")).one()
        fv = s.get(FormVersion, form.current_version_id)
        xform, version = fv.xml, fv.version
    rec = encrypt_record(public_key_of(xform), form_id="enc_visit", version=version, instance_id=IID,
                         xml=enc_instance(IID, version=version))
    post(collect, rec.manifest, rec.files)
    monkeypatch.setattr("sys.stdin", io.StringIO("not the passphrase\n"))
    code, _, err = cli("export", "enc_visit", "--passphrase-stdin", "--output", str(tmp_path / "x.zip"))
    assert code == 1 and "passphrase is not correct" in err and "Hint: tea" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASS + "\n"))
    code, out, _ = cli("export", "enc_visit", "--passphrase-stdin", "--output", str(tmp_path / "x.zip"))
    assert code == 0 and "1 record(s) decrypted, 0 not decrypted" in out
    main, _ = rows((tmp_path / "x.zip").read_bytes())
    assert main[IID]["child_name"] == "Dolma"


def test_project_encryption_with_nothing_to_encrypt_makes_no_key(publish: Any, coordinator: Browser, rt: Any,
                                                                 app_config: Any, monkeypatch: Any, capsys: Any
                                                                 ) -> None:
    """Only forms that keep the children's files: no key is made (else forms published later would be
    encrypted without anyone asking), on the page and at the command line."""
    from app.models import ManagedKey
    from tests.support.cli import cli_runner

    publish(REGISTER_MD)
    coordinator.get("/encryption")
    page = coordinator.post("/encryption/enable", {"form": "", "passphrase": PASS, "passphrase2": PASS})
    assert page.status_code == 409 and "没有创建密钥" in page.get_data(as_text=True)
    cli = cli_runner(app_config, monkeypatch, capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASS + "\n"))
    code, _, err = cli("form", "encrypt", "--passphrase-stdin")
    assert code == 1 and "no key was made" in err and "creates or updates entities" in err
    with rt.db.session() as s:
        assert s.scalars(select(ManagedKey)).all() == []


def test_a_form_published_under_the_project_key_says_it_is_encrypted(publish: Any, coordinator: Browser,
                                                                     app_config: Any, monkeypatch: Any,
                                                                     capsys: Any, tmp_path: Any) -> None:
    from tests.support.cli import cli_runner

    publish(plain_form_md())
    coordinator.get("/encryption")
    assert coordinator.post("/encryption/enable", {"form": "", "passphrase": PASS,
                                                   "passphrase2": PASS}).status_code == 200
    path = tmp_path / "enc_visit.md"
    path.write_text(plain_form_md(version="3"), encoding="utf-8")
    code, out, _ = cli_runner(app_config, monkeypatch, capsys)("form", "publish", str(path))
    assert code == 0 and "encrypted with the project's managed key" in out


def test_export_of_a_form_without_encrypted_records_needs_no_key(publish: Any, collect: Any, app_config: Any,
                                                                 monkeypatch: Any, capsys: Any, tmp_path: Any
                                                                 ) -> None:
    from tests.support.cli import cli_runner

    publish(plain_form_md())
    code, out, err = cli_runner(app_config, monkeypatch, capsys)("export", "enc_visit", "--output",
                                                                 str(tmp_path / "plain.zip"))
    assert code == 0, err
    assert (tmp_path / "plain.zip").exists() and "no encrypted submissions" in out
