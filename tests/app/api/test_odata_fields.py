"""Beyond Central (issue 20, build 3): OData `$filter` on the form's own questions and a checked
`$select`, through pyodk's `submissions.get_table`, with the same bounded parser and scoping."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyodk.errors import PyODKError

from tests.app.conftest import PASSWORD, submission_body
from tests.support.pyodk_app import pyodk_client
from tests.support.sample_forms import household_md, household_xml

VISIT = "| | date | visit_date | Visit date | | |\n| | decimal | weight | Weight | | |"


def record(iid: str, name: str, age: str, visit: str, weight: str) -> bytes:
    return household_xml(iid, name=name, age=age).replace(
        b"<meta>", f"<visit_date>{visit}</visit_date><weight>{weight}</weight><meta>".encode())


@pytest.fixture
def filled(publish: Any, collect: Any) -> None:
    publish(household_md("1", VISIT))
    for args in (("uuid:f-1", "Tashi", "5", "2026-03-01", "18.5"), ("uuid:f-2", "Dolma", "9", "2026-04-15", "27"),
                 ("uuid:f-3", "Norbu", "twelve", "2026-05-20", "n/a")):
        sent = collect.post("/v1/projects/1/submission", data=submission_body(record(*args)),
                            content_type="multipart/form-data")
        assert sent.status_code == 201, sent.get_data(as_text=True)


@pytest.fixture
def odk(app: Any, make_user: Any, tmp_path: Path) -> Any:
    make_user("boss", "admin")
    return pyodk_client(app, tmp_path, "boss", PASSWORD)


def ids(client: Any, **kw: Any) -> list[str]:
    return sorted(r["__id"] for r in client.submissions.get_table(form_id="household", **kw)["value"])


def test_filter_on_form_questions(odk: Any, filled: None) -> None:
    assert ids(odk, filter="age gt 6") == ["uuid:f-2"]  # 'twelve' is no number: never matched, never an error
    assert ids(odk, filter="age le 9 and weight lt 20") == ["uuid:f-1"]
    assert ids(odk, filter="weight ge 18.5") == ["uuid:f-1", "uuid:f-2"]
    assert ids(odk, filter="child_name eq 'Dolma' or child_name eq 'Norbu'") == ["uuid:f-2", "uuid:f-3"]
    assert ids(odk, filter="village eq '540102002201' and not (child_name eq 'Tashi')") == ["uuid:f-2", "uuid:f-3"]
    assert ids(odk, filter="visit_date ge 2026-04-01") == ["uuid:f-2", "uuid:f-3"]
    assert ids(odk, filter="visit_date lt '2026-04-01' and __system/submitterId ne null") == ["uuid:f-1"]
    assert ids(odk, filter="age eq null") == ["uuid:f-3"]  # a non-number is no number
    # the parser's bounds and types hold for questions too
    for bad, code in (("age gt 'five'", "400.18"), ("child_name gt 5", "400.18"), ("needs eq 'food'", "501.5"),
                      ("location eq null", "501.5"), ("members/member_age gt 3", "501.5"),
                      ("(" * 40 + "age gt 1" + ")" * 40, "400.18")):
        with pytest.raises(PyODKError) as err:
            odk.submissions.get_table(form_id="household", filter=bad)
        assert err.value.is_central_error(code), (bad, err.value)


def test_filter_keeps_the_readers_scope_and_masks(odk: Any, filled: None, app: Any, make_user: Any,
                                                  tmp_path: Path, publish: Any) -> None:
    make_user("far", "manager", ["540121"])
    far = pyodk_client(app, tmp_path, "far", PASSWORD)
    assert ids(far, filter="age gt 0") == []
    # a sensitive question cannot be filtered on by a reader who sees it masked (the filter would tell)
    publish(household_md("2", VISIT).replace(
        "| survey |\n| | type | name | label | required | relevant |",
        "| survey |\n| | type | name | label | required | relevant | bind::carefile:sensitive |").replace(
        "| | text | child_name | Child's name | yes | |", "| | text | child_name | Child's name | yes | | yes |"))
    make_user("near", "manager", ["540102"])
    near = pyodk_client(app, tmp_path, "near", PASSWORD)
    with pytest.raises(PyODKError) as err:
        near.submissions.get_table(form_id="household", filter="child_name eq 'Dolma'")
    assert err.value.is_central_error("501.5")
    assert ids(near, filter="age gt 6") == ["uuid:f-2"]
    assert ids(odk, filter="child_name eq 'Dolma'") == ["uuid:f-2"]


def test_select_is_checked(odk: Any, filled: None) -> None:
    rows = odk.submissions.get_table(form_id="household", select="__id,child_name,__system/reviewState",
                                     filter="age gt 6")["value"]
    assert rows == [{"__id": "uuid:f-2", "child_name": "Dolma", "__system": {"reviewState": None}}]
    members = odk.submissions.get_table(form_id="household", table_name="Submissions.members",
                                        select="member_role,__Submissions-id")["value"]
    assert {"member_role", "__Submissions-id"} == set(members[0])
    for bad in ("nothing", "__system/nothing", "child_name,members/member_role"):
        with pytest.raises(PyODKError) as err:
            odk.submissions.get_table(form_id="household", select=bad)
        assert err.value.is_central_error("400.86"), bad
