"""Small XLSForms (markdown) used by the tests, and submissions for them."""
from __future__ import annotations

HOUSEHOLD_MD = """
| settings |
| | form_id | version | form_title |
| | household | {version} | Household visit |

| survey |
| | type | name | label | required | relevant |
| | text | child_name | Child's name | yes | |
| | integer | age | Age | | |
| | select_one region_village | village | Village | | |
| | select_multiple needs | needs | Needs | | |
| | geopoint | location | Location | | |
| | image | photo | Photo | | |
| | begin repeat | members | Household members | | |
| | text | member_role | Role | | |
| | integer | member_age | Age | | |
| | end repeat | | | | |
{extra}
| choices |
| | list_name | name | label |
| | region_village | 540102002201 | Village A |
| | region_village | 540102002202 | Village B |
| | needs | food | Food |
| | needs | school | School |
| | needs | health | Health |
"""


def household_md(version: str = "1", extra: str = "") -> str:
    return HOUSEHOLD_MD.format(version=version, extra=extra)


def household_xml(instance_id: str = "uuid:00000000-0000-4000-8000-000000000001", *, version: str = "1",
                  name: str = "Tashi", age: str = "9", village: str = "540102002201",
                  photo: str = "photo.jpg", members: list[tuple[str, str]] | None = None,
                  deprecated_id: str | None = None, form_id: str = "household") -> bytes:
    members = members if members is not None else [("mother", "34"), ("grandfather", "70")]
    reps = "".join(f"<members><member_role>{r}</member_role><member_age>{a}</member_age></members>"
                   for r, a in members)
    dep = f"<deprecatedID>{deprecated_id}</deprecatedID>" if deprecated_id else ""
    return (f'<?xml version="1.0"?><data xmlns:jr="http://openrosa.org/javarosa" '
            f'xmlns:orx="http://openrosa.org/xforms" id="{form_id}" version="{version}">'
            f"<child_name>{name}</child_name><age>{age}</age><village>{village}</village>"
            f"<needs>food health</needs><location>29.65 91.13 3650 5</location><photo>{photo}</photo>"
            f"{reps}<meta><instanceID>{instance_id}</instanceID>{dep}</meta></data>").encode()


BROKEN_MD = """
| survey |
| | type | name | label |
| | text | a | A |
| | integr | b | B |
"""
