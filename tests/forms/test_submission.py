"""parse_submission / extract: envelope, typed values, repeats, entities, hostile XML."""

from __future__ import annotations

import pytest

from forms import (
    FormSchema,
    SubmissionXMLError,
    extract,
    parse_submission,
)

IID = "uuid:6f1c9a52-3d1e-4b7e-9a5c-1f2e3d4c5b6a"

HOUSEHOLD_SUBMISSION = f"""<?xml version="1.0"?>
<data xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms"
      id="household" orx:version="2024061001">
  <child_name>小明</child_name>
  <age>9</age>
  <weight>27.5</weight>
  <dob>2015-03-02</dob>
  <home>39.9042 116.4074 43.5 4.8</home>
  <photo>1718000000000.jpg</photo>
  <needs>food health</needs>
  <in_school>yes</in_school>
  <ok>OK</ok>
  <grp><note_q>likes drawing</note_q></grp>
  <members jr:template=""><mname/><mage/><visits><vdate/><vaudio/></visits></members>
  <members>
    <mname>Grandma</mname><mage>70</mage>
    <visits><vdate>2024-06-01</vdate><vaudio>a1.m4a</vaudio></visits>
    <visits><vdate>2024-06-08</vdate><vaudio/></visits>
  </members>
  <members>
    <mname>Uncle</mname><mage>abc</mage>
    <visits><vdate>2024-06-02</vdate><vaudio>1718000000000.jpg</vaudio></visits>
  </members>
  <extra_from_old_version>7</extra_from_old_version>
  <orx:meta>
    <orx:audit>audit.csv</orx:audit>
    <orx:instanceID>{IID}</orx:instanceID>
    <orx:instanceName>小明-9</orx:instanceName>
  </orx:meta>
</data>""".encode()


def test_envelope_with_orx_namespaces() -> None:
    env, _ = parse_submission(HOUSEHOLD_SUBMISSION)
    assert env.form_id == "household"
    assert env.version == "2024061001"
    assert env.instance_id == IID
    assert env.instance_name == "小明-9"
    assert env.deprecated_id is None
    assert env.entity is None


def test_envelope_defaults_and_root_instance_id() -> None:
    env, _ = parse_submission(b'<x:data xmlns:x="urn:x" x:id="f1"><instanceID>uuid:1</instanceID>'
                              b"</x:data>")
    assert (env.form_id, env.version, env.instance_id) == ("f1", "", "uuid:1")


def test_deprecated_id_for_edits() -> None:
    env, _ = parse_submission(
        b'<data id="f" version="2"><meta><instanceID>uuid:new</instanceID>'
        b"<deprecatedID>uuid:old</deprecatedID></meta></data>")
    assert (env.instance_id, env.deprecated_id, env.version) == ("uuid:new", "uuid:old", "2")


def test_typed_values(household_schema: FormSchema) -> None:
    _, tree = parse_submission(HOUSEHOLD_SUBMISSION)
    data = extract(tree, household_schema)
    v = data.values
    assert v["child_name"] == "小明"
    assert v["age"] == 9 and isinstance(v["age"], int)
    assert v["weight"] == 27.5
    assert v["dob"] == "2015-03-02"
    assert v["home"] == {"type": "Point", "coordinates": [116.4074, 39.9042, 43.5],
                         "properties": {"accuracy": 4.8, "odk": "39.9042 116.4074 43.5 4.8"}}
    assert v["photo"] == "1718000000000.jpg"
    assert v["needs"] == ["food", "health"]
    assert v["in_school"] == "yes"
    assert v["grp/note_q"] == "likes drawing"
    assert v["meta/instanceID"] == IID
    assert v["extra_from_old_version"] == "7"  # unknown element kept as text
    assert "members" not in v and "members/mname" not in v


def test_repeat_rows_nested_with_parents_and_ordinals(household_schema: FormSchema) -> None:
    _, tree = parse_submission(HOUSEHOLD_SUBMISSION)
    rows = extract(tree, household_schema).repeat_rows
    summary = [(r.repeat, r.index, r.ordinal, r.parent_index) for r in rows]
    assert summary == [
        ("/data/members", 0, 1, None),
        ("/data/members/visits", 1, 1, 0),
        ("/data/members/visits", 2, 2, 0),
        ("/data/members", 3, 2, None),
        ("/data/members/visits", 4, 1, 3),
    ]
    assert rows[0].values == {"mname": "Grandma", "mage": 70}
    assert rows[1].values == {"vdate": "2024-06-01", "vaudio": "a1.m4a"}
    assert rows[2].values == {"vdate": "2024-06-08", "vaudio": None}  # empty kept as None
    assert rows[3].values["mage"] == "abc"  # not an int: raw text kept, never lost


def test_expected_attachments(household_schema: FormSchema) -> None:
    _, tree = parse_submission(HOUSEHOLD_SUBMISSION)
    files = extract(tree, household_schema).attachments
    # photo, repeat audio, audit; blank dropped; duplicate name listed once
    assert files == ("1718000000000.jpg", "a1.m4a", "audit.csv")


def test_values_that_do_not_parse_are_kept_raw(household_schema: FormSchema) -> None:
    xml = (b'<data id="household"><age>12.5</age><weight>heavy</weight><home>north</home>'
           b"<needs></needs><dob/><grp/></data>")
    _, tree = parse_submission(xml)
    v = extract(tree, household_schema).values
    assert v["age"] == "12.5"
    assert v["weight"] == "heavy"
    assert v["home"] == "north"
    assert v["needs"] is None and v["dob"] is None
    assert "grp" not in v  # an empty group adds no key


def test_geopoint_without_accuracy_and_boolean_and_shapes() -> None:
    from forms import typed_value
    assert typed_value("geopoint", "1.5 2.5") == {"type": "Point", "coordinates": [2.5, 1.5],
                                                  "properties": {"odk": "1.5 2.5"}}  # as submitted, for CSV
    assert typed_value("boolean", "true") is True
    assert typed_value("boolean", "0") is False
    assert typed_value("boolean", "maybe") == "maybe"
    assert typed_value("decimal", "nan") == "nan"
    assert typed_value("geotrace", "1 2 0 0;3 4 0 0") == \
        {"type": "LineString", "coordinates": [[2.0, 1.0, 0.0], [4.0, 3.0, 0.0]],
         "properties": {"odk": "1 2 0 0;3 4 0 0"}}  # the text as submitted, for CSV exports
    assert typed_value("geoshape", "1 2;3 4;1 2")["type"] == "Polygon"  # type: ignore[index]
    assert typed_value("string", "  spaced  ") == "  spaced  "


ENTITY_ID = "uuid:8A4B6C1D-2E3F-4a5b-8c7d-9e0f1a2b3c4d"


def test_entity_create_block_and_properties(create_schema: FormSchema) -> None:
    xml = f"""<data id="child_register" version="1">
      <child_name>Li Hua</child_name><age>8</age><village>  East </village>
      <meta><entity dataset="children" create="1" id="{ENTITY_ID}"><label>Li Hua</label>
      </entity><instanceID>uuid:a</instanceID></meta></data>""".encode()
    env, tree = parse_submission(xml)
    ent = env.entity
    assert ent is not None
    assert (ent.dataset, ent.create, ent.update) == ("children", True, False)
    assert ent.entity_id == ENTITY_ID
    assert ent.uuid == "8a4b6c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"
    assert ent.label == "Li Hua"
    assert (ent.base_version, ent.trunk_version, ent.branch_id) == (None, None, None)
    data = extract(tree, create_schema)
    assert data.entity_properties == {"age": "8", "village": "  East ", "label": "Li Hua"}


def test_entity_update_block(update_schema: FormSchema) -> None:
    xml = b"""<data id="child_followup" version="3"><child>8a4b6c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d</child>
      <age>9</age><meta><entity dataset="children" update="true" baseVersion="4"
      trunkVersion="3" branchId="b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
      id="8a4b6c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"><label>child 9</label></entity>
      <instanceID>uuid:b</instanceID></meta></data>"""
    env, tree = parse_submission(xml)
    ent = env.entity
    assert ent is not None
    assert (ent.create, ent.update) == (False, True)
    assert (ent.base_version, ent.trunk_version) == (4, 3)
    assert ent.branch_id == "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
    assert extract(tree, update_schema).entity_properties == {"age": "9", "label": "child 9"}


def test_entity_flags_and_bad_uuid() -> None:
    env, _ = parse_submission(b'<data id="f"><meta><entity dataset="d" create="0" update="yes" '
                              b'id="not-a-uuid" baseVersion=""/></meta></data>')
    ent = env.entity
    assert ent is not None
    assert (ent.create, ent.update, ent.uuid, ent.base_version, ent.label) == \
        (False, False, None, None, None)


def test_entity_block_in_repeat_is_not_the_envelope_entity() -> None:
    env, _ = parse_submission(b'<data id="f"><hh><meta><entity dataset="d" create="1" id="x"/>'
                              b"</meta></hh><meta><instanceID>uuid:1</instanceID></meta></data>")
    assert env.entity is None


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<data id="f"><name>&xxe;</name></data>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<data id="f"><name>&lol4;</name></data>"""


@pytest.mark.parametrize("payload", [XXE, LAUGHS, XXE.replace(b"<?xml version=\"1.0\"?>\n", b""),
                                     XXE.decode().encode("utf-16")])
def test_doctype_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(SubmissionXMLError) as info:
        parse_submission(payload)
    assert info.value.code == "doctype"
    assert "passwd" not in info.value.message


def test_oversize_is_refused() -> None:
    big = b'<data id="f"><n>' + b"x" * 2000 + b"</n></data>"
    with pytest.raises(SubmissionXMLError) as info:
        parse_submission(big, max_bytes=1000)
    assert info.value.code == "too_large"
    parse_submission(big, max_bytes=len(big))  # exactly at the limit is fine


@pytest.mark.parametrize("payload", [
    b"<test",
    b'<data id="f"><name>cut off',            # missing closing root tag (Central recovers)
    b'<data id="f"><a></b></data>',
    b"",
    b"\xff\xfe\x00garbage",
])
def test_malformed_is_refused(payload: bytes) -> None:
    with pytest.raises(SubmissionXMLError) as info:
        parse_submission(payload)
    assert info.value.code == "malformed"
    assert "again" in info.value.message


@pytest.mark.parametrize("payload", [b"<data><a/></data>", b'<data id="  "/>'])
def test_missing_form_id(payload: bytes) -> None:
    with pytest.raises(SubmissionXMLError) as info:
        parse_submission(payload)
    assert info.value.code == "no_form_id"


def test_submission_root_name_differs_from_schema(create_schema: FormSchema) -> None:
    _, tree = parse_submission(b'<child_register id="child_register"><age>5</age></child_register>')
    assert extract(tree, create_schema).values == {"age": 5}
