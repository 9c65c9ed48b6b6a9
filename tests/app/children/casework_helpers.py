"""A registration form shaped like the shipped one (name and ID number only in the submission)."""
from __future__ import annotations

import csv
import io
from typing import Any

from tests.app.conftest import PASSWORD, submission_body
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient

REG_MD = """
| settings |
| | form_id | version |
| | child_registration | 1 |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive |
| | begin_group | grp | Child | | |
| | text | child_name | Name | | yes |
| | text | id_number | ID number | | yes |
| | date | birth_date | Birth date | birth_date | |
| | end_group | grp | | | |
| | text | village | Village code | village | |
| | text | status | Status | status | |
| | date | due | Next follow-up | next_followup_due | |
| | image | photo | Photo | | yes |

| entities |
| | list_name | label |
| | children | ${child_name} |
"""

FOLLOW_MD = """
| settings |
| | form_id | version |
| | referral_followup | 1 |

| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | text | status | Status | status |
| | text | close_reason | Reason | |
| | text | due | Next follow-up | next_followup_due |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""


def reg_xml(instance: str, uid: str, name: str, birth: str, village: str, id_number: str = "",
            photo: str = "") -> bytes:
    return (f'<data id="child_registration" version="1"><grp><child_name>{name}</child_name>'
            f"<id_number>{id_number}</id_number><birth_date>{birth}</birth_date></grp>"
            f"<village>{village}</village><status>registered</status><due>2999-01-01</due>"
            f"<photo>{photo}</photo><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{uid}" create="1"><label>{name[:1]}*</label></entity>'
            "</meta></data>").encode()


def follow_xml(instance: str, uid: str, base: int, status: str, close_reason: str = "", due: str = "") -> bytes:
    return (f'<data id="referral_followup" version="1"><child>{uid}</child><status>{status}</status>'
            f"<close_reason>{close_reason}</close_reason><due>{due}</due><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{uid}" update="1" baseVersion="{base}" trunkVersion="" branchId="">'
            "<label/></entity></meta></data>").encode()


def post(phone: DigestClient, xml: bytes, files: dict[str, bytes] | None = None) -> Any:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml, files),
                      content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    return resp


def phone_csv(phone: DigestClient) -> list[dict[str, str]]:
    resp = phone.get("/v1/projects/1/forms/referral_followup/attachments/children.csv", openrosa=False)
    assert resp.status_code == 200, resp.data
    return list(csv.DictReader(io.StringIO(resp.data.decode())))


def phone(app: Any, name: str) -> DigestClient:
    return DigestClient(app.test_client(), name, PASSWORD)


Api = ApiClient  # the JSON API as one signed-in user


