"""parse_xform: the schema CareFile builds from a stored XForm."""

from __future__ import annotations

import pytest

from forms import FormSchema, XFormError, parse_xform
from tests.forms.conftest import compile_md, schema_of


def test_form_identity_and_languages(household_schema: FormSchema) -> None:
    s = household_schema
    assert (s.form_id, s.version, s.title, s.root) == \
        ("household", "2024061001", "Household visit", "data")
    assert s.languages == ("English (en)", "中文 (zh)")
    assert s.default_language == "中文 (zh)"
    assert s.instance_name is not None and "/data/child_name" in s.instance_name
    assert s.submission_url is None and s.encrypted is False


def test_fields_in_document_order_with_types(household_schema: FormSchema) -> None:
    types = {f.path: f.type for f in household_schema.fields}
    assert list(types)[:4] == ["/data/child_name", "/data/age", "/data/weight", "/data/dob"]
    assert types["/data/age"] == "int"
    assert types["/data/weight"] == "decimal"
    assert types["/data/dob"] == "date"
    assert types["/data/home"] == "geopoint"
    assert types["/data/photo"] == "binary"
    assert types["/data/needs"] == "select"
    assert types["/data/in_school"] == "select1"
    assert types["/data/ok"] == "string"
    assert types["/data/grp"] == "group"
    assert types["/data/members"] == "repeat"
    assert types["/data/members/visits"] == "repeat"
    assert types["/data/meta/instanceID"] == "string"
    assert types["/data/meta/audit"] == "binary"
    # repeat templates do not produce duplicate fields
    paths = [f.path for f in household_schema.fields]
    assert len(paths) == len(set(paths))


def test_labels_in_every_language(household_schema: FormSchema) -> None:
    age = household_schema.field("/data/age")
    assert age is not None
    assert age.labels == {"English (en)": "Age", "中文 (zh)": "年龄"}
    assert age.control == "input" and age.name == "age"


def test_plain_labels_use_empty_language_key() -> None:
    schema = schema_of("""
| survey |
| | type | name | label | hint |
| | text | a | Your name | Family name first |
| | note | n | Hello ${a} | |
""")
    a = schema.field("/data/a")
    assert a is not None and a.labels == {"": "Your name"}
    assert a.hints == {"": "Family name first"}
    assert schema.field("/data/n").labels == {"": "Hello ${a}"}  # type: ignore[union-attr]
    assert schema.languages == ()


def test_repeats_and_nesting(household_schema: FormSchema) -> None:
    s = household_schema
    assert s.repeats == ("/data/members", "/data/members/visits")
    assert s.field("/data/members/mage").repeat == "/data/members"  # type: ignore[union-attr]
    vdate = s.field("/data/members/visits/vdate")
    assert vdate is not None and vdate.repeat == "/data/members/visits"
    assert s.field("/data/members/visits").repeat == "/data/members"  # type: ignore[union-attr]
    assert s.field("/data/members").repeat is None  # type: ignore[union-attr]
    assert s.field("/data/grp/note_q").repeat is None  # type: ignore[union-attr]


def test_binds_required_relevant_readonly_calculate(household_schema: FormSchema) -> None:
    s = household_schema
    assert s.field("/data/child_name").required  # type: ignore[union-attr]
    assert not s.field("/data/age").required  # type: ignore[union-attr]
    note = s.field("/data/grp/note_q")
    assert note is not None and note.relevant == "/data/age  > 5"
    iid = s.field("/data/meta/instanceID")
    assert iid is not None and iid.readonly and iid.meta and iid.control is None


def test_uploads_and_binary_fields(household_schema: FormSchema) -> None:
    photo = household_schema.field("/data/photo")
    assert photo is not None
    assert (photo.control, photo.mediatype) == ("upload", "image/*")
    audio = household_schema.field("/data/members/visits/vaudio")
    assert audio is not None and audio.mediatype == "audio/*"
    assert [f.path for f in household_schema.binary_fields()] == \
        ["/data/photo", "/data/members/visits/vaudio", "/data/meta/audit"]


def test_choices_from_internal_itemset_with_translations(household_schema: FormSchema) -> None:
    needs = household_schema.field("/data/needs")
    assert needs is not None
    assert [c.value for c in needs.choices] == ["food", "school", "health"]
    assert needs.choices[1].labels == {"English (en)": "School", "中文 (zh)": "学校"}
    assert needs.itemset_file is None


def test_inline_items_are_read() -> None:
    xform = compile_md(HAND_FORM_MD)
    schema = parse_xform(xform.replace(b"<itemset", b"<itemsetX").replace(
        b"</itemset>", b"</itemsetX><item><label>Red</label><value>r</value></item>"))
    colour = schema.field("/data/colour")
    assert colour is not None
    assert colour.choices[-1].value == "r" and colour.choices[-1].labels == {"": "Red"}


HAND_FORM_MD = """
| survey |
| | type | name | label |
| | select_one c | colour | Colour |
| choices |
| | list_name | name | label |
| | c | b | Blue |
"""


def test_sensitive_marker(household_schema: FormSchema) -> None:
    sensitive = [f.path for f in household_schema.fields if f.sensitive]
    assert sensitive == ["/data/child_name", "/data/photo"]


def test_sensitive_requires_carefile_namespace() -> None:
    # same local name in ODK's namespace is not CareFile's marker
    schema = schema_of("""
| survey |
| | type | name | label | bind::odk:sensitive | bind::carefile:sensitive |
| | text | a | A | yes | |
| | text | b | B | | no |
""")
    assert not schema.field("/data/a").sensitive  # type: ignore[union-attr]
    assert not schema.field("/data/b").sensitive  # type: ignore[union-attr]


def test_attachments_media_csv_xml() -> None:
    schema = schema_of("""
| survey |
| | type | name | label | media::image | calculation |
| | select_one_from_file children.csv | child | Child | | |
| | select_one_from_file places.xml | place | Place | | |
| | note | n | Look | logo.png | |
| | calculate | price | | | pulldata('prices', 'p', 'k', 'x') |
| | select_one yn | q | Q | | |
| choices |
| | list_name | name | label | media::audio |
| | yn | y | Yes | yes.mp3 |
""")
    kinds = {a.filename: (a.kind, a.dataset) for a in schema.attachments}
    assert kinds == {
        "yes.mp3": ("audio", None),
        "logo.png": ("image", None),
        "children.csv": ("csv", "children"),
        "places.xml": ("xml", None),
        "prices.csv": ("csv", "prices"),
    }
    child = schema.field("/data/child")
    assert child is not None and child.itemset_file == "children.csv" and child.choices == ()
    assert schema.field("/data/place").itemset_file == "places.xml"  # type: ignore[union-attr]
    assert schema.languages == ("default",)


def test_entity_create_declaration(create_schema: FormSchema) -> None:
    ent = create_schema.entity
    assert ent is not None
    assert (ent.dataset, ent.create, ent.update) == ("children", True, False)
    assert ent.create_condition is None
    assert ent.label_path == "/data/meta/entity/label"
    assert ent.properties == {"/data/age": "age", "/data/village": "village"}
    assert ent.spec_version == "2024.1.0"
    assert create_schema.field("/data/age").saveto == "age"  # type: ignore[union-attr]
    assert create_schema.field("/data/child_name").saveto is None  # type: ignore[union-attr]


def test_entity_update_declaration(update_schema: FormSchema) -> None:
    ent = update_schema.entity
    assert ent is not None
    assert (ent.dataset, ent.create, ent.update) == ("children", False, True)
    assert ent.id_calculate == "/data/child"
    assert ent.properties == {"/data/age": "age"}
    att = update_schema.attachments
    assert [(a.filename, a.kind, a.dataset) for a in att] == [("children.csv", "csv", "children")]


def test_conditional_create_and_update() -> None:
    schema = schema_of("""
| survey |
| | type | name | label |
| | select_one_from_file children.csv | child | Child |
| | integer | age | Age |
| entities |
| | list_name | entity_id | label | create_if | update_if |
| | children | ${child} | ${age} | ${child} = '' | ${child} != '' |
""")
    ent = schema.entity
    assert ent is not None and ent.create and ent.update
    assert ent.create_condition == "/data/child  = ''"
    assert ent.update_condition == "/data/child  != ''"


def test_no_entity_in_plain_form(household_schema: FormSchema) -> None:
    assert household_schema.entity is None


def test_encrypted_form_and_submission_url() -> None:
    schema = schema_of("""
| survey |
| | type | name | label |
| | text | a | A |
| settings |
| | form_id | public_key | submission_url |
| | enc | MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA | https://example.org/submission |
""")
    assert schema.encrypted is True
    assert schema.submission_url == "https://example.org/submission"


def test_doctype_is_rejected() -> None:
    evil = (b'<?xml version="1.0"?><!DOCTYPE h:html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + compile_md(HAND_FORM_MD).split(b"?>", 1)[1])
    with pytest.raises(XFormError, match="DOCTYPE"):
        parse_xform(evil)


@pytest.mark.parametrize("data,message", [
    (b"<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head/></h:html>", "not an ODK XForm"),
    (b"not xml at all", "well-formed"),
    (b"", "well-formed"),
])
def test_not_an_xform(data: bytes, message: str) -> None:
    with pytest.raises(XFormError, match=message):
        parse_xform(data)


def test_missing_form_id() -> None:
    xform = compile_md(HAND_FORM_MD).replace(b'<data id="form"', b"<data")
    with pytest.raises(XFormError, match="form ID"):
        parse_xform(xform)


def test_media_file_name_with_space_is_kept_whole() -> None:
    from pyxform.xls2xform import convert

    from forms import parse_xform

    md = """
| survey |
| | type | name | label | media::image |
| | note | n | Hello | 村徽 1.png |
"""
    schema = parse_xform(convert(xlsform=md, file_type=".md", validate=False).xform.encode())
    assert [a.filename for a in schema.attachments] == ["村徽 1.png"]
