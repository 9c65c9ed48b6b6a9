"""Exports: CSV zip (Central/Briefcase layout), XLSX, JSON, jobs, masking, filters, child ZIP."""
from __future__ import annotations

import csv
import io
import json
import os
import queue
import threading
import time
import tracemalloc
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select, update

from app.services.exports import parallel
from tests.app.conftest import PASSWORD, submission_body
from tests.app.web_helpers import Browser
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient

CARE_MD = """
| settings |
| | form_id | version | form_title | default_language |
| | care | {version} | Care visit | 中文 (zh) |

| survey |
| | type | name | label::中文 (zh) | label::English (en) | bind::carefile:sensitive |
| | begin group | grp | 基本信息 | Basics | |
| | text | child_name | 儿童姓名 | Child's name | yes |
| | select_one vil | village | 村 | Village | |
| | end group | | | | |
| | integer | age | 年龄 | Age | |
| | select_multiple needs | needs | 需求 | Needs | |
| | text | note | 备注 | Note | |
| | geopoint | location | 位置 | Location | |
| | image | photo | 照片 | Photo | |
| | begin repeat | members | 家庭成员 | Members | |
| | text | role | 关系 | Role | |
| | begin repeat | kids | 子女 | Children | |
| | text | kid_name | 子女姓名 | Kid's name | |
| | end repeat | | | | |
| | end repeat | | | | |

| choices |
| | list_name | name | label::中文 (zh) | label::English (en) |
| | vil | 540102002201 | 甲村 | Village A |
| | vil | 540121100201 | 乙村 | Village B |
| | needs | food | 食物 | Food |
| | needs | school | 上学 | School |
| | needs | health | 健康 | Health |
"""
VILLAGE_A, VILLAGE_B = "540102002201", "540121100201"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def care_xml(iid: str, *, name: str = "卓玛", village: str = VILLAGE_A, note: str = "=HYPERLINK(1)",
             needs: str = "food health", members: list[tuple[str, list[str]]] | None = None,
             photo: str = "p1.jpg") -> bytes:
    members = members if members is not None else [("母亲", ["次仁", "-2+3"]), ("舅舅", [])]
    reps = "".join(f"<members><role>{r}</role>" + "".join(f"<kids><kid_name>{k}</kid_name></kids>" for k in kids)
                   + "</members>" for r, kids in members)
    return (f'<data id="care" version="1"><grp><child_name>{name}</child_name><village>{village}</village></grp>'
            f"<age>9</age><needs>{needs}</needs><note>{note}</note><location>29.65 91.13 3650 5</location>"
            f"<photo>{photo}</photo>{reps}<meta><instanceID>{iid}</instanceID></meta></data>").encode()


@pytest.fixture
def care(publish: Any) -> Any:
    return publish(CARE_MD.format(version="1"), "care.md")


@pytest.fixture
def phone(app: Any, make_user: Any, care: Any) -> DigestClient:
    make_user("dolma", "collector", ["54"])
    return DigestClient(app.test_client(), "dolma", PASSWORD)


def send(phone: DigestClient, xml: bytes, files: dict[str, bytes] | None = None) -> None:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml, files), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data


def arriving(app: Any, rt: Any, make_user: Any, publish: Any, iids: list[str], days: list[int]) -> list[str]:
    """Records sent by a collector of the province, alternately from two counties, record i received on day
    days[i] of March 2026 (as records arrive); every third without a repeat."""
    from app.models import Submission

    publish(CARE_MD.format(version="1"), "care.md")
    make_user("dolma", "collector", ["54"])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    for i, iid in enumerate(iids):
        send(phone, care_xml(iid, village=VILLAGE_A if i % 2 else VILLAGE_B,
                             members=[("母亲", [f"kid{i}"])] if i % 3 else []))
        with rt.db.write() as s:
            s.execute(update(Submission).where(Submission.instance_id == iid).values(
                created_at=datetime(2026, 3, days[i], 12, tzinfo=UTC)))
    return iids


@pytest.fixture
def two(phone: DigestClient) -> None:
    send(phone, care_xml("uuid:a1"), {"p1.jpg": PHOTO})
    send(phone, care_xml("uuid:b2", name="Pasang", village=VILLAGE_B, needs="school", members=[], photo=""))


Api = ApiClient


def tables(data: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        out = {}
        for n in zf.namelist():
            if n.endswith(".csv"):
                raw = zf.read(n)
                assert raw.startswith(b"\xef\xbb\xbf"), n  # BOM: Excel shows Chinese
                out[n] = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        return out


def direct(api: Api, query: str = "") -> dict[str, list[list[str]]]:
    resp = api.get(f"/v1/projects/1/forms/care/submissions.csv.zip{query}")
    assert resp.status_code == 200, resp.data
    assert resp.content_type == "application/zip"
    return tables(resp.data)


def col(table: list[list[str]], header: str) -> list[str]:
    i = table[0].index(header)
    return [r[i] for r in table[1:]]


def test_csv_zip_layout_keys_and_neutralised_cells(app: Any, make_user: Any, two: None) -> None:
    make_user("coord", "coordinator", ["54"])
    t = direct(Api(app, "coord"))
    assert sorted(t) == ["care-kids.csv", "care-members.csv", "care.csv"]
    main, members, kids = t["care.csv"], t["care-members.csv"], t["care-kids.csv"]
    assert main[0][:9] == ["SubmissionDate", "grp-child_name", "grp-village", "age", "needs", "note",
                           "location-Latitude", "location-Longitude", "location-Altitude"]
    assert main[0][-11:] == ["KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected",
                             "Status", "ReviewState", "DeviceID", "Edits", "FormVersion", "RegionCode"]
    assert col(main, "KEY") == ["uuid:b2", "uuid:a1"]  # newest first, as Central
    assert col(main, "needs") == ["school", "food health"]
    assert col(main, "note") == ["'=HYPERLINK(1)"] * 2  # formula neutralised
    assert col(main, "location-Latitude")[1] == "29.65" and col(main, "location-Accuracy")[1] == "5"
    assert col(main, "SubmitterName") == ["dolma", "dolma"] and col(main, "AttachmentsPresent") == ["0", "1"]
    assert members[0] == ["role", "PARENT_KEY", "KEY"]
    assert members[1:] == [["母亲", "uuid:a1", "uuid:a1/members[1]"], ["舅舅", "uuid:a1", "uuid:a1/members[2]"]]
    assert kids[0] == ["kid_name", "PARENT_KEY", "KEY"]
    assert kids[1:] == [["次仁", "uuid:a1/members[1]", "uuid:a1/members[1]/kids[1]"],
                        ["'-2+3", "uuid:a1/members[1]", "uuid:a1/members[1]/kids[2]"]]
    assert col(main, "grp-child_name") == ["***", "***"]  # sensitive: masked by default


def test_labels_in_both_languages_split_select_and_group_paths(app: Any, make_user: Any, two: None) -> None:
    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    zh = direct(api, "?labels=zh&splitSelectMultiples=true")["care.csv"]
    assert zh[0][1:3] == ["基本信息 - 儿童姓名", "基本信息 - 村"]
    assert col(zh, "基本信息 - 村") == ["乙村", "甲村"]
    assert col(zh, "需求") == ["上学", "食物, 健康"]
    assert col(zh, "需求/食物") == ["0", "1"] and col(zh, "需求/上学") == ["1", "0"]
    assert col(zh, "需求/健康") == ["0", "1"]
    assert "位置-纬度" in zh[0]
    en = direct(api, "?labels=en&groupPaths=false")
    assert en["care.csv"][0][1:4] == ["Child's name", "Village", "Age"]
    assert col(en["care.csv"], "Village") == ["Village B", "Village A"]
    assert en["care-kids.csv"][0] == ["Kid's name", "PARENT_KEY", "KEY"]
    codes = direct(api, "?groupPaths=false&splitSelectMultiples=true")["care.csv"]
    assert codes[0][1:5] == ["child_name", "village", "age", "needs"] and "needs/school" in codes[0]


def test_sensitive_fields_only_for_allowed_roles_who_ask(app: Any, make_user: Any, two: None) -> None:
    make_user("admin1", "admin")
    make_user("mgr", "manager", ["54"])
    admin = Api(app, "admin1")
    assert col(direct(admin)["care.csv"], "grp-child_name") == ["***", "***"]
    assert col(direct(admin, "?sensitive=true")["care.csv"], "grp-child_name") == ["Pasang", "卓玛"]
    mgr = Api(app, "mgr")
    assert col(direct(mgr)["care.csv"], "grp-child_name") == ["***", "***"]
    resp = mgr.get("/v1/projects/1/forms/care/submissions.csv.zip?sensitive=true")
    assert resp.status_code == 403
    assert mgr.post("/v1/projects/1/exports", {"form": "care", "sensitive": True}).status_code == 403


def test_filters_region_dates_review_state_version(app: Any, rt: Any, make_user: Any, two: None) -> None:
    from app.models import Submission

    with rt.db.write() as s:
        s.execute(update(Submission).where(Submission.instance_id == "uuid:a1").values(
            review_state="approved", created_at=datetime(2026, 1, 10, 12, tzinfo=UTC)))
        s.execute(update(Submission).where(Submission.instance_id == "uuid:b2").values(
            created_at=datetime(2026, 2, 10, 12, tzinfo=UTC)))
    make_user("admin1", "admin")
    api = Api(app, "admin1")

    def keys(q: str) -> list[str]:
        return col(direct(api, q)["care.csv"], "KEY")

    assert keys("?region=540121") == ["uuid:b2"]
    assert keys("?review_states=approved") == ["uuid:a1"]
    assert keys("?review_states=approved,received") == ["uuid:b2", "uuid:a1"]
    assert keys("?date_from=2026-02-01") == ["uuid:b2"]
    assert keys("?date_to=2026-01-10") == ["uuid:a1"]
    assert keys("?date_from=2026-01-11&date_to=2026-02-09") == []
    assert keys("?form_version=1") == ["uuid:b2", "uuid:a1"]
    assert api.get("/v1/projects/1/forms/care/submissions.csv.zip?form_version=9").status_code == 404
    assert api.get("/v1/projects/1/forms/care/submissions.csv.zip?region=54x").status_code == 400
    assert api.get("/v1/projects/1/forms/care/submissions.csv.zip?review_states=nope").status_code == 400


def test_manager_of_another_region_sees_no_rows(app: Any, make_user: Any, two: None) -> None:
    make_user("far", "manager", ["5425"])
    make_user("mgr_b", "manager", ["540121"])
    far = direct(Api(app, "far"))
    assert len(far["care.csv"]) == 1 and len(far["care-members.csv"]) == 1 and len(far["care-kids.csv"]) == 1
    assert col(direct(Api(app, "mgr_b"))["care.csv"], "KEY") == ["uuid:b2"]


def run_jobs(rt: Any) -> int:
    from app.services.exports import jobs

    return jobs.run_pending(rt.db, rt.store, "test-worker")


def job_file(api: Api, rt: Any, body: dict[str, Any]) -> bytes:
    resp = api.post("/v1/projects/1/exports", body)
    assert resp.status_code == 202, resp.data
    jid = resp.get_json()["id"]
    assert run_jobs(rt) == 1
    status = api.get(f"/v1/projects/1/exports/{jid}").get_json()
    assert status["status"] == "done", status
    resp = api.get(f"/v1/projects/1/exports/{jid}/file")
    assert resp.status_code == 200
    return bytes(resp.data)


def test_xlsx_one_sheet_per_table(app: Any, rt: Any, make_user: Any, two: None) -> None:
    make_user("coord", "coordinator", ["54"])
    data = job_file(Api(app, "coord"), rt, {"form": "care", "format": "xlsx", "labels": "zh"})
    wb = load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["care", "care-members", "care-kids"]
    main = [list(r) for r in wb["care"].iter_rows(values_only=True)]
    assert main[0][0] == "SubmissionDate" and main[0][1] == "基本信息 - 儿童姓名"
    assert [r[main[0].index("年龄")] for r in main[1:]] == [9, 9]  # numbers stay numbers
    assert [r[main[0].index("备注")] for r in main[1:]] == ["'=HYPERLINK(1)"] * 2
    kids = [list(r) for r in wb["care-kids"].iter_rows(values_only=True)]
    assert kids[1][1:] == ["uuid:a1/members[1]", "uuid:a1/members[1]/kids[1]"]
    wb.close()


def test_json_nests_repeats(app: Any, rt: Any, make_user: Any, two: None) -> None:
    make_user("admin1", "admin")
    data = job_file(Api(app, "admin1"), rt, {"form": "care", "format": "json", "labels": "en"})
    doc = json.loads(data)
    assert doc["form"] == "care" and len(doc["submissions"]) == 2
    a = doc["submissions"][0]
    assert a["__id"] == "uuid:a1" and a["__system"]["reviewState"] == "received"
    assert a["Basics - Child's name"] == "***" and a["Needs"] == ["Food", "Health"] and a["Age"] == 9
    assert [m["Role"] for m in a["members"]] == ["母亲", "舅舅"]
    assert [k["Kid's name"] for k in a["members"][0]["kids"]] == ["次仁", "-2+3"]
    assert a["members"][0]["kids"][1]["__id"] == "uuid:a1/members[1]/kids[2]"


def test_csv_zip_job_with_media(app: Any, rt: Any, make_user: Any, two: None) -> None:
    make_user("coord", "coordinator", ["54"])
    data = job_file(Api(app, "coord"), rt, {"form": "care", "format": "csvzip", "media": True})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "media/p1.jpg" in zf.namelist() and zf.read("media/p1.jpg") == PHOTO
    # Central's URL streams the media too, by default (centralpy pullcsv, ruODK); ?attachments=false leaves them out
    direct_zip = Api(app, "coord").get("/v1/projects/1/forms/care/submissions.csv.zip")
    with zipfile.ZipFile(io.BytesIO(direct_zip.data)) as zf:
        assert zf.read("media/p1.jpg") == PHOTO
        assert zf.getinfo("media/p1.jpg").flag_bits & 0x08  # streamed: sizes in a data descriptor
    bare = Api(app, "coord").get("/v1/projects/1/forms/care/submissions.csv.zip?attachments=false")
    with zipfile.ZipFile(io.BytesIO(bare.data)) as zf:
        assert not [n for n in zf.namelist() if n.startswith("media/")]


def test_job_progress_and_ranged_download(app: Any, rt: Any, make_user: Any, two: None) -> None:
    from app.services import audit

    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    resp = api.post("/v1/projects/1/exports", {"form": "care", "format": "csvzip", "labels": "zh"})
    assert resp.status_code == 202 and resp.headers["Location"].endswith(f"/exports/{resp.get_json()['id']}")
    jid = resp.get_json()["id"]
    assert api.get(f"/v1/projects/1/exports/{jid}").get_json()["status"] == "queued"
    assert api.get(f"/v1/projects/1/exports/{jid}/file").status_code == 409
    run_jobs(rt)
    status = api.get(f"/v1/projects/1/exports/{jid}").get_json()
    assert (status["status"], status["progress"], status["total"], status["percent"]) == ("done", 2, 2, 100)
    url = f"/v1/projects/1/exports/{jid}/file"
    full = api.get(url)
    assert full.status_code == 200 and full.headers["Accept-Ranges"] == "bytes"
    etag, size = full.headers["ETag"], len(full.data)
    assert size == status["size"] and size > 200
    first = api.get(url, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and len(first.data) == 100
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    rest = api.get(url, headers={"Range": "bytes=100-", "If-Range": etag})
    assert rest.status_code == 206 and first.data + rest.data == full.data
    changed = api.get(url, headers={"Range": "bytes=100-", "If-Range": '"0123"'})
    assert changed.status_code == 200 and changed.data == full.data
    assert api.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
    assert tables(full.data)["care.csv"][1][2] == "甲村"
    other = make_user("coord2", "coordinator", ["54"])
    assert other and Api(app, "coord2").get(url).status_code == 404  # a job belongs to its creator
    with rt.db.session() as s:
        assert audit.count(s, "export.create") == 1
        # full, first part, the If-Range mismatch (a new whole download) — not the resumed part
        assert audit.count(s, "export.download") == 3


def test_dead_worker_job_is_requeued(app: Any, rt: Any, make_user: Any, two: None) -> None:
    from app.models import ExportJob
    from app.services.exports import jobs

    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    jid = api.post("/v1/projects/1/exports", {"form": "care"}).get_json()["id"]
    assert jobs.claim(rt.db, "999@gone") == jid
    assert jobs.claim(rt.db, "other") is None  # claimed atomically: nobody else gets it
    assert jobs.requeue_stale(rt.db) == 0  # fresh heartbeat: still its worker's
    with rt.db.write() as s:
        s.execute(update(ExportJob).where(ExportJob.id == jid).values(
            heartbeat_at=datetime.now(UTC) - timedelta(seconds=jobs.STALE_SECONDS + 5)))
    assert run_jobs(rt) == 1  # re-queued, then run by a live worker
    assert api.get(f"/v1/projects/1/exports/{jid}").get_json()["status"] == "done"
    # The dead worker coming back finds it no longer owns the job.
    assert jobs.run_job(rt.db, rt.store, jid, "999@gone", heartbeat=60) == "lost"
    with rt.db.session() as s:
        job = s.get(ExportJob, jid)
        assert job is not None and job.status == "done" and job.worker == "test-worker"


def test_job_that_keeps_killing_its_worker_fails(app: Any, rt: Any, make_user: Any, two: None) -> None:
    from app.models import ExportJob
    from app.services.exports import jobs

    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    jid = api.post("/v1/projects/1/exports", {"form": "care"}).get_json()["id"]
    for attempt in range(jobs.MAX_ATTEMPTS):
        assert jobs.claim(rt.db, f"{attempt}@dies") == jid
        with rt.db.write() as s:
            s.execute(update(ExportJob).where(ExportJob.id == jid).values(
                heartbeat_at=datetime.now(UTC) - timedelta(seconds=jobs.STALE_SECONDS + 5)))
        jobs.requeue_stale(rt.db)
    body = api.get(f"/v1/projects/1/exports/{jid}").get_json()
    assert body["status"] == "failed" and "smaller" in body["error"]


def test_worker_thread_runs_queued_jobs(app: Any, rt: Any, make_user: Any, two: None) -> None:
    from app.services.exports import jobs

    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    worker = jobs.Worker(rt.db, rt.store, poll=0.05).start()
    try:
        jid = api.post("/v1/projects/1/exports", {"form": "care", "format": "json"}).get_json()["id"]
        worker.wake()
        deadline = time.monotonic() + 20
        while api.get(f"/v1/projects/1/exports/{jid}").get_json()["status"] != "done":
            assert time.monotonic() < deadline, "export job did not finish"
            time.sleep(0.05)
    finally:
        worker.stop()
    assert not worker.thread.is_alive() and threading.active_count() >= 1


def test_web_page_start_progress_download(app: Any, rt: Any, make_user: Any, two: None) -> None:
    make_user("mgr", "manager", ["540102"])
    b = Browser(app)
    b.login("mgr")
    page = b.get("/exports")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "care" in html and 'name="sensitive"' not in html  # managers are not offered sensitive fields
    resp = b.post("/exports", {"form": "care", "format": "xlsx", "labels": "zh", "group_paths": "1"})
    assert resp.status_code == 302
    job_url = resp.headers["Location"]
    job_page = b.get(job_url).get_data(as_text=True)
    assert "<progress" in job_page and "/status" in job_page
    run_jobs(rt)
    status = b.get(job_url + "/status").get_json()
    assert status["status"] == "done" and status["download"].endswith("/download")
    part = b.get(status["download"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    whole = b.get(status["download"])
    wb = load_workbook(io.BytesIO(whole.data), read_only=True)
    rows = list(wb["care"].iter_rows(values_only=True))
    assert len(rows) == 2 and rows[1][1] == "***"  # only the manager's village; sensitive masked
    wb.close()
    bad = b.post("/exports", {"form": "care", "sensitive": "1"})
    assert bad.status_code == 403


# ---- scale: bulk rows straight into the tables, export with bounded memory --------------------

def bulk_insert(rt: Any, n: int, form_xml_id: str = "care", region: str = VILLAGE_A, base: int = 10_000) -> None:
    from app.models import Form, Submission, SubmissionRepeatRow, SubmissionVersion

    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == form_xml_id))
        fv_id = form.current_version_id
        now = datetime.now(UTC)
        subs, vers, reps = [], [], []
        for i in range(n):
            sid = vid = base + i
            subs.append({"id": sid, "form_id": form.id, "instance_id": f"uuid:{uuid.uuid4()}", "created_at": now,
                         "updated_at": now, "region_code": region, "review_state": "received"})
            vers.append({"id": vid, "submission_id": sid, "form_id": form.id, "form_version_id": fv_id,
                         "instance_id": subs[-1]["instance_id"], "current": True, "xml": b"<data/>",
                         "xml_sha256": "0" * 64, "received_at": now,
                         "data": {"grp/child_name": f"儿童{i}", "grp/village": region, "age": i % 17,
                                  "needs": ["food", "school"], "note": "x" * 40,
                                  "location": {"type": "Point", "coordinates": [91.1, 29.6, 3650]}}})
            for j in range(3):
                reps.append({"id": base * 10 + i * 3 + j, "version_id": vid, "repeat": "/data/members",
                             "ordinal": j + 1, "parent_id": None, "data": {"role": f"role {j}"}})
        s.execute(insert(Submission), subs)
        s.execute(insert(SubmissionVersion), vers)
        s.execute(insert(SubmissionRepeatRow), reps)
        s.execute(update(Submission), [{"id": v["id"], "current_version_id": v["id"]} for v in vers])


class NullSink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, b: bytes) -> int:
        self.size += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def test_export_memory_does_not_grow_with_rows(app: Any, rt: Any, make_user: Any, care: Any) -> None:
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import csvzip_steps
    from app.services.exports.tabular import plan_for

    admin = make_user("admin1", "admin")
    bulk_insert(rt, 1000, region=VILLAGE_B, base=10_000)  # one read batch
    bulk_insert(rt, 3000, region=VILLAGE_A, base=20_000)

    def peak(region: str) -> tuple[int, int]:
        with rt.db.session() as s:
            plan = plan_for(s, 1, "care", admin, ExportOptions.parse({"format": "csvzip", "region": region}))
            sink = NullSink()
            tracemalloc.start()
            for _ in csvzip_steps(plan, s, sink, rt.store):
                pass
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return top, sink.size

    small_peak, small_size = peak(VILLAGE_B)
    big_peak, big_size = peak("54")
    assert big_size > 3.5 * small_size
    # 4,000 submissions + 12,000 repeat rows need no more memory than one batch of 1,000:
    # rows are read in batches and the repeat table spools to disk past 1 MB.
    assert big_peak < 12 * 1024 * 1024, big_peak
    assert big_peak < small_peak * 1.3 + 512 * 1024, (small_peak, big_peak)


# ---- the child's file as a ZIP ------------------------------------------------------------------

VISIT_MD = """
| settings |
| | form_id | version | default_language |
| | photo_visit | 1 | 中文 (zh) |

| survey |
| | type | name | label::中文 (zh) | label::English (en) |
| | select_one_from_file children.csv | child | 选择儿童 | Child |
| | text | observation | 走访情况 | Observation |
| | select_one ok | safe | 是否安全 | Safe? |
| | image | photo | 照片 | Photo |

| choices |
| | list_name | name | label::中文 (zh) | label::English (en) |
| | ok | yes | 安全 | Safe |
| | ok | no | 不安全 | Not safe |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""


def test_child_zip_has_summary_in_chinese_and_photos(app: Any, publish: Any, make_user: Any, rt: Any) -> None:
    from app.services import audit
    from tests.support.entity_forms import REGISTER_MD, register_xml

    publish(REGISTER_MD, "register.md")
    publish(VISIT_MD, "visit.md")
    make_user("dolma", "collector", ["540102"])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    uid = str(uuid.uuid4())
    send(phone, register_xml("uuid:r1", uid, "卓玛", VILLAGE_A))
    send(phone, (f'<data id="photo_visit" version="1"><child>{uid}</child>'
                 "<observation>家中整洁，孩子精神好</observation>"
                 f"<safe>yes</safe><photo>visit.jpg</photo><meta><instanceID>uuid:v1</instanceID>"
                 f'<entity dataset="children" id="{uid}" update="1" baseVersion="1" trunkVersion="" branchId="">'
                 "<label/></entity></meta></data>").encode(), {"visit.jpg": PHOTO})
    make_user("coord", "coordinator", ["54"])
    b = Browser(app)
    b.login("coord")
    b.post("/language", {"lang": "zh", "next": "/"})
    with app.test_request_context():
        from flask import url_for

        url = url_for("web.child_zip", uid=uid)
    resp = b.get(url)
    assert resp.status_code == 200, resp.data
    assert resp.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        names = zf.namelist()
        html = zf.read("summary.html").decode("utf-8")
        photos = [n for n in names if n.endswith("visit.jpg")]
        assert len(photos) == 1 and zf.read(photos[0]) == PHOTO
    assert '<meta charset="utf-8">' in html and "@media print" in html
    assert "儿童档案" in html and "卓玛" in html and "走访情况" in html and "家中整洁，孩子精神好" in html
    assert "安全" in html and f'src="{photos[0]}"' in html
    far = Browser(app)
    make_user("far", "manager", ["5425"])
    far.login("far")
    assert far.get(url).status_code == 404
    with rt.db.session() as s:
        assert audit.count(s, "export.download") == 1


# ---- a large CSV zip over several processes -----------------------------------------------------

def zip_entries(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(n, zf.read(n)) for n in zf.namelist()]


def nested_submissions(rt: Any, phone: DigestClient) -> None:
    """A few hundred submissions: bulk rows (same created_at: ties broken by id) between real ones
    with nested repeats, a photo, formula-like cells."""
    send(phone, care_xml("uuid:n1"), {"p1.jpg": PHOTO})
    bulk_insert(rt, 150, region=VILLAGE_A, base=10_000)
    for i in range(2, 6):
        send(phone, care_xml(f"uuid:n{i}", name=f"=名{i}", members=[("母亲", ["次仁", f"k{i}"] * i), ("父亲", ["x"])],
                             photo="" if i % 2 else "p1.jpg"), {} if i % 2 else {"p1.jpg": PHOTO})
    bulk_insert(rt, 150, region=VILLAGE_B, base=20_000)
    send(phone, care_xml("uuid:n9", members=[]))


def children_take_chunks(monkeypatch: Any, min_chunk: int = 20) -> None:
    """Chunks of a few rows, and the exporting thread waits before its first chunk until a child has begun one:
    the children render some chunks however fast this thread is."""

    monkeypatch.setattr(parallel, "MIN_CHUNK", min_chunk)
    real = parallel.write_part

    def write_part(plan: Any, session: Any, folder: str, chunk: int, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 60
        while chunk == 0 and not any(n.endswith("-0.deflate") for n in os.listdir(folder)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        return (yield from real(plan, session, folder, chunk, *args, **kwargs))

    monkeypatch.setattr(parallel, "write_part", write_part)


@pytest.mark.parametrize("raw", [{"format": "csvzip"},
                                 {"format": "csvzip", "labels": "zh", "split_select": True, "sensitive": True,
                                  "media": True, "group_paths": False}])
def test_parallel_csv_zip_is_byte_identical(app: Any, rt: Any, make_user: Any, phone: DigestClient,
                                            raw: dict[str, Any], monkeypatch: Any) -> None:
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.tabular import plan_for

    coord = make_user("coord", "coordinator", ["54"])
    nested_submissions(rt, phone)

    def export(processes: int) -> tuple[bytes, dict[str, Any], list[int]]:
        seen: list[int] = []
        stats: dict[str, Any] = {}
        with rt.db.session() as s:
            plan = plan_for(s, 1, "care", coord, ExportOptions.parse(raw))
            out = io.BytesIO()
            write_csvzip(plan, s, out, rt.store, seen.append, processes=processes, threshold=0, stats=stats)
            return out.getvalue(), stats, seen

    one, stats1, _ = export(1)
    assert stats1["children_vmhwm_kb"] == [] and stats1["chunks_by_process"] == []
    entries = zip_entries(one)
    names = [n for n, _ in entries]
    assert names[:3] == ["care.csv", "care-members.csv", "care-kids.csv"]
    assert ("media/p1.jpg" in names) == bool(raw.get("media"))
    assert len(tables(one)["care.csv"]) == 1 + 306 and len(tables(one)["care-kids.csv"]) > 30
    children_take_chunks(monkeypatch)
    for processes in (2, 3):
        many, stats, seen = export(processes)
        assert zip_entries(many) == entries  # same names, same bytes (one BOM and header per CSV)
        assert len(stats["children_vmhwm_kb"]) == processes - 1
        by = stats["chunks_by_process"]
        assert len(by) > processes and 0 in by and set(by) - {0}, by  # chunks rendered here and in children
        assert set(by) <= set(range(processes))
        assert seen and seen == sorted(seen) and seen[-1] == 306


def test_a_failing_child_fails_the_export_and_leaves_nothing(app: Any, rt: Any, make_user: Any, phone: DigestClient,
                                                             monkeypatch: Any) -> None:
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.tabular import plan_for

    coord = make_user("coord", "coordinator", ["54"])
    nested_submissions(rt, phone)
    monkeypatch.setattr(parallel, "MIN_CHUNK", 20)
    started: list[Any] = []
    real_start = parallel.start
    monkeypatch.setattr(parallel, "start", lambda *a, **k: started.append(real_start(*a, **k)) or started[-1])
    with rt.db.session() as s:
        plan = plan_for(s, 1, "care", coord, ExportOptions.parse({"format": "csvzip"}))
        # the child gets options it refuses (and only the child: it is a fresh interpreter)
        monkeypatch.setattr(ExportOptions, "to_dict", lambda self: {"format": "csvzip", "labels": "klingon"})
        with pytest.raises(RuntimeError, match="export part 1 failed: .*klingon"):
            write_csvzip(plan, s, io.BytesIO(), rt.store, processes=2, threshold=0)
    helpers = started[-1]
    assert helpers is not None and not os.path.exists(helpers.folder)
    assert [p.exitcode in (1, -15) for p in helpers.procs] == [True]  # ended by itself or by close()


def test_a_child_stops_waiting_for_chunks_when_the_exporting_process_is_gone(monkeypatch: Any) -> None:
    class Gone:
        def is_alive(self) -> bool:
            return False

    tasks: queue.Queue[Any] = queue.Queue()
    tasks.put((0, None, None))
    monkeypatch.setattr(parallel.multiprocessing, "parent_process", Gone)
    assert parallel._next_task(tasks) == (0, None, None)  # a chunk waiting is taken
    assert parallel._next_task(tasks) is None  # then, nothing more coming from a parent that is gone


def test_chunks_are_large_first_and_cover_every_row(monkeypatch: Any) -> None:

    monkeypatch.setattr(parallel, "MIN_CHUNK", 4000)
    sizes = parallel.chunk_sizes(246_476, 2)
    assert sum(sizes) == 246_476 and sizes == sorted(sizes, reverse=True)
    assert sizes[0] == 61_619 and min(sizes[:-1]) >= 4000 and len(sizes) < 20
    assert parallel.chunk_sizes(30_000, 3)[0] == 5000 and sum(parallel.chunk_sizes(30_000, 3)) == 30_000
    assert parallel.chunk_sizes(4001, 2) == [4000, 1] and parallel.chunk_sizes(0, 2) == [0]


def test_parallel_csv_zip_job(app: Any, rt: Any, make_user: Any, phone: DigestClient, monkeypatch: Any) -> None:

    make_user("coord", "coordinator", ["54"])
    nested_submissions(rt, phone)
    api = Api(app, "coord")
    monkeypatch.setenv("CAREFILE_EXPORT_PROCESSES", "1")
    single = job_file(api, rt, {"form": "care", "format": "csvzip", "labels": "en"})
    monkeypatch.setenv("CAREFILE_EXPORT_PROCESSES", "2")
    monkeypatch.setattr(parallel, "THRESHOLD", 100)
    started: list[Any] = []
    real_start = parallel.start
    monkeypatch.setattr(parallel, "start", lambda *a, **k: started.append(real_start(*a, **k)) or started[-1])
    double = job_file(api, rt, {"form": "care", "format": "csvzip", "labels": "en"})
    assert started and started[-1] is not None and len(started[-1].procs) == 1
    assert not os.path.exists(started[-1].folder)  # part files removed
    assert zip_entries(double) == zip_entries(single)
    jobs = api.get("/v1/projects/1/exports").get_json()
    assert len(jobs) == 2 and all(j["progress"] == j["total"] == 306 for j in jobs)


def test_compiled_rows_equal_build_row() -> None:
    from app.services.exports import tabular
    from app.services.exports.rowcode import compile_row

    labels = {"a": "=甲", "b": "乙"}
    specs = [("t", 0, None, 1), ("s1", 1, labels, 1), ("sm", 2, tabular._join_labels(labels), 1),
             ("sm2", 2, tabular._join_codes, 1), ("split", 3, tabular._split(["a", "b"], labels), 3),
             ("geo", 3, tabular._geopoint, 4), ("b", 2, tabular._bool, 1), ("m", 3, tabular._masker(2), 2),
             ("odd", 0, None, 2)]
    values = [None, "", "=1+1", "-", "plain", 0, 7, 2.5, True, False, "a", "b", ["a", "b"], ["x"], "a b",
              {"type": "Point", "coordinates": [91.1, 29.6]}, "@x", "\tx"]
    row = compile_row(specs)
    for v in values:
        for w in values[:6]:
            data = {k: (v if i % 2 else w) for i, (k, *_rest) in enumerate(specs)}
            if isinstance(v, (list, dict)):
                data.pop("s1")  # a choice label lookup of a list fails in both
            assert row(data) == tabular.build_row(data, specs), data
    assert row({}) == tabular.build_row({}, specs)
