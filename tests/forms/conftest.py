"""Shared XLSForms (markdown tables) and helpers for tests of the forms library."""

from __future__ import annotations

import io
import shutil

import openpyxl
import pytest

from forms import FormSchema, compile_xlsform, parse_xform

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java not installed")

HOUSEHOLD_MD = """
| survey |
| | type | name | label::English (en) | label::中文 (zh) | required | relevant | bind::carefile:sensitive |
| | text | child_name | Child's name | 儿童姓名 | yes | | yes |
| | integer | age | Age | 年龄 | | | |
| | decimal | weight | Weight | 体重 | | | |
| | date | dob | Birth date | 出生日期 | | | |
| | geopoint | home | Home | 家 | | | |
| | image | photo | Photo | 照片 | | | yes |
| | select_multiple needs | needs | Needs | 需求 | | | |
| | select_one yn | in_school | In school? | 在校? | | | |
| | acknowledge | ok | OK? | 好? | | | |
| | begin group | grp | Group | 组 | | | |
| | text | note_q | Notes | 备注 | | ${age} > 5 | |
| | end group | | | | | | |
| | begin repeat | members | Members | 成员 | | | |
| | text | mname | Member name | 成员姓名 | | | |
| | integer | mage | Member age | 成员年龄 | | | |
| | begin repeat | visits | Visits | 探访 | | | |
| | date | vdate | Visit date | 探访日期 | | | |
| | audio | vaudio | Recording | 录音 | | | |
| | end repeat | | | | | | |
| | end repeat | | | | | | |
| | audit | audit | | | | | |
| choices |
| | list_name | name | label::English (en) | label::中文 (zh) |
| | needs | food | Food | 食物 |
| | needs | school | School | 学校 |
| | needs | health | Health | 健康 |
| | yn | yes | Yes | 是 |
| | yn | no | No | 否 |
| settings |
| | form_title | form_id | version | default_language | instance_name |
| | Household visit | household | 2024061001 | 中文 (zh) | concat(${child_name}, '-', ${age}) |
"""

ENTITY_CREATE_MD = """
| survey |
| | type | name | label | save_to |
| | text | child_name | Name | |
| | integer | age | Age | age |
| | text | village | Village | village |
| entities |
| | list_name | label |
| | children | ${child_name} |
| settings |
| | form_id | version |
| | child_register | 1 |
"""

ENTITY_UPDATE_MD = """
| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | integer | age | Age now | age |
| entities |
| | list_name | entity_id | label |
| | children | ${child} | concat('child ', ${age}) |
| settings |
| | form_id | version |
| | child_followup | 3 |
"""


def compile_md(md: str, filename: str = "form.md", **kwargs: object) -> bytes:
    """Compile a markdown XLSForm without ODK Validate; return the XForm bytes."""
    return compile_xlsform(md.encode("utf-8"), filename, validate=False, **kwargs).xform  # type: ignore[arg-type]


def schema_of(md: str) -> FormSchema:
    """Compile and parse a markdown XLSForm."""
    return parse_xform(compile_md(md))


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    """Build an .xlsx workbook in memory, one list of rows per sheet."""
    wb = openpyxl.Workbook()
    default = wb.active
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    if default is not None:
        wb.remove(default)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def household_schema() -> FormSchema:
    return schema_of(HOUSEHOLD_MD)


@pytest.fixture(scope="session")
def create_schema() -> FormSchema:
    return schema_of(ENTITY_CREATE_MD)


@pytest.fixture(scope="session")
def update_schema() -> FormSchema:
    return schema_of(ENTITY_UPDATE_MD)
