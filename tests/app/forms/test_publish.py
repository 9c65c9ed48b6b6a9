"""Publishing forms (services and the `carefile` command): versions, errors a coordinator can act
on, attachments, form states, `carefile init`, users and the Collect QR code."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.errors import Problem
from app.models import Form, FormVersion, User
from tests.support.cli import cli_runner
from tests.support.sample_forms import BROKEN_MD, household_md

MEDIA_MD = """
| settings |
| | form_id | version | form_title |
| | media_form | {version} | Village survey |

| survey |
| | type | name | label | media::image |
| | note | intro | Welcome | logo.png |
| | select_one_from_file villages.csv | village | Village | |
| | text | remark | Remark | |
"""

UNVERSIONED_MD = """
| settings |
| | form_id | form_title |
| | daily | Daily note |

| survey |
| | type | name | label |
| | text | note_text | {label} |
"""


@pytest.fixture
def pub(rt: Any) -> Callable[..., Any]:
    """publish_form without ODK Validate (fast); returns (created, version, xml, form state)."""
    from app.services import forms

    def do(md: str, filename: str = "form.md", data: bytes | None = None) -> Any:
        with rt.db.write() as s:
            res = forms.publish_form(s, rt.store, project_id=1, data=data if data is not None else md.encode(),
                                     filename=filename, validate=False)
            return res.created, res.version.version, res.version.xml

    return do


@pytest.fixture
def cli(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        app: Any) -> Callable[..., tuple[int, str, str]]:
    return cli_runner(app_config, monkeypatch, capsys)


def _versions(rt: Any, xml_form_id: str) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(FormVersion.version).join(Form, Form.id == FormVersion.form_id)
                              .where(Form.xml_form_id == xml_form_id).order_by(FormVersion.id)))


def _current(rt: Any, xml_form_id: str) -> FormVersion:
    with rt.db.session() as s:
        form = s.scalars(select(Form).where(Form.xml_form_id == xml_form_id)).one()
        assert form.current_version is not None
        return form.current_version


# --- versions --------------------------------------------------------------------------------


def test_new_form_and_new_version(rt: Any, pub: Callable[..., Any]) -> None:
    created, version, xml = pub(household_md("1"))
    assert created and version == "1"
    cur = _current(rt, "household")
    assert cur.version == "1" and cur.title == "Household visit"
    assert cur.md5 == hashlib.md5(xml).hexdigest()
    created, version, _ = pub(household_md("2", "| | text | extra | Extra | | |"))
    assert created and version == "2"
    assert _versions(rt, "household") == ["1", "2"]
    assert _current(rt, "household").version == "2"


def test_same_content_again_is_unchanged(rt: Any, pub: Callable[..., Any]) -> None:
    assert pub(household_md("1"))[0] is True
    created, version, _ = pub(household_md("1"))
    assert created is False and version == "1"
    assert _versions(rt, "household") == ["1"]


def test_same_version_with_different_content_is_refused(rt: Any, pub: Callable[..., Any]) -> None:
    pub(household_md("1"))
    with pytest.raises(Problem) as err:
        pub(household_md("1", "| | text | extra | Extra | | |"))
    assert err.value.status == 409
    assert "`version`" in err.value.message and "change" in err.value.message
    assert _versions(rt, "household") == ["1"]


def test_missing_version_stays_empty_then_changes_are_stamped(rt: Any, pub: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import app.services.forms.publish as forms_module

    clock = [datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)]

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # noqa: ANN401
            return clock[0]

    monkeypatch.setattr(forms_module, "datetime", FakeDatetime)
    # as Central: the first version of a form without `version` keeps the empty version
    created, version, xml = pub(UNVERSIONED_MD.format(label="Note"))
    assert created and version == "" and b"<data id=\"daily\">" in xml
    # the same XLSForm again, an hour later: nothing new for phones to download
    clock[0] = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
    assert pub(UNVERSIONED_MD.format(label="Note")) == (False, version, xml)
    assert _versions(rt, "daily") == [""]
    # a changed form cannot reuse the empty version: it is stamped so phones can tell it apart
    created, version2, xml2 = pub(UNVERSIONED_MD.format(label="Today's note"))
    assert created and re.fullmatch(r"\d{14}", version2) and f'version="{version2}"'.encode() in xml2
    assert _versions(rt, "daily") == ["", version2]
    assert _current(rt, "daily").md5 == hashlib.md5(xml2).hexdigest()
    # and the same changed form again is not a third version
    clock[0] = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert pub(UNVERSIONED_MD.format(label="Today's note"))[:2] == (False, version2)


# --- errors a coordinator can act on ------------------------------------------------------------


def test_broken_markdown_form_names_sheet_and_row(rt: Any, pub: Callable[..., Any]) -> None:
    with pytest.raises(Problem) as err:
        pub(BROKEN_MD, "broken.md")
    assert err.value.status == 400
    assert "integr" in err.value.message
    assert err.value.details["issues"] == [
        {"message": "Unknown question type 'integr'.", "sheet": "survey", "row": 3}]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Form)) == 0


def _xlsx(rows: list[tuple[str, ...]], settings: tuple[str, str] = ("bad_xl", "1")) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "survey"
    for row in rows:
        ws.append(row)
    st = wb.create_sheet("settings")
    st.append(("form_id", "version"))
    st.append(settings)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_broken_xlsx_names_sheet_and_row(pub: Callable[..., Any]) -> None:
    data = _xlsx([("type", "name", "label"), ("text", "a", "A"), ("integer", "b", "B"),
                  ("selct_one yn", "c", "C")])
    with pytest.raises(Problem) as err:
        pub("", "bad.xlsx", data)
    (issue,) = err.value.details["issues"]
    assert issue["sheet"] == "survey" and issue["row"] == 4
    assert "selct_one" in issue["message"]
    # a good workbook publishes
    good = _xlsx([("type", "name", "label"), ("text", "a", "A")], ("good_xl", "5"))
    assert pub("", "good.xlsx", good)[:2] == (True, "5")


def test_image_renamed_to_xlsx_is_a_clear_error(pub: Callable[..., Any]) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    with pytest.raises(Problem) as err:
        pub("", "photo.xlsx", png)
    assert err.value.status == 400
    assert "not an Excel workbook" in err.value.message and ".xlsx" in err.value.message


def test_cli_publish_reports_errors_and_exits_non_zero(cli: Callable[..., tuple[int, str, str]], rt: Any,
                                                       tmp_path: Path) -> None:
    broken = tmp_path / "broken.md"
    broken.write_text(BROKEN_MD)
    bad_xlsx = tmp_path / "bad.xlsx"
    bad_xlsx.write_bytes(_xlsx([("type", "name", "label"), ("intger", "b", "B")]))
    good = tmp_path / "household.md"
    good.write_text(household_md("1"))
    code, out, err = cli("form", "publish", str(good), str(broken), str(bad_xlsx), str(tmp_path / "none.xlsx"))
    assert code == 1
    assert "household version 1: published" in out
    assert "ERROR broken.md" in err and "sheet survey row 3" in err and "integr" in err
    assert "ERROR bad.xlsx" in err and "sheet survey row 2" in err and "intger" in err
    assert "none.xlsx: no such file" in err
    assert _versions(rt, "household") == ["1"]
    code, out, err = cli("form", "publish", str(good))
    assert code == 0 and "household version 1: unchanged" in out
    changed = tmp_path / "household2.md"
    changed.write_text(household_md("1", "| | text | extra | Extra | | |"))
    code, out, err = cli("form", "publish", str(changed))
    assert code == 1 and "change `version`" in err


# --- attachments ------------------------------------------------------------------------------


def test_expected_attachments_and_carry_over(rt: Any, pub: Callable[..., Any]) -> None:
    from app.services import forms

    pub(MEDIA_MD.format(version="1"), "media.md")
    assert forms.missing_attachments(_current(rt, "media_form")) == ["logo.png", "villages.csv"]
    logo, villages = b"\x89PNG logo", b"name,label\r\na,A\r\n"
    with rt.db.write() as s:
        fv = forms.get_form(s, 1, "media_form").current_version
        forms.upload_attachment(s, rt.store, fv, "logo.png", io.BytesIO(logo), 10**6, user=None)
        with pytest.raises(Problem) as err:
            forms.upload_attachment(s, rt.store, fv, "other.png", io.BytesIO(logo), 10**6, user=None)
        assert err.value.status == 400 and "logo.png" in err.value.message
    assert forms.missing_attachments(_current(rt, "media_form")) == ["villages.csv"]
    pub(MEDIA_MD.format(version="2"), "media.md")
    # the logo comes along to the new version; the CSV is still missing
    cur = _current(rt, "media_form")
    assert cur.version == "2" and forms.missing_attachments(cur) == ["villages.csv"]
    with rt.db.write() as s:
        fv = forms.get_form(s, 1, "media_form").current_version
        forms.upload_attachment(s, rt.store, fv, "villages.csv", io.BytesIO(villages), 10**6, user=None)
    pub(MEDIA_MD.format(version="3"), "media.md")
    cur = _current(rt, "media_form")
    assert forms.missing_attachments(cur) == []
    by_name = {a.filename: a for a in cur.attachments}
    assert by_name["logo.png"].md5 == hashlib.md5(logo).hexdigest()
    assert by_name["villages.csv"].md5 == hashlib.md5(villages).hexdigest()
    with rt.store.open(by_name["villages.csv"].blob_key) as fh:
        assert fh.read() == villages


def test_cli_attach_and_list(cli: Callable[..., tuple[int, str, str]], pub: Callable[..., Any],
                             tmp_path: Path) -> None:
    pub(MEDIA_MD.format(version="1"), "media.md")
    code, out, _ = cli("form", "list")
    assert code == 0 and "media_form" in out and "missing files: logo.png, villages.csv" in out
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG logo")
    code, out, _ = cli("form", "attach", "media_form", str(logo))
    assert code == 0 and "logo.png: stored" in out and "Still missing: villages.csv" in out


# --- states ------------------------------------------------------------------------------------


def test_cli_form_state(cli: Callable[..., tuple[int, str, str]], rt: Any, pub: Callable[..., Any]) -> None:
    pub(household_md("1"))

    def state() -> str:
        with rt.db.session() as s:
            return str(s.scalars(select(Form.state)).one())

    assert state() == "open"
    for wanted in ("closing", "closed", "open"):
        code, out, _ = cli("form", "state", "household", wanted)
        assert code == 0 and wanted in out
        assert state() == wanted
    code, _, err = cli("form", "state", "nope", "closed")
    assert code == 1 and "nope" in err
    with pytest.raises(SystemExit):
        cli("form", "state", "household", "archived")
    assert state() == "open"


# --- carefile init ---------------------------------------------------------------------------------


def test_init_twice_is_safe(cli: Callable[..., tuple[int, str, str]], rt: Any, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "xlsforms"
    folder.mkdir()
    (folder / "household.md").write_text(household_md("7"))
    (folder / "daily.md").write_text(UNVERSIONED_MD.format(label="Note"))
    (folder / "~$household.xlsx").write_bytes(b"lock file")  # Excel's lock file is skipped
    monkeypatch.setenv("CAREFILE_XLSFORMS_DIR", str(folder))
    code, out, err = cli("init")
    assert code == 0, out + err
    assert out.count("published") == 2 and "[ERR]" not in out
    first = (_versions(rt, "household"), _versions(rt, "daily"))
    assert first[0] == ["7"] and len(first[1]) == 1
    code, out, err = cli("init")
    assert code == 0, out + err
    assert out.count(": unchanged") == 2 and "published" not in out.replace("Database", "")
    assert (_versions(rt, "household"), _versions(rt, "daily")) == first


def test_init_reports_a_broken_form(cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "xlsforms"
    folder.mkdir()
    (folder / "broken.md").write_text(BROKEN_MD)
    (folder / "household.md").write_text(household_md("1"))
    monkeypatch.setenv("CAREFILE_XLSFORMS_DIR", str(folder))
    code, out, _ = cli("init")
    assert code == 1
    assert "[ERR] broken.md" in out and "row 3" in out
    assert "[ok ] household.md" in out


# --- users, tokens and the QR code ----------------------------------------------------------------


def test_cli_user_add_with_regions(cli: Callable[..., tuple[int, str, str]], rt: Any) -> None:
    code, out, err = cli("user", "add", "dawa", "--role", "collector", "--password", "long enough",
                         "--region", "540102", "--region", "5401")
    assert code == 0, err
    assert "dawa" in out and "5401, 540102" in out
    with rt.db.session() as s:
        user = s.scalars(select(User).where(User.username == "dawa")).one()
        assert user.region_codes == ["5401", "540102"] and user.role == "collector"
    code, out, err = cli("user", "add", "lhamo", "--role", "collector", "--password", "long enough",
                         "--region", "5401", "--region", "54x1")
    assert code == 1
    assert "54x1" in err and "region code" in err
    code, _, err = cli("user", "add", "dawa", "--role", "collector", "--password", "long enough")
    assert code == 1 and "exists already" in err
    code, _, err = cli("user", "add", "short", "--role", "collector", "--password", "short")
    assert code == 1 and "too short" in err
    with rt.db.session() as s:
        assert sorted(s.scalars(select(User.username))) == ["dawa"]


def test_cli_user_token_prints_url_and_qr(cli: Callable[..., tuple[int, str, str]], rt: Any, app: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import segno

    from app.services.identity import collect

    payloads: list[str] = []
    real_make = segno.make

    def spy(content: str, *args: Any, **kw: Any) -> Any:
        payloads.append(content)
        return real_make(content, *args, **kw)

    monkeypatch.setattr(segno, "make", spy)
    assert cli("user", "add", "dawa", "--role", "collector", "--password", "long enough")[0] == 0
    code, out, err = cli("user", "token", "dawa")
    assert code == 2 and "--public-url" in err  # no address known: say how to give one
    code, out, _ = cli("user", "token", "dawa", "--public-url", "http://x/")
    assert code == 0
    match = re.search(r"http://x/v1/key/([A-Za-z0-9_-]{64})/projects/1\n", out)
    assert match, out
    url, token = match.group(0).strip(), match.group(1)
    # the printed QR code is the one that encodes the settings payload
    (payload,) = payloads
    qr = io.StringIO()
    real_make(payload, error="l").terminal(out=qr, compact=True)
    assert qr.getvalue() in out
    settings = collect.decode_settings(payload)
    assert settings["general"]["server_url"] == url
    assert "password" not in settings["general"] and settings["admin"] == {}
    # the printed token URL works on the phone
    resp = app.test_client().get(f"/v1/key/{token}/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 200
    # asking again prints the same token; --renew replaces it
    assert token in cli("user", "token", "dawa", "--public-url", "http://x")[1]
    code, out, _ = cli("user", "token", "dawa", "--public-url", "http://x", "--renew")
    assert code == 0 and token not in out
    resp = app.test_client().get(f"/v1/key/{token}/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 403
    code, out, _ = cli("user", "revoke", "dawa")
    assert code == 0 and "Revoked 1" in out


def test_collect_settings_encoding_round_trip() -> None:
    from app.services.identity import collect

    url = collect.token_server_url("https://carefile.example.org/", "T" * 64, 1)
    assert url == "https://carefile.example.org/v1/key/" + "T" * 64 + "/projects/1"
    settings = collect.collect_settings(url, "拉萨 · 扎西")
    payload = collect.encode_settings(settings)
    assert "\n" not in payload
    raw = base64.b64decode(payload, validate=True)  # standard base64
    assert raw[0] == 0x78  # zlib header, as Collect's Inflater() expects (not raw deflate/gzip)
    assert json.loads(zlib.decompress(raw).decode("utf-8")) == settings
    assert collect.decode_settings(payload) == settings
    assert set(settings) >= {"general", "admin"} and settings["project"]["name"] == "拉萨 · 扎西"
