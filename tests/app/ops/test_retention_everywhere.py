"""Retention removes the child's identity everywhere (issue 19: the registration's child_label and
meta/entity/label and the visit's child_label survived in stored XML and values; a finished export still
downloaded the child's name and ID number).

After `carefile retention run`, every column of every table (read generically from the models' metadata,
so a new table or column is searched without anyone adding it here) and every stored file are searched
for each identifying value of the anonymised child: name, ID number, label (as the form builds it),
guardian, guardian's phone, photo and signature — while an open child's values are all still there.
"""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Base, Entity, ExportJob
from app.services.exports import jobs
from tests.app.children.casework_helpers import Api, phone, post
from tests.support.cli import cli_runner

REG_MD = """
| settings |
| | form_id | version | instance_name |
| | child_registration | 1 | concat('建档-', ${child_name}) |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive | calculation | appearance |
| | text | child_name | Name | | yes | | |
| | text | id_number | ID number | | yes | | |
| | text | guardian_name | Guardian | | yes | | |
| | text | guardian_phone | Guardian's phone | | yes | | |
| | date | birth_date | Birth date | birth_date | | | |
| | text | village | Village code | village | | | |
| | text | status | Status | status | | | |
| | image | photo | Photo | | yes | | |
| | image | signature | Guardian's signature | | | | signature |
| | calculate | child_label | | | | concat(substr(${child_name}, 0, 1), '*（', ${birth_date}, '）') | |

| entities |
| | list_name | label |
| | children | ${child_label} |
"""

VISIT_MD = """
| settings |
| | form_id | version |
| | visit_record | 1 |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive | calculation |
| | select_one_from_file children.csv | child | Child | | | |
| | calculate | child_label | | | | instance('children')/root/item[name=${child}]/label |
| | text | observation | What you saw | | yes | |
| | text | status | Status | status | | |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""

VILLAGE = "540102002001"


class Child:
    def __init__(self, tag: str, name: str, id_number: str, guardian: str, phone_no: str, birth: str) -> None:
        self.uid, self.tag, self.name, self.id_number = str(uuid.uuid4()), tag, name, id_number
        self.guardian, self.phone, self.birth = guardian, phone_no, birth
        self.label = f"{name[0]}*（{birth}）"
        self.photo = b"\xff\xd8\xff\xe0 face of " + tag.encode() + b"x" * 64
        self.signature = b"\x89PNG signature of " + tag.encode() + b"y" * 64

    def values(self) -> list[bytes]:
        return [v.encode() for v in (self.name, self.id_number, self.guardian, self.phone, self.label)]

    def registration(self) -> bytes:
        return (f'<data id="child_registration" version="1"><child_name>{self.name}</child_name>'
                f"<id_number>{self.id_number}</id_number><guardian_name>{self.guardian}</guardian_name>"
                f"<guardian_phone>{self.phone}</guardian_phone><birth_date>{self.birth}</birth_date>"
                f"<village>{VILLAGE}</village><status>registered</status><photo>p.jpg</photo>"
                f"<signature>s.png</signature><child_label>{self.label}</child_label><meta>"
                f"<instanceID>uuid:reg-{self.tag}</instanceID><instanceName>建档-{self.name}</instanceName>"
                f'<entity dataset="children" id="{self.uid}" create="1"><label>{self.label}</label></entity>'
                "</meta></data>").encode()

    def visit(self) -> bytes:
        return (f'<data id="visit_record" version="1"><child>{self.uid}</child><child_label>{self.label}'
                f"</child_label><observation>{self.name} cries at night; {self.guardian} calls {self.phone}"
                f"</observation><status>watch</status><meta><instanceID>uuid:visit-{self.tag}</instanceID>"
                f'<entity dataset="children" id="{self.uid}" update="1" baseVersion="1" trunkVersion="" '
                f'branchId=""><label>{self.label}</label></entity></meta></data>').encode()


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "EXPORT_WORKER": "false"}


def _text(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).encode()
    return str(value).encode()


def everything_stored(rt: Any, blob_dir: Path) -> list[tuple[str, bytes]]:
    """Every value of every column of every table, and every stored file, as bytes with where it lies."""
    found = []
    with rt.db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(table.select()).mappings():
                for column, value in row.items():
                    found.append((f"{table.name}.{column}", _text(value)))
    for path in sorted(blob_dir.rglob("*")):
        if path.is_file():
            found.append((f"blob {path.name}", path.read_bytes()))
    return found


def test_retention_leaves_no_identifying_value_anywhere(app: Any, rt: Any, publish: Any, make_user: Any,
                                                         app_config: dict[str, Any], monkeypatch: Any,
                                                         capsys: Any) -> None:
    publish(REG_MD, "reg.md")
    publish(VISIT_MD, "visit.md")
    make_user("dolma", "collector", ["540102"])
    make_user("boss", "admin")
    gone = Child("gone", "扎西多吉", "540102201001010011", "次仁卓玛", "13900000077", "2004-05-06")
    kept = Child("kept", "达瓦央金", "540102201502020022", "普布次旦", "13900000088", "2015-02-02")
    collector = phone(app, "dolma")
    for child in (gone, kept):
        post(collector, child.registration(), {"p.jpg": child.photo, "s.png": child.signature})
        post(collector, child.visit())
    admin = Api(app, "boss")
    job = admin.post("/v1/projects/1/exports", {"form": "child_registration", "format": "csvzip",
                                                "sensitive": True})
    assert job.status_code in (201, 202), job.get_data(as_text=True)
    jobs.run_pending(rt.db, rt.store)
    export_url = f"/v1/projects/1/exports/{job.get_json()['id']}/file"
    assert admin.get(export_url).status_code == 200
    assert admin.post(f"/v1/projects/1/children/{gone.uid}/close", {"reason": "other", "note": "moved away"}
                      ).status_code == 200
    with rt.db.write() as s:
        s.scalars(select(Entity).where(Entity.uuid == gone.uid)).one().closed_at = datetime(2010, 1, 1, tzinfo=UTC)
    blob_dir = Path(app_config["STORAGE_URL"])
    before = everything_stored(rt, blob_dir)
    for child in (gone, kept):  # not vacuous: every value is stored somewhere before the run
        for value in child.values() + [child.photo, child.signature]:
            assert any(value in data for _, data in before), (child.tag, value)

    code, out, _ = cli_runner(app_config, monkeypatch, capsys)("retention", "run", "--years", "10")
    assert code == 0 and "Anonymised 1 child file(s)" in out and "1 finished export(s) deleted" in out, out

    after = everything_stored(rt, blob_dir)
    left = [(where, value.decode(errors="replace")[:24]) for value in gone.values() + [gone.photo, gone.signature]
            for where, data in after if value in data]
    assert not left, f"identifying values left after retention: {left}"
    for value in kept.values() + [kept.photo, kept.signature]:  # the open file is untouched
        assert any(value in data for _, data in after), value
    # The export made before the run is gone; the phones' list and the child's file say nothing of the child.
    expired = admin.get(export_url)
    assert expired.status_code == 410 and expired.get_json()["code"] == 410.77
    with rt.db.session() as s:
        assert s.scalars(select(ExportJob.status)).all() == ["expired"]
    csv = admin.get("/v1/projects/1/forms/visit_record/attachments/children.csv").get_data()
    assert all(v not in csv for v in gone.values()) and kept.label.encode() in csv
    file = admin.get(f"/v1/projects/1/children/{gone.uid}").get_data()
    assert all(v not in file for v in gone.values())


def test_finished_exports_expire_after_the_kept_days(app: Any, rt: Any, publish: Any, make_user: Any) -> None:
    publish(REG_MD, "reg.md")
    make_user("boss", "admin")
    admin = Api(app, "boss")
    made = admin.post("/v1/projects/1/exports", {"form": "child_registration", "format": "csvzip"})
    assert made.status_code in (201, 202)
    jobs.run_pending(rt.db, rt.store)
    url = f"/v1/projects/1/exports/{made.get_json()['id']}/file"
    assert admin.get(url).status_code == 200
    with rt.db.session() as s:
        key = s.scalars(select(ExportJob.blob_key)).one()
    assert key and rt.store.exists(key)
    assert jobs.expire_old(rt.db, rt.store, keep_days=7) == 0  # made today: kept
    assert admin.get(url).status_code == 200
    with rt.db.write() as s:
        s.scalars(select(ExportJob)).one().finished_at = datetime(2020, 1, 1, tzinfo=UTC)
    assert jobs.expire_old(rt.db, rt.store, keep_days=7) == 1
    assert not rt.store.exists(key)
    resp = admin.get(url)
    assert resp.status_code == 410 and "Start a new export" in resp.get_json()["message"]
    status = admin.get(f"/v1/projects/1/exports/{made.get_json()['id']}").get_json()
    assert status["status"] == "expired"
