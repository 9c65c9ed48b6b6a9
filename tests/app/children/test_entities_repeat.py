"""Several entities from one submission (issue 20, C; entities spec 2025.1, as Collect 2026.1 and Central 2025.4):
a household form registers each child of a repeat — two siblings in one submission become two children,
both on the phones' lists, each with its own file — under the same lock, held-for-review and conflict rules."""
from __future__ import annotations

import io
import uuid
import zipfile
from typing import Any

import pytest
from sqlalchemy import select

from app.models import ChildDirectory, Entity, EntityEvent, EntityVersion, HeldChange
from forms import compile_xlsform, entity_scopes, extract, parse_submission, parse_xform
from tests.app.children.casework_helpers import FOLLOW_MD, Api, phone, phone_csv, post

HOUSEHOLD_MD = """
| settings |
| | form_id | version |
| | household_registration | 1 |

| survey |
| | type | name | label | save_to | calculation |
| | text | village | Village code | | |
| | text | guardian_name | Guardian | | |
| | image | home_photo | Home | | |
| | begin_repeat | child | Children of the household | | |
| | text | child_name | Name | | |
| | select_one yn | consent | Consent? | | |
| | date | birth_date | Date of birth | birth_date | |
| | calculate | child_village | | village | ${village} |
| | calculate | status | | status | 'registered' |
| | end_repeat | child | | | |

| choices |
| | list_name | name | label |
| | yn | yes | Yes |
| | yn | no | No |

| entities |
| | list_name | label | create_if |
| | children | ${child_name} | ${consent} = 'yes' |
"""

VILLAGE = "540102002001"
PHOTO = b"\xff\xd8\xff\xe0 the household's home" + b"h" * 64
FAR_VILLAGE = "540121100201"


def household_xml(instance: str, village: str, kids: list[tuple[str, str, str]], guardian: str = "次仁") -> bytes:
    """kids: (entity id, name, consent) — one repeat instance each, as Collect fills them."""
    rows = "".join(
        f"<child><child_name>{name}</child_name><consent>{consent}</consent><birth_date>2015-0{n + 1}-01</birth_date>"
        f"<child_village>{village}</child_village><status>registered</status><meta>"
        f'<entity dataset="children" id="{uid}" create="{1 if consent == "yes" else 0}"><label>{name}</label>'
        "</entity></meta></child>" for n, (uid, name, consent) in enumerate(kids))
    return (f'<data xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms" '
            f'id="household_registration" version="1"><village>{village}</village>'
            f"<guardian_name>{guardian}</guardian_name><home_photo>home.jpg</home_photo>{rows}<meta><instanceID>{instance}</instanceID></meta>"
            "</data>").encode()


@pytest.fixture
def setup(app: Any, make_user: Any, publish: Any) -> None:
    publish(HOUSEHOLD_MD, "household.md")
    publish(FOLLOW_MD, "follow.md")
    make_user("dolma", "collector", ["540102"])
    make_user("far", "collector", ["540121"])
    make_user("coord", "coordinator", ["540102"])


def test_the_compiled_form_declares_an_entity_per_repeat_instance() -> None:
    compiled = compile_xlsform(HOUSEHOLD_MD.encode(), "household.md", validate=False)
    xform = compiled.xform if isinstance(compiled.xform, bytes) else compiled.xform.encode()
    assert b'entities:entities-version="2025.1.0"' in xform
    schema = parse_xform(xform)
    (decl,) = schema.entities
    assert decl.repeat == "/data/child" and schema.entity == decl
    assert decl.properties == {"/data/child/birth_date": "birth_date", "/data/child/child_village": "village",
                               "/data/child/status": "status"}
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    _env, tree = parse_submission(household_xml("uuid:h0", VILLAGE, [(a, "卓玛", "yes"), (b, "扎西", "no")]),
                                  max_bytes=100_000)
    scopes = entity_scopes(tree, schema, extract(tree, schema))
    assert [s.block.uuid for s in scopes if s.block] == [a, b]
    assert scopes[0].properties["label"] == "卓玛" and scopes[1].values["child_name"] == "扎西"
    assert scopes[0].values["guardian_name"] == "次仁"  # the household's answers are in each child's scope
    assert [s.block.create for s in scopes if s.block] == [True, False]


def test_two_siblings_from_one_submission_become_two_children(app: Any, rt: Any, setup: None) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    dolma = phone(app, "dolma")
    post(dolma, household_xml("uuid:h1", VILLAGE, [(a, "卓玛", "yes"), (b, "扎西", "yes")]), {"home.jpg": PHOTO})
    with rt.db.session() as s:
        kids = {e.uuid: e for e in s.scalars(select(Entity).where(Entity.uuid.in_([a, b])))}
        assert set(kids) == {a, b}
        assert kids[a].label == "卓玛" and kids[b].label == "扎西"
        assert kids[a].data["birth_date"] == "2015-01-01" and kids[b].data["birth_date"] == "2015-02-01"
        assert kids[a].region_code == VILLAGE and kids[b].region_code == VILLAGE
        events = s.scalars(select(EntityEvent).order_by(EntityEvent.id)).all()
        assert [(e.entity_uuid, e.status) for e in events] == [(a, "applied"), (b, "applied")]
        # each child's own file: its own name in the directory, the household's guardian
        names = {d.entity_id: (d.full_name, d.guardian_name) for d in s.scalars(select(ChildDirectory))}
        assert names[kids[a].id] == ("卓玛", "次仁") and names[kids[b].id] == ("扎西", "次仁")
    # both on the phone's list
    on_phone = {r["name"]: r["label"] for r in phone_csv(dolma)}
    assert on_phone[a] == "卓玛" and on_phone[b] == "扎西"
    coord = Api(app, "coord")
    for uid, name in ((a, "卓玛"), (b, "扎西")):
        file = coord.get(f"/v1/projects/1/children/{uid}").get_json()
        assert file["child"]["full_name"] == name and file["history"][0]["version"] == 1
        assert [r["instance_id"] for r in file["records"]] == ["uuid:h1"]  # the household's record, in each file
    # each child's ZIP has the household's record and its photo
    from tests.app.web_helpers import Browser

    web = Browser(app)
    web.login("coord")
    for uid in (a, b):
        resp = web.get(f"/children/{uid}/archive.zip")
        assert resp.status_code == 200, resp.status_code
        with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
            photos = [n for n in zf.namelist() if n.endswith("home.jpg")]
            assert len(photos) == 1 and zf.read(photos[0]) == PHOTO
    # the same submission again: nothing twice
    post(dolma, household_xml("uuid:h1", VILLAGE, [(a, "卓玛", "yes"), (b, "扎西", "yes")]))
    with rt.db.session() as s:
        assert len(s.scalars(select(EntityVersion)).all()) == 2


def test_each_block_follows_the_rules_on_its_own(app: Any, rt: Any, setup: None) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    dolma = phone(app, "dolma")
    post(dolma, household_xml("uuid:h2", VILLAGE, [(a, "卓玛", "yes")]))
    # a: id in use (an error for that block only); b: no consent (no entity); c: created
    post(dolma, household_xml("uuid:h3", VILLAGE, [(a, "卓玛", "yes"), (b, "拉姆", "no"), (c, "次旦", "yes")]))
    with rt.db.session() as s:
        assert s.scalar(select(Entity).where(Entity.uuid == b)) is None
        assert s.scalar(select(Entity).where(Entity.uuid == c)) is not None
        events = s.scalars(select(EntityEvent).order_by(EntityEvent.id)).all()
        assert [(e.entity_uuid, e.status, e.code) for e in events] == [
            (a, "applied", None), (a, "error", "409.3"), (c, "applied", None)]


def test_siblings_outside_the_senders_regions_are_held_and_applied_one_by_one(app: Any, rt: Any,
                                                                             setup: None) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    resp = post(phone(app, "far"), household_xml("uuid:h4", VILLAGE, [(a, "卓玛", "yes"), (b, "扎西", "yes")]))
    assert "review" in resp.get_data(as_text=True)
    with rt.db.session() as s:
        held = {h.target: h.id for h in s.scalars(select(HeldChange))}
        assert set(held) == {a, b}
        assert s.scalar(select(Entity).where(Entity.uuid.in_([a, b]))) is None
    coord = Api(app, "coord")
    # the first sibling's change (the older of the record's two held events)
    assert coord.post(f"/v1/projects/1/held-changes/{held[a]}", json={"action": "apply"}).status_code == 200
    with rt.db.session() as s:
        made = s.scalars(select(Entity).where(Entity.uuid.in_([a, b]))).all()
        assert [(e.uuid, e.label) for e in made] == [(a, "卓玛")]  # that change's block, not the other one
    assert coord.post(f"/v1/projects/1/held-changes/{held[b]}", json={"action": "apply"}).status_code == 200
    with rt.db.session() as s:
        assert {e.label for e in s.scalars(select(Entity).where(Entity.uuid.in_([a, b])))} == {"卓玛", "扎西"}


def test_the_shipped_household_form_filled_by_odks_engine_registers_each_sibling(app: Any, rt: Any,
                                                                                  setup: None) -> None:
    """xlsforms/household_registration.xlsx, published as `carefile init` does, filled by ODK's form engine
    with two siblings and a third child of 15 who does not agree: two children, each with its own file."""
    from app.services import forms as form_service
    from tests.e2e import engine
    from tests.xlsforms.test_form_behaviour import BIRTH_12, FORMS_DIR, _years_ago, household

    try:
        engine.ensure_installed()
    except engine.EngineUnavailable as exc:
        pytest.skip(f"ODK form engine unavailable: {exc}")
    shipped = FORMS_DIR / "household_registration.xlsx"
    with rt.db.write() as s:
        result = form_service.publish_form(s, rt.store, project_id=1, data=shipped.read_bytes(),
                                           filename=shipped.name, validate=False)
        xform = bytes(result.version.xml)
    dolma = phone(app, "dolma")
    regions_csv = dolma.get("/v1/projects/1/forms/household_registration/attachments/regions.csv", openrosa=False)
    assert regions_csv.status_code == 200
    kids = [("扎西次仁", "male", BIRTH_12, "yes"), ("卓玛拉姆", "female", _years_ago(6), None),
            ("次旦", "male", _years_ago(15, 2), "no")]
    filled = engine.fill(xform, household(kids), attachments={"children.csv": b"name,label\n",
                                                               "regions.csv": regions_csv.data})
    post(dolma, filled.xml, dict(filled.files))
    with rt.db.session() as s:
        made = {e.label[:1]: e for e in s.scalars(select(Entity))}
        assert sorted(made) == ["卓", "扎"]
        assert {e.data["village"] for e in made.values()} == {"540102002001"}
        assert made["扎"].data["gender"] == "male" and made["卓"].data["gender"] == "female"
        assert made["扎"].data["status"] == "registered" and made["扎"].data["birth_date"] == BIRTH_12
        uids = {k: e.uuid for k, e in made.items()}
    on_phone = {r["name"] for r in phone_csv(dolma)}
    assert set(uids.values()) <= on_phone
    coord = Api(app, "coord")
    assert coord.get(f"/v1/projects/1/children/{uids['扎']}").get_json()["child"]["full_name"] == "扎西次仁"
    assert coord.get(f"/v1/projects/1/children/{uids['卓']}").get_json()["child"]["full_name"] == "卓玛拉姆"
