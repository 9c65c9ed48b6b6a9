"""The submissions' trash (issue 20, B): DELETE and restore as Central 2024.3+, `?deleted=true`, purge after 30
days with the record's files; a deleted record leaves lists, exports, OData, reports and the dashboard."""
from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Submission, SubmissionAttachment, SubmissionVersion, utcnow
from tests.support.api_client import ApiClient
from tests.support.cli import cli_runner
from tests.support.sample_forms import household_xml

SUBS = "/v1/projects/1/forms/household/submissions"
ONE = "uuid:00000000-0000-4000-8000-0000000000a1"
TWO = "uuid:00000000-0000-4000-8000-0000000000a2"
PHOTO = b"\xff\xd8\xff\xe0 a photo only this record has" + b"p" * 64


@pytest.fixture
def cli(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return cli_runner(app_config, monkeypatch, capsys)


@pytest.fixture
def two(submit: Any, login: Any) -> ApiClient:
    assert submit(household_xml(ONE, name="Dolkar"), files={"photo.jpg": PHOTO}).status_code == 201
    assert submit(household_xml(TWO, name="Pema", photo="")).status_code == 201
    return login("dawa", "coordinator", ["540102"])


def _ids(api: ApiClient, query: str = "") -> list[str]:
    resp = api.get(f"{SUBS}{query}")
    assert resp.status_code == 200, resp.data
    return sorted(s["instanceId"] for s in resp.get_json())


def _csv_keys(api: ApiClient) -> str:
    resp = api.get(f"{SUBS}.csv.zip")
    assert resp.status_code == 200, resp.data
    with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
        return z.read("household.csv").decode()


def _dashboard_count(rt: Any) -> int:
    """The dashboard's submissions of the last weeks, as the coordinator sees them."""
    from app.models import User
    from app.services.reports import dashboard

    with rt.db.session() as s:
        coord = s.scalars(select(User).where(User.username == "dawa")).one()
        return sum(n for _, n in dashboard.submissions_per_week(s, 1, coord, date.today() + timedelta(days=1)))


def test_delete_and_restore_a_submission(app: Any, rt: Any, two: ApiClient, submit: Any) -> None:
    api = two
    assert api.delete(f"{SUBS}/{ONE}").get_json() == {"success": True}
    assert _ids(api) == [TWO]
    trashed = api.get(f"{SUBS}?deleted=true").get_json()
    assert [s["instanceId"] for s in trashed] == [ONE] and trashed[0]["deletedAt"]
    assert api.get(f"{SUBS}/{ONE}").status_code == 404
    assert api.get(f"{SUBS}/{ONE}.xml").status_code == 404
    assert api.get(f"{SUBS}/{ONE}/attachments/photo.jpg").status_code == 404
    assert ONE not in _csv_keys(api) and TWO in _csv_keys(api)
    odata = api.get("/v1/projects/1/forms/household.svc/Submissions").get_json()["value"]
    assert [r["__id"] for r in odata] == [TWO] and odata[0]["__system"]["deletedAt"] is None
    # as Central: a filter on __system/deletedAt reaches the trash
    gone = api.get("/v1/projects/1/forms/household.svc/Submissions?$filter=__system/deletedAt ne null").get_json()
    assert [r["__id"] for r in gone["value"]] == [ONE] and gone["value"][0]["__system"]["deletedAt"]
    ext = api.get("/v1/projects/1/forms/household", headers={"X-Extended-Metadata": "true"}).get_json()
    assert ext["submissions"] == 1
    assert _dashboard_count(rt) == 1
    # the phone sends it again: refused, it was deleted on the server
    again = submit(household_xml(ONE, name="Dolkar"), files={"photo.jpg": PHOTO})
    assert again.status_code == 409
    assert api.delete(f"{SUBS}/{ONE}").status_code == 404  # already in the trash
    assert api.post(f"{SUBS}/{ONE}/restore").get_json() == {"success": True}
    assert _ids(api) == [ONE, TWO] and api.get(f"{SUBS}?deleted=true").get_json() == []
    assert ONE in _csv_keys(api) and _dashboard_count(rt) == 2
    assert api.post(f"{SUBS}/{ONE}/restore").status_code == 404
    with rt.db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("submission.%e"))
                                               .order_by(AuditEvent.id)) if e.action != "submission.create"]
    assert actions == ["submission.delete", "submission.restore"]


def test_who_may_delete_submissions(app: Any, two: ApiClient, login: Any, collect: Any) -> None:
    manager = login("mgr", "manager", ["540102"])
    assert manager.delete(f"{SUBS}/{ONE}").status_code == 403
    assert manager.post(f"{SUBS}/{ONE}/restore").status_code == 403
    far = login("lobsang", "coordinator", ["540121"])
    assert far.delete(f"{SUBS}/{ONE}").status_code == 404
    assert two.delete(f"{SUBS}/{ONE}").status_code == 200
    assert far.post(f"{SUBS}/{ONE}/restore").status_code == 404
    assert far.get(f"{SUBS}?deleted=true").get_json() == []
    assert two.delete("/v1/projects/1/forms/nope/submissions/x").status_code == 404


def test_purge_removes_the_record_and_its_files(app: Any, rt: Any, cli: Any, two: ApiClient) -> None:
    assert two.delete(f"{SUBS}/{ONE}").status_code == 200
    with rt.db.session() as s:
        key = s.scalar(select(SubmissionAttachment.blob_key).where(SubmissionAttachment.name == "photo.jpg"))
    assert key and rt.store.exists(key)
    code, out, _ = cli("purge", "--now", (utcnow() + timedelta(days=29)).isoformat())
    assert code == 0 and "Submissions purged: 0" in out
    code, out, _ = cli("purge", "--now", (utcnow() + timedelta(days=31)).isoformat())
    assert code == 0 and "Submissions purged: 1" in out and "stored files deleted: 1" in out, out
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission).where(Submission.instance_id == ONE)) == 0
        assert s.scalar(select(func.count()).select_from(SubmissionVersion)
                        .where(SubmissionVersion.instance_id == ONE)) == 0
        assert s.scalar(select(func.count()).select_from(SubmissionAttachment)
                        .where(SubmissionAttachment.blob_key == key)) == 0
        purge = s.scalars(select(AuditEvent).where(AuditEvent.action == "submission.purge")).one()
        assert purge.details == {"submissions": 1}
    assert not rt.store.exists(key)
    assert two.get(f"{SUBS}?deleted=true").get_json() == []
    assert _ids(two) == [TWO]
    # forced, narrowed to one record
    assert two.delete(f"{SUBS}/{TWO}").status_code == 200
    code, _, err = cli("purge", "--force", "--instance", TWO)
    assert code == 1 and "--form" in err
    code, out, _ = cli("purge", "--force", "-p", "1", "-x", "household", "-s", TWO)
    assert code == 0 and "Submissions purged: 1" in out
