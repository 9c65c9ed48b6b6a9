"""Finding a child and telling children apart (issue 17, item 6); one redaction path for children (issue 19,
item 4): identifying details reach only the users entitled to them, on every read model of a child."""
from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.models import ChildDirectory, Entity, User
from tests.app.conftest import PASSWORD, submission_body
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient

VILLAGE = "540102002001"
OTHER_VILLAGE = "540102002002"

# Shaped like the shipped registration form: the name, ID number and guardian are sensitive answers in
# groups; the entity label (which phones receive) is built from the name, so it is sensitive too.
REG_MD = """
| settings |
| | form_id | version | namespaces | instance_name |
| | child_registration | 1 | carefile="https://carefile.example/xforms" | concat('建档-', substr(${child_name}, 0, 1), '*') |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive | calculation |
| | begin_group | grp_child | Child | | | |
| | text | child_name | Name | | yes | |
| | text | id_number | ID number | | yes | |
| | date | birth_date | Birth date | birth_date | | |
| | select_one gender | gender | Sex | gender | | |
| | end_group | grp_child | | | | |
| | begin_group | grp_guardian | Guardian | | | |
| | text | guardian_name | Guardian | | yes | |
| | end_group | grp_guardian | | | | |
| | text | village | Village code | village | | |
| | date | registered_on | Registered | registered_on | | |
| | calculate | child_label | | | yes | concat(substr(${child_name}, 0, 1), '*') |

| choices |
| | list_name | name | label::中文 (zh) | label::English (en) |
| | gender | male | 男 | Male |
| | gender | female | 女 | Female |

| entities |
| | list_name | label |
| | children | ${child_label} |
"""

VISIT_MD = """
| settings |
| | form_id | version |
| | assessment | 1 |

| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | begin_group | grp_assessor | Assessor | |
| | date | assessment_date | Assessed on | |
| | end_group | grp_assessor | | |
| | text | risk | Risk | risk_level |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""


def reg_xml(instance: str, uid: str, name: str, id_number: str, guardian: str, birth: str = "2012-10-03",
            village: str = VILLAGE, deprecated: str = "") -> bytes:
    dep = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    return (f'<data id="child_registration" version="1"><grp_child><child_name>{name}</child_name>'
            f"<id_number>{id_number}</id_number><birth_date>{birth}</birth_date><gender>male</gender></grp_child>"
            f"<grp_guardian><guardian_name>{guardian}</guardian_name></grp_guardian><village>{village}</village>"
            f"<registered_on>2026-11-01</registered_on><child_label>{name[:1]}*</child_label>"
            f"<meta><instanceID>{instance}</instanceID>{dep}<instanceName>建档-{name[:1]}**</instanceName>"
            f'<entity dataset="children" id="{uid}" create="{0 if deprecated else 1}"><label>{name[:1]}*</label>'
            "</entity></meta></data>").encode()


def assess_xml(instance: str, uid: str, day: str, risk: str = "orange") -> bytes:
    return (f'<data id="assessment" version="1"><child>{uid}</child><grp_assessor><assessment_date>{day}'
            f"</assessment_date></grp_assessor><risk>{risk}</risk><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{uid}" update="1" baseVersion="1" trunkVersion="" branchId="">'
            "<label/></entity></meta></data>").encode()


@pytest.fixture
def world(app: Any, rt: Any, make_user: Any, publish: Any) -> dict[str, str]:
    publish(REG_MD, "reg.md")
    publish(VISIT_MD, "assess.md")
    make_user("dolma", "collector", ["540102"])
    make_user("coord", "coordinator", ["540102"])
    make_user("mgr", "manager", ["540102"])
    make_user("mgr_s", "manager", ["540102"])
    with rt.db.write() as s:
        granted = s.scalar(select(User).where(User.username == "mgr_s"))
        assert granted is not None
        granted.sees_sensitive = True
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    kids = {"tashi": str(uuid.uuid4()), "tashi2": str(uuid.uuid4()), "dolkar": str(uuid.uuid4())}
    for iid, uid, xml in (
            ("uuid:r1", kids["tashi"], reg_xml("uuid:r1", kids["tashi"], "扎西次仁", "54010220121003123x", "卓玛")),
            ("uuid:r2", kids["tashi2"], reg_xml("uuid:r2", kids["tashi2"], "扎西次仁", "540102201210041230", "次旺",
                                                 birth="2012-10-04", village=OTHER_VILLAGE)),
            ("uuid:r3", kids["dolkar"], reg_xml("uuid:r3", kids["dolkar"], "多吉卓嘎", "", "拉姆"))):
        resp = phone.post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data")
        assert resp.status_code == 201, (iid, uid, resp.data)
    return kids


def bearer(app: Any, name: str) -> dict[str, str]:
    return ApiClient(app, name).headers


def search(app: Any, name: str, q: str) -> list[dict[str, Any]]:
    resp = app.test_client().get("/v1/projects/1/children", query_string={"q": q}, headers=bearer(app, name))
    assert resp.status_code == 200, resp.data
    return list(resp.get_json()["children"])


@pytest.mark.parametrize("q", ["扎西次仁", "次仁", "zhaxiciren", "Zhaxi Ciren", "zxcr", "54010220121003123X",
                               "54010220121003123x", "卓玛", "zhuoma"])
def test_a_coordinator_finds_a_child_by_name_pinyin_initials_id_number_or_guardian(
        app: Any, world: dict[str, str], q: str) -> None:
    found = {c["uuid"] for c in search(app, "coord", q)}
    assert world["tashi"] in found
    assert world["dolkar"] not in found


def test_lists_tell_two_children_of_the_same_name_apart(app: Any, world: dict[str, str]) -> None:
    rows = {c["uuid"]: c for c in search(app, "coord", "扎西次仁")}
    assert set(rows) == {world["tashi"], world["tashi2"]}
    a, b = rows[world["tashi"]], rows[world["tashi2"]]
    assert a["full_name"] == b["full_name"] == "扎西次仁"
    assert (a["guardian_name"], b["guardian_name"]) == ("卓玛", "次旺")
    assert (a["birth_date"], b["birth_date"]) == ("2012-10-03", "2012-10-04")
    assert a["region_code"] != b["region_code"]


def test_people_without_the_grant_find_no_one_by_name_and_see_nothing_identifying(
        app: Any, world: dict[str, str]) -> None:
    assert search(app, "mgr", "扎西次仁") == [] and search(app, "mgr", "zxcr") == []
    everyone = search(app, "mgr", "")
    assert len(everyone) == 3
    for c in everyone:
        assert c["label"].startswith("儿童 ") and "full_name" not in c and "guardian_name" not in c
    body = str(everyone)
    for secret in ("扎西", "卓玛", "54010220121003123", "次旺"):
        assert secret not in body
    # the grant opens them
    assert {c["uuid"] for c in search(app, "mgr_s", "卓玛")} == {world["tashi"]}


def test_correcting_the_registration_corrects_the_search(app: Any, rt: Any, world: dict[str, str]) -> None:
    coord = app.test_client()
    xml = reg_xml("uuid:r3e", world["dolkar"], "多吉卓玛", "", "拉姆", deprecated="uuid:r3")
    resp = coord.put("/v1/projects/1/forms/child_registration/submissions/uuid:r3", data=xml,
                     headers=bearer(app, "coord") | {"Content-Type": "application/xml"})
    assert resp.status_code == 200, resp.data
    assert {c["uuid"] for c in search(app, "coord", "多吉卓玛")} == {world["dolkar"]}
    assert search(app, "coord", "多吉卓嘎") == []


def test_a_piece_of_a_label_finds_exactly_the_labels_that_contain_it(app: Any, rt: Any, world: dict[str, str]
                                                                    ) -> None:
    """The name search finds the labels that contain the typed text — with its punctuation, which the
    PostgreSQL query takes out for its trigram index (the squeezed label) and checks again on the label
    itself — or whose directory row contains it; `%` and `_` are plain characters."""
    labels = {"hit": "扎*（女，2015-03，207201村）", "hit2": "扎*（女，2015%_，207201村）",
              "squeezed_only": "扎女2015-03", "other_year": "扎*（女，2016-03，201507村）",
              "other_sex": "扎*（男，2015-03，207201村）"}
    ids = {}
    with rt.db.write() as s:
        template = s.scalar(select(Entity).where(Entity.uuid == world["dolkar"]))
        assert template is not None
        for key, label in labels.items():
            e = Entity(dataset_id=template.dataset_id, uuid=str(uuid.uuid4()), label=label, version=1,
                       data={"village": VILLAGE}, region_code=VILLAGE)
            s.add(e)
            ids[key] = e.uuid
    for who in ("coord", "mgr_s"):
        assert {c["uuid"] for c in search(app, who, "扎*（女，2015")} == {ids["hit"], ids["hit2"]}
        assert {c["uuid"] for c in search(app, who, "（女，2015%_")} == {ids["hit2"]}
        assert {c["uuid"] for c in search(app, who, "扎女2015")} == {ids["squeezed_only"]}
        assert search(app, who, "2015_0") == []
        # the label or the directory: 卓玛 is the guardian of 扎西次仁 (directory), 扎* a label of several
        assert {c["uuid"] for c in search(app, who, "卓玛")} == {world["tashi"]}
        assert {world["tashi"], world["tashi2"], ids["hit"], ids["other_sex"]} <= {
            c["uuid"] for c in search(app, who, "扎*")}
    body = app.test_client().get("/v1/projects/1/children", query_string={"q": "扎*（女，2015"},
                                 headers=bearer(app, "coord")).get_json()
    assert body["total"] == 2


@pytest.mark.parametrize("q", ["扎西次仁", "zhaxiciren", "次仁"])
def test_many_matches_are_paged_in_name_order_as_few_are(rt: Any, world: dict[str, str], q: str) -> None:
    """More matches than the count limit: the page walks the names in order instead of sorting the matches
    (and a text too short for a trigram always does) — the same children either way."""
    from app.services.children import childfile

    with rt.db.session() as s:
        coord = s.scalar(select(User).where(User.username == "coord"))
        few, few_total = childfile.list_children(s, 1, coord, q=q, count_limit=10)
        many, many_total = childfile.list_children(s, 1, coord, q=q, count_limit=1)
        second, _ = childfile.list_children(s, 1, coord, q=q, count_limit=1, limit=1, offset=1)
    assert (few_total, many_total) == (2, 2)
    assert [c.uuid for c in few] == [c.uuid for c in many]
    assert {c.uuid for c in few} == {world["tashi"], world["tashi2"]}
    assert [c.uuid for c in second] == [few[1].uuid]


def test_children_registered_before_the_directory_are_filled_at_start(app: Any, rt: Any,
                                                                      world: dict[str, str]) -> None:
    from app.services.ops.setup import init_schema

    with rt.db.write() as s:
        s.execute(delete(ChildDirectory))
    assert search(app, "coord", "zxcr") == []
    init_schema(rt)
    assert {c["uuid"] for c in search(app, "coord", "zxcr")} == {world["tashi"], world["tashi2"]}


def test_duplicate_pairs_show_the_differences_side_by_side(app: Any, world: dict[str, str]) -> None:
    client = app.test_client()
    pairs = client.get("/v1/projects/1/children/duplicates", headers=bearer(app, "coord")).get_json()
    pair = next(p for p in pairs if {c["uuid"] for c in p["children"]} == {world["tashi"], world["tashi2"]})
    assert {c["full_name"] for c in pair["children"]} == {"扎西次仁"}
    assert {"birth_date", "region_code", "guardian_name", "id_number"} <= set(pair["differences"])
    assert "full_name" not in pair["differences"]


def test_a_records_date_is_its_own_even_inside_a_group(app: Any, rt: Any, world: dict[str, str]) -> None:
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    resp = phone.post("/v1/projects/1/submission", content_type="multipart/form-data",
                      data=submission_body(assess_xml("uuid:a1", world["tashi"], "2026-05-14")))
    assert resp.status_code == 201
    body = app.test_client().get(f"/v1/projects/1/children/{world['tashi']}", headers=bearer(app, "coord")).get_json()
    dates = {r["form_id"]: r["date"] for r in body["records"]}
    assert dates == {"child_registration": "2026-11-01", "assessment": "2026-05-14"}
    assert [r["form_id"] for r in body["records"]] == ["assessment", "child_registration"]  # in time order


def test_case_work_answers_and_turning_18_carry_no_identifying_label(app: Any, rt: Any, world: dict[str, str]
                                                                     ) -> None:
    """Managers without the grant get the pseudonym on every answer that carries a child."""
    with rt.db.write() as s:
        child = s.scalar(select(Entity).where(Entity.uuid == world["tashi"]))
        assert child is not None
        child.data = {**child.data, "birth_date": "2008-12-20"}  # turns 18 within 90 days of 2026-12-07
    client = app.test_client()
    mgr = bearer(app, "mgr")
    moved = client.post(f"/v1/projects/1/children/{world['tashi']}/transfer", json={"village": OTHER_VILLAGE},
                        headers=mgr)
    assert moved.status_code == 200, moved.data
    closed = client.post(f"/v1/projects/1/children/{world['tashi']}/close", json={"reason": "moved"}, headers=mgr)
    reopened = client.post(f"/v1/projects/1/children/{world['tashi']}/reopen", json={}, headers=mgr)
    turning = client.get("/v1/projects/1/children/turning18?days=366", headers=mgr)
    for resp in (moved, closed, reopened, turning):
        assert resp.status_code == 200, resp.data
        text = resp.get_data(as_text=True)
        assert "扎" not in text and "\\u624e" not in text, text
    assert moved.get_json()["label"].startswith("儿童 ")


def test_instance_names_built_from_a_name_are_masked_for_readers_without_the_grant(
        app: Any, world: dict[str, str]) -> None:
    client = app.test_client()
    coord = client.get(f"/v1/projects/1/children/{world['tashi']}", headers=bearer(app, "coord")).get_json()
    assert coord["records"][0]["instance_name"] == "建档-扎**"
    mgr = client.get(f"/v1/projects/1/children/{world['tashi']}", headers=bearer(app, "mgr")).get_json()
    assert mgr["records"][0]["instance_name"] == "***"
    from tests.app.web_helpers import Browser

    page = Browser(app)
    assert page.login("mgr").status_code == 302
    listing = page.get("/submissions/child_registration").get_data(as_text=True)
    record = page.get("/submissions/child_registration/uuid:r1").get_data(as_text=True)
    for html in (listing, record):
        assert "建档-扎" not in html and "扎西" not in html


def _page(app: Any, user: str, url: str) -> str:
    from tests.app.web_helpers import Browser

    browser = Browser(app)
    assert browser.login(user).status_code in (302, 303)
    resp = browser.get(url)
    assert resp.status_code == 200, resp.data
    return str(resp.get_data(as_text=True))


def test_the_website_tells_entitled_readers_who_is_who(app: Any, world: dict[str, str]) -> None:
    listed = _page(app, "coord", "/children?q=zxcr")
    assert listed.count(">扎西次仁</a>") == 2  # the full name heads each row…
    assert "卓玛" in listed and "次旺" in listed and "2012-10-04" in listed  # …with what tells them apart
    file = _page(app, "coord", f"/children/{world['tashi']}")
    assert "<h1>扎西次仁" in file and "54010220121003123X" in file
    dup = _page(app, "coord", "/children/duplicates")
    rows = dict(re.findall(r'<tr data-key="(\w+)"( class="differs")?', dup))
    assert rows["full_name"] == "" and rows["gender"] == ""  # the same: shown, not marked
    for key in ("birth_date", "region_code", "guardian_name", "id_number"):
        assert rows[key] == ' class="differs"', key
    assert dup.count("扎西次仁") == 2 and "卓玛" in dup and "次旺" in dup


def test_the_website_keeps_names_from_readers_without_the_grant(app: Any, world: dict[str, str]) -> None:
    for url in ("/children", "/children?q=zxcr", f"/children/{world['tashi']}"):
        page = _page(app, "mgr", url)
        for secret in ("扎西", "卓玛", "54010220121003123", "次旺"):
            assert secret not in page, (url, secret)
    assert "扎西次仁" in _page(app, "mgr_s", f"/children/{world['tashi']}")


def test_the_row_made_at_registration_is_the_row_refresh_makes(app: Any, rt: Any, world: dict[str, str]) -> None:
    """Registration writes the row from the answers it has at hand; reading the registration back gives the same."""
    from app.services.children import directory

    columns = ("full_name", "guardian_name", "id_number", "search_text", "submission_id")
    with rt.db.write() as s:
        made = {r.entity_id: tuple(getattr(r, c) for c in columns) for r in s.scalars(select(ChildDirectory))}
        assert len(made) >= 3 and any(v[0] for v in made.values())
        for entity in s.scalars(select(Entity).where(Entity.id.in_(made))):
            again = directory.refresh(s, entity)
            assert again is not None and tuple(getattr(again, c) for c in columns) == made[entity.id]
