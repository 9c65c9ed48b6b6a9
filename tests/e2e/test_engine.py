"""The headless ODK form engine client fills a pyxform-compiled form correctly."""

from __future__ import annotations

import shutil

import pytest
from lxml import etree
from pyxform.xls2xform import convert

from tests.e2e import engine

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not installed (needed for the ODK form engine)",
)

FORM_MD = """
| survey |
| | type | name | label | required |
| | text | name | Name | yes |
| | integer | age | Age | |
| | begin_repeat | members | Members | |
| | text | mname | Member name | |
| | integer | mage | Member age | |
| | end_repeat | | | |
| | image | photo | Photo | |
| | geopoint | loc | Location | |
| | select_multiple colours | colours | Colours | |
| | select_one_from_file children.csv | child | Child | |
| choices |
| | list_name | name | label |
| | colours | red | Red |
| | colours | blue | Blue |
| | colours | green | Green |
| settings |
| | form_id | version |
| | e2e_engine | 2024010101 |
"""

CHILDREN_CSV = b"name,label\nc1,Child One\nc2,Child Two\n"
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake-jpeg-bytes\xff\xd9"


@pytest.fixture(scope="module")
def form_xml() -> bytes:
    return convert(xlsform=FORM_MD, file_type=".md", validate=False).xform.encode("utf-8")


@pytest.fixture(scope="module")
def filled(form_xml):
    return engine.fill(
        form_xml,
        [
            {"ref": "/data/name", "value": "Tashi"},
            {"ref": "/data/age", "value": "34"},
            {"ref": "/data/members", "repeat_count": 2},
            {"ref": "/data/members[1]/mname", "value": "Dawa"},
            {"ref": "/data/members[2]/mname", "value": "Pema"},
            {"ref": "/data/members[2]/mage", "value": "7"},
            {"ref": "/data/photo", "file": PHOTO, "name": "photo.jpg", "type": "image/jpeg"},
            {"ref": "/data/loc", "value": "29.65 91.13 3650 5"},
            {"ref": "/data/colours", "values": ["red", "blue"]},
            {"ref": "/data/child", "value": "c2"},
        ],
        attachments={"children.csv": CHILDREN_CSV},
    )


def test_submission_has_answers(filled):
    root = etree.fromstring(filled.xml)
    assert etree.QName(root).localname == "data"
    assert root.get("id") == "e2e_engine"
    assert root.get("version") == "2024010101"
    assert root.findtext("name") == "Tashi"
    assert root.findtext("age") == "34"
    assert root.findtext("colours").split() == ["red", "blue"]
    assert root.findtext("child") == "c2"
    lat, lon, alt, acc = (float(x) for x in root.findtext("loc").split())
    assert (lat, lon, alt, acc) == (29.65, 91.13, 3650.0, 5.0)


def test_repeat_has_two_instances(filled):
    root = etree.fromstring(filled.xml)
    members = root.findall("members")
    assert len(members) == 2
    assert [m.findtext("mname") for m in members] == ["Dawa", "Pema"]
    assert members[1].findtext("mage") == "7"
    assert not root.xpath("//*[@*[local-name()='template']]")


def test_photo_attachment_bytes(filled):
    root = etree.fromstring(filled.xml)
    name = root.findtext("photo")
    assert name == "photo.jpg"
    assert filled.files == {name: PHOTO}


def test_instance_id(filled):
    root = etree.fromstring(filled.xml)
    iid = root.findtext("meta/instanceID")
    assert iid and iid.startswith("uuid:")
    assert filled.instance_id == iid
    assert filled.status == "ready"


def test_list_refs(form_xml):
    refs = {r["ref"]: r for r in engine.list_refs(form_xml, attachments={"children.csv": CHILDREN_CSV})}
    assert refs["/data/members"]["nodeType"] == "repeat-range:uncontrolled"
    assert refs["/data/child"]["options"] == ["c1", "c2"]
    assert refs["/data/photo"]["nodeType"] == "upload"


def test_errors_are_clear(form_xml):
    att = {"children.csv": CHILDREN_CSV}
    with pytest.raises(engine.EngineError, match="unknown ref"):
        engine.fill(form_xml, [{"ref": "/data/nope", "value": "x"}], att)
    with pytest.raises(engine.EngineError, match="invalid choice"):
        engine.fill(form_xml, [{"ref": "/data/child", "value": "c9"}], att)
    with pytest.raises(engine.EngineError, match="required"):
        engine.fill(form_xml, [{"ref": "/data/age", "value": "3"}], att)
    with pytest.raises(engine.EngineError, match="children.csv"):
        engine.fill(form_xml, [{"ref": "/data/name", "value": "x"}], {})
    pending = engine.fill(form_xml, [{"ref": "/data/age", "value": "3"}], att, allow_pending=True)
    assert pending.status == "pending"
    assert pending.violations == [{"ref": "/data/name", "condition": "required", "message": None}]
