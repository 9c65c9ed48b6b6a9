"""Bad input gets a clear 4xx, never a 5xx or silent damage (issue 8, items 10–13): the exact cases
an attacker tried, on both backends."""
from __future__ import annotations

import base64
import json
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import select, text

from app.models import Submission, SubmissionVersion
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.api_client import ApiClient
from tests.support.sample_forms import household_md, household_xml

SVC = "/v1/projects/1/forms/household.svc"


@pytest.fixture
def api(app: Any, make_user: Any) -> Any:
    make_user("analyst", "manager", ["540102"])
    return ApiClient(app, "analyst")


@pytest.fixture
def three(submit: Any) -> None:
    for i in range(3):
        assert submit(household_xml(f"uuid:sub-{i}", name=f"Child {i}")).status_code == 201


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _problem(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.data[:300]
    body = resp.get_json()
    assert isinstance(body, dict) and body["message"], resp.data[:300]
    if code is not None:
        assert str(body["code"]) == code, body
    return body


@pytest.mark.parametrize("token", [
    _token([1, 2]), _token({"at": "2026-01-01T00:00:00+00:00", "id": "abc"}), _token({"row": "7"}),
    _token({"row": 1e30}), _token({"at": "yesterday", "id": 1}), _token({"at": "2026-01-01T00:00:00+00:00",
                                                                          "id": 10**30}), _token({"row": 2**31}),
    "%%%not-base64", _token("just a string"), _token({"id": True, "at": "2026-01-01T00:00:00+00:00"}),
])
def test_garbage_skiptoken_is_400_35(api: Any, three: Any, token: str) -> None:
    for table in ("Submissions", "Submissions.members"):
        body = _problem(api.get(f"{SVC}/{table}", query_string={"$skiptoken": token, "$top": "1"}), 400, "400.35")
        assert "skiptoken" in body["message"]


def test_skiptoken_from_next_link_still_pages(api: Any, three: Any) -> None:
    first = api.get(f"{SVC}/Submissions?$top=2").get_json()
    nxt = first["@odata.nextLink"].split("?", 1)[1]
    second = api.get(f"{SVC}/Submissions?{nxt}").get_json()
    assert len(first["value"]) == 2 and len(second["value"]) == 1
    assert {r["__id"] for r in first["value"] + second["value"]} == {"uuid:sub-0", "uuid:sub-1", "uuid:sub-2"}


def test_huge_skip_and_top(api: Any, three: Any) -> None:
    _problem(api.get(f"{SVC}/Submissions?$skip=99999999999999999999"), 400, "400.22")
    _problem(api.get(f"{SVC}/Submissions?$top=-1"), 400, "400.22")
    _problem(api.get(f"{SVC}/Submissions?$top=ten"), 400, "400.11")
    assert api.get(f"{SVC}/Submissions?$skip=9223372036854775807").get_json()["value"] == []
    assert len(api.get(f"{SVC}/Submissions?$top=9223372036854775807").get_json()["value"]) == 3


@pytest.mark.parametrize("expr, code", [
    ("(" * 2000 + "__id eq 'x'" + ")" * 2000, "400.18"),
    ("not " * 2000 + "__id eq 'x'", "400.18"),
    ("__system/submissionDate gt 2026-13-45", "400.18"),
    ("__system/submissionDate gt 0000-01-01", "400.18"),
    ("__system/submissionDate gt 9999-12-31T23:00:00Z", "400.22"),
    ("__system/submitterId eq 99999999999999999999999", "400.22"),
    ("__system/submitterId eq 2147483648 or __system/submitterId gt 9223372036854775807", None),
    ("__system/submissionDate gt 5", "400.18"),
    ("__id eq 5", "400.18"),
    ("year(__id) eq 2026", "400.18"),
    ("null gt null", "400.18"),
    ("__system/submissionDate gt 'soon'", "400.18"),
])
def test_bad_filters_are_400(api: Any, three: Any, expr: str, code: str | None) -> None:
    resp = api.get(f"{SVC}/Submissions", query_string={"$filter": expr})
    if code is None:  # valid: numbers beyond the INTEGER column still compare (as BIGINT)
        assert resp.status_code == 200 and resp.get_json()["value"] == [], resp.data[:300]
        return
    body = _problem(resp, 400, code)
    assert "filter" in body["message"] or "range" in body["message"]


def test_filters_that_are_odd_but_valid(api: Any, three: Any) -> None:
    def ids(expr: str) -> int:
        resp = api.get(f"{SVC}/Submissions", query_string={"$filter": expr})
        assert resp.status_code == 200, resp.data
        return len(resp.get_json()["value"])

    assert ids("null eq null") == 3
    assert ids("null ne null") == 0
    assert ids("1 lt 2 and __id ne 'uuid:sub-0'") == 2
    assert ids("__system/submitterId ne '99'") == 3
    assert ids("__system/submissionDate gt '2000-01-01'") == 3
    assert ids("2000-01-01 lt __system/submissionDate") == 3
    assert ids("(" * 20 + "__id eq 'uuid:sub-1'" + ")" * 20) == 1


def test_filter_on_entities_feed(app: Any, make_user: Any) -> None:
    make_user("boss", "admin")
    client = app.test_client()
    token = client.post("/v1/sessions", json={"email": "boss", "password": PASSWORD}).get_json()["token"]
    base = "/v1/projects/1/datasets/children.svc/Entities"
    headers = {"Authorization": f"Bearer {token}"}
    # no entity list yet: 404, and the garbage never reaches a query
    for q in ({"$filter": "(" * 2000}, {"$skiptoken": _token([1])}, {"$skip": "1" * 30}):
        resp = client.get(base, query_string=q, headers=headers)
        assert 400 <= resp.status_code < 500 and resp.get_json()["message"]


@pytest.mark.parametrize("url", [
    "/v1/projects/99999999999999999999/forms",
    "/v1/projects/99999999999999999999",
    "/v1/projects/2147483648/forms",  # ids are INTEGER on PostgreSQL
    "/v1/projects/1/exports/99999999999999999999",
    "/v1/projects/1/forms/house%00hold/submissions",
])
def test_huge_and_broken_path_ids_are_404(api: Any, url: str) -> None:
    _problem(api.get(url), 404)


def test_huge_ids_on_pages_and_openrosa(app: Any, make_user: Any, household: Any, collect: Any) -> None:
    make_user("boss", "admin")
    web = Browser(app)
    web.login("boss")
    for url in ("/exports/99999999999999999999", "/users/99999999999999999999",
                "/forms/household/versions/99999999999999999999/xml"):
        resp = web.get(url)
        assert resp.status_code == 404 and b"<html" in resp.data.lower(), url
    resp = collect.get("/v1/projects/99999999999999999999/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 404


def test_web_keyset_cursor_and_dates(app: Any, make_user: Any, submit: Any) -> None:
    assert submit().status_code == 201
    make_user("boss", "admin")
    web = Browser(app)
    web.login("boss")
    for query in ("after=1.99999999999999999999999", "after=99999999999999999999.1", "after=abc", "after=0.2147483648",
                  "from=2026-13-45", "to=99999-01-01", "region=%00"):
        resp = web.get(f"/submissions/household?{query}")
        assert resp.status_code == 400 and b"<html" in resp.data.lower(), query
    ok = web.get("/submissions/household?after=&page=99999999999999999999999&size=99999999999999999999")
    assert ok.status_code == 200
    assert web.get("/children?page=99999999999999999999").status_code == 200


# ---------------------------------------------------------------- names and encodings (items 11, 12)


def test_form_ids_that_normalise_alike_get_their_own_views(rt: Any, publish: Any, submit: Any) -> None:
    from app.services.forms import views

    first = publish(household_md("1").replace("household", "child_registration"), "child_registration.md")
    second = publish(household_md("1").replace("household", "Child-Registration"), "Child-Registration.md")
    third = publish(household_md("1").replace("household", "version"), "version.md")  # a table's name
    with rt.db.session() as s:
        names = {f: views.assign_view_names(s, s.merge(r.form), [None])[None]
                 for f, r in (("a", first), ("b", second), ("c", third))}
    assert names == {"a": "form_child_registration", "b": "form_child_registration_2", "c": "form_version_2"}
    assert submit(household_xml(form_id="child_registration")).status_code == 201
    with rt.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM form_child_registration")).scalar() == 1
        assert s.execute(text("SELECT count(*) FROM form_child_registration_2")).scalar() == 0
        # publishing the second form again leaves the first form's view alone
    publish(household_md("2").replace("household", "Child-Registration"), "Child-Registration.md")
    with rt.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM form_child_registration")).scalar() == 1
        assert s.execute(text("SELECT count(*) FROM form_version")).scalar() == 5  # still the table


@pytest.mark.parametrize("declared, codec, name", [
    ("ISO-8859-1", "latin-1", "José Müller"),
    ("ISO-8859-1", "utf-8", "卓玛 José"),  # UTF-8 bytes under a Latin-1 label: not stored as mojibake
    ("windows-1252", "cp1252", "Zoë €"),
    ("UTF-16", "utf-16", "ཚེ་རིང་ 次仁"),
])
def test_declared_encoding_is_honoured(submit: Any, rt: Any, declared: str, codec: str, name: str) -> None:
    xml = household_xml(name=name).decode().replace('<?xml version="1.0"?>',
                                                    f'<?xml version="1.0" encoding="{declared}"?>')
    assert submit(xml.encode(codec)).status_code == 201
    with rt.db.session() as s:
        sv = s.scalars(select(SubmissionVersion)).one()
        assert sv.data["child_name"] == name


def test_unknown_encoding_is_a_clear_400(submit: Any, rt: Any) -> None:
    xml = household_xml().replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="x-klingon"?>')
    resp = submit(xml)
    assert resp.status_code == 400 and b"x-klingon" in resp.data and b"UTF-8" in resp.data


# Werkzeug stops parsing at MAX_FORM_PARTS and leaves the parts it had read for the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_many_unreferenced_parts_get_a_clear_400(collect: Any, household: Any, rt: Any) -> None:
    def body() -> dict[str, Any]:
        data: dict[str, Any] = {"xml_submission_file": (BytesIO(household_xml()), "submission.xml", "text/xml")}
        for i in range(2000):
            data[f"leftover{i}.jpg"] = (BytesIO(b"x"), f"leftover{i}.jpg", "image/jpeg")
        return data

    resp = collect.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")
    assert resp.status_code == 400, resp.data[:300]
    assert b"OpenRosaResponse" in resp.data and b"more than 1000 files" in resp.data
    assert "文件太多" in resp.get_data(as_text=True)
    with rt.db.session() as s:
        assert s.scalars(select(Submission)).all() == []


def test_csv_injection_guard_covers_full_width_and_leading_space() -> None:
    from app.services.exports.rowcode import compile_row
    from app.services.exports.tabular import build_row

    cells = ["=1+1", "＝1+1", "＋1", "－1", "＠SUM(A1)", " =1", "\n=1", "\t1", "\r1", "\u3000＝1", "  @x",
             "﹦1", "plain", " plain", "1-2", "", "a=b", "'=1"]
    specs = [(str(i), 0, None, 1) for i in range(len(cells))]
    data = {str(i): c for i, c in enumerate(cells)}
    out = build_row(data, specs)
    assert out == compile_row(specs)(data)
    expected = ["'" + c if i < 12 else c for i, c in enumerate(cells)]
    assert out == expected


# ---------------------------------------------------------------- XLSForm size (item 12)


def _workbook(survey_rows: int, choice_rows: int) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "survey"
    ws.append(["type", "name", "label"])
    for i in range(survey_rows):
        ws.append(["text", f"q{i}", f"Question {i}"])
    ws.append(["select_one big", "pick", "Pick"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    for i in range(choice_rows):
        choices.append(["big", f"c{i}", f"Choice {i}"])
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_huge_xlsforms_are_refused_before_conversion() -> None:
    from forms import XLSFormError, compile_xlsform
    from forms.xlsform import MAX_CHOICE_ROWS, MAX_SURVEY_ROWS

    with pytest.raises(XLSFormError) as err:
        compile_xlsform(_workbook(MAX_SURVEY_ROWS + 5, 1), "big.xlsx", validate=False)
    (issue,) = err.value.issues
    assert issue.sheet == "survey" and f"{MAX_SURVEY_ROWS:,}" in issue.message
    with pytest.raises(XLSFormError) as err:
        compile_xlsform(_workbook(3, MAX_CHOICE_ROWS + 1), "big.xlsx", validate=False)
    assert err.value.issues[0].sheet == "choices" and "select_one_from_file" in err.value.issues[0].message
    # the same limits after reading, for .xls and .md uploads
    md = household_md("1").encode()
    with pytest.raises(XLSFormError, match="survey sheet has"):
        compile_xlsform(md, "household.md", validate=False, max_survey_rows=3)
    assert compile_xlsform(_workbook(20, 30), "ok.xlsx", validate=False).form_id == "ok"


def test_huge_xlsform_upload_is_a_400_with_the_reason(app: Any, rt: Any, make_user: Any) -> None:
    from forms.xlsform import MAX_SURVEY_ROWS

    make_user("coord", "coordinator", ["54"])
    web = Browser(app)
    web.login("coord")
    web.get("/forms")
    resp = web.post("/forms/upload", {"file": (BytesIO(_workbook(MAX_SURVEY_ROWS + 1, 1)), "big.xlsx")},
                    content_type="multipart/form-data")
    assert resp.status_code == 400 and "2,000" in resp.get_data(as_text=True)
