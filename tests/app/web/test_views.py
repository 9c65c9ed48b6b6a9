"""The generated SQL views analysts query (app/services/views.py): one typed column per question,
one view per repeat, on SQLite and PostgreSQL alike."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from tests.support.sample_forms import household_md, household_xml


def _rows(rt: Any, sql: str) -> list[tuple[Any, ...]]:
    with rt.db.session() as s:
        return [tuple(r) for r in s.execute(text(sql))]


def _columns(rt: Any, view: str) -> list[str]:
    with rt.db.session() as s:
        return list(s.execute(text(f"SELECT * FROM {view} WHERE 1 = 0")).keys())


def test_main_view_has_typed_values(submit: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    ((name, age, lat, lon, alt, acc),) = _rows(
        rt, "SELECT child_name, age, location_latitude, location_longitude, location_altitude, "
            "location_accuracy FROM form_household")
    assert name == "Tashi"
    assert age == 9 and isinstance(age, int)
    assert (lat, lon, alt, acc) == (29.65, 91.13, 3650, 5)
    assert isinstance(lat, float)
    ((village, needs, photo, version, instance_id, region),) = _rows(
        rt, "SELECT village, needs, photo, form_version, instance_id, region_code FROM form_household")
    assert (village, photo, version, region) == ("540102002201", "photo.jpg", "1", "540102002201")
    assert instance_id == "uuid:00000000-0000-4000-8000-000000000001"
    assert needs is not None and "food" in needs and "health" in needs
    # analysts filter and aggregate on the typed columns
    assert _rows(rt, "SELECT count(*) FROM form_household WHERE age > 8 AND village = '540102002201'") == [(1,)]
    assert _rows(rt, "SELECT count(*) FROM form_household WHERE age > 9") == [(0,)]


def test_select_multiple_reads_the_same_on_both_backends(submit: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    assert _rows(rt, "SELECT needs FROM form_household") == [("food health",)]


def test_repeat_view_has_one_row_per_member(submit: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    assert submit(household_xml("uuid:second", members=[("aunt", "41")])).status_code == 201
    ids = dict(_rows(rt, "SELECT instance_id, submission_id FROM form_household"))
    rows = _rows(rt, "SELECT submission_id, ordinal, member_role, member_age FROM form_household__members "
                     "ORDER BY submission_id, ordinal")
    first, second = ids["uuid:00000000-0000-4000-8000-000000000001"], ids["uuid:second"]
    assert rows == [(first, 1, "mother", 34), (first, 2, "grandfather", 70), (second, 1, "aunt", 41)]
    # joins back to the main view
    joined = _rows(rt, "SELECT h.child_name, count(*) FROM form_household h JOIN form_household__members m "
                       "ON m.submission_id = h.submission_id GROUP BY h.child_name ORDER BY h.child_name")
    assert joined == [("Tashi", 3)]


def test_unparsed_number_is_null_and_does_not_break_the_view(submit: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    resp = submit(household_xml("uuid:bad-age", name="Dolma", age="abc", members=[("mother", "old")]))
    assert resp.status_code == 201
    rows = _rows(rt, "SELECT child_name, age FROM form_household ORDER BY child_name")
    assert rows == [("Dolma", None), ("Tashi", 9)]
    assert _rows(rt, "SELECT sum(age) FROM form_household") == [(9,)]
    members = _rows(rt, "SELECT member_role, member_age FROM form_household__members WHERE member_role = 'mother' "
                        "ORDER BY member_age")
    assert sorted(members, key=lambda r: r[1] is None) == [("mother", 34), ("mother", None)]


def test_edit_shows_only_the_current_version(submit: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    edited = household_xml("uuid:edit-2", name="Tashi D.", age="10", members=[("mother", "35")],
                           deprecated_id="uuid:00000000-0000-4000-8000-000000000001")
    assert submit(edited).status_code == 201
    assert _rows(rt, "SELECT child_name, age, review_state FROM form_household") == [("Tashi D.", 10, "edited")]
    assert _rows(rt, "SELECT member_role, member_age FROM form_household__members") == [("mother", 35)]


def test_new_version_adds_a_column(submit: Callable[..., Any], publish: Callable[..., Any], rt: Any) -> None:
    assert submit().status_code == 201
    assert "weight" not in _columns(rt, "form_household")
    publish(household_md("2", "| | decimal | weight | Weight (kg) | | |"))
    assert "weight" in _columns(rt, "form_household")
    xml = household_xml("uuid:v2", version="2", name="Pema").replace(
        b"<photo>", b"<weight>23.5</weight><photo>")
    assert submit(xml).status_code == 201
    rows = _rows(rt, "SELECT child_name, form_version, weight FROM form_household ORDER BY form_version")
    assert rows == [("Tashi", "1", None), ("Pema", "2", 23.5)]


def test_view_names_are_safe_identifiers(rt: Any, publish: Callable[..., Any]) -> None:
    from app.services.forms import views

    assert views.view_name("Child-Visit 2") == "form_child_visit_2"
    assert views.view_name("household", "/data/grp/members") == "form_household__members"
    md = household_md("1").replace("| household |", "| Child-Visit |")
    publish(md)
    assert _rows(rt, "SELECT count(*) FROM form_child_visit") == [(0,)]
    assert _rows(rt, "SELECT count(*) FROM form_child_visit__members") == [(0,)]


NESTED_MD = """
| settings |
| | form_id | version |
| | visits | 1 |

| survey |
| | type | name | label |
| | begin group | grp | Child |
| | text | name | Name |
| | end group | | |
| | begin repeat | kids | Kids |
| | text | kid | Kid |
| | begin repeat | items | Vaccines |
| | text | vaccine | Vaccine |
| | end repeat | | |
| | end repeat | | |
| | begin group | home | Home |
| | begin repeat | Items | Rooms |
| | text | room | Room |
| | end repeat | | |
| | end group | | |
"""

NESTED_XML = (b'<data id="visits" version="1"><grp><name>Tashi</name></grp>'
              b"<kids><kid>A</kid><items><vaccine>bcg</vaccine></items><items><vaccine>polio</vaccine></items></kids>"
              b"<kids><kid>B</kid></kids>"
              b"<home><Items><room>kitchen</room></Items></home>"
              b"<meta><instanceID>uuid:nested-1</instanceID></meta></data>")


def test_groups_nested_repeats_and_repeats_with_similar_names(rt: Any, publish: Callable[..., Any],
                                                               collect: Any) -> None:
    from tests.app.conftest import submission_body

    publish(NESTED_MD)
    resp = collect.post("/v1/projects/1/submission", data=submission_body(NESTED_XML),
                        content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    assert _rows(rt, "SELECT grp_name FROM form_visits") == [("Tashi",)]
    kids = _rows(rt, "SELECT row_id, kid FROM form_visits__kids ORDER BY ordinal")
    assert [k for _, k in kids] == ["A", "B"]
    with rt.db.session() as s:
        names = {r[0] for r in s.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'view'" if rt.db.is_sqlite else
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'"))}
    item_views = sorted(n for n in names if n.startswith("form_visits__") and n != "form_visits__kids")
    # repeats "items" (vaccines inside kids) and "Items" (rooms inside home) get a view each
    assert item_views == ["form_visits__home_items", "form_visits__items"], names
    found = {"vaccine": "form_visits__items", "room": "form_visits__home_items"}
    vaccines = _rows(rt, f"SELECT parent_row_id, vaccine FROM {found['vaccine']} ORDER BY ordinal")
    assert vaccines == [(kids[0][0], "bcg"), (kids[0][0], "polio")]
    assert _rows(rt, f"SELECT room FROM {found['room']}") == [("kitchen",)]
