"""Manager pages: dashboard, submissions (filters, keyset pages, review), children and the child file.

Everything is scoped to the user's regions in the services: a manager of county 540121 gets 404
for a child or a submission of county 540102, and does not see them in lists or counts.
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from app.models import AuditEvent, Submission, SubmissionComment
from tests.app.children.test_entities import VILLAGE_A, VILLAGE_B, post
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml
from tests.support.sample_forms import household_md, household_xml

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
ASSESS_MD = """
| settings |
| | form_id | version | form_title |
| | assess | 1 | Assessment |

| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | text | risk_level | Risk level | risk_level |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""


def assess_xml(instance: str, entity_id: str, base: int, level: str) -> bytes:
    return (f'<data id="assess" version="1"><child>{entity_id}</child><risk_level>{level}</risk_level>'
            f"<meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{entity_id}" update="1" baseVersion="{base}" trunkVersion="" '
            'branchId=""><label/></entity></meta></data>').encode()


def household_post(phone: DigestClient, instance: str, village: str = VILLAGE_A, name: str = "Tashi",
                   files: dict[str, bytes] | None = None) -> None:
    from tests.app.conftest import submission_body

    body = submission_body(household_xml(instance, name=name, village=village), files)
    resp = phone.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data


def iid(n: int) -> str:
    return f"uuid:00000000-0000-4000-8000-{n:012d}"


@pytest.fixture
def world(app: Any, make_user: Any, publish: Any) -> dict[str, Any]:
    publish(REGISTER_MD, "register.md")
    publish(UPDATE_MD, "followup.md")
    publish(ASSESS_MD, "assess.md")
    publish(household_md("1"), "household.md")
    make_user("dolma", "collector", ["540102"])
    make_user("pema", "collector", ["540121"])
    make_user("mgr_a", "manager", ["540102"])
    make_user("mgr_b", "manager", ["540121"])
    make_user("boss", "admin")
    return {"a": DigestClient(app.test_client(), "dolma", PASSWORD),
            "b": DigestClient(app.test_client(), "pema", PASSWORD)}


def browser(app: Any, name: str, lang: str = "en") -> Browser:
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")  # the session (and its CSRF token) is new after signing in
    assert b.post("/language", {"lang": lang, "next": "/"}).status_code == 302
    return b


def page(b: Browser, url: str, status: int = 200) -> str:
    resp = b.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.get_data(as_text=True)[:500])
    return str(resp.get_data(as_text=True))


def audits(rt: Any, action: str) -> list[AuditEvent]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# --------------------------------------------------------------------------------------------- access


def test_signed_out_is_sent_to_sign_in_and_collectors_are_refused(app: Any, world: Any, rt: Any) -> None:
    anon = app.test_client()
    for url in ("/dashboard", "/children", "/submissions", "/submissions/household",
                f"/children/{uuid.uuid4()}", f"/submissions/household/{iid(1)}"):
        resp = anon.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login"), url
    # A collector cannot sign in on the website; even with a session cookie the pages refuse them.
    with rt.db.write() as s:
        from app.models import User
        from app.services.identity import sessions as session_service

        dolma = s.scalars(select(User).where(User.username == "dolma")).one()
        session_id = f"{dolma.id}:{session_service.start_web_session(s, dolma.id)}"
    b = Browser(app)
    with b.client.session_transaction() as sess:
        sess["_user_id"] = session_id
        sess["_fresh"] = True
    for url in ("/dashboard", "/children", "/submissions", "/submissions/household"):
        assert b.get(url).status_code == 403, url


def test_manager_of_another_county_gets_404_and_sees_nothing(app: Any, world: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(world["a"], register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    household_post(world["a"], iid(1), files={"photo.jpg": PHOTO})

    other = browser(app, "mgr_b")
    page(other, f"/children/{uid}", 404)
    page(other, f"/submissions/household/{iid(1)}", 404)
    page(other, f"/submissions/household/{iid(1)}/files/photo.jpg", 404)
    assert other.post(f"/submissions/household/{iid(1)}/review", {"review_state": "approved"}).status_code == 404
    assert uid not in page(other, "/children")
    assert iid(1) not in page(other, "/submissions/household")
    dash = page(other, "/dashboard")
    assert re.search(r'id="children-count">0<', dash)
    assert not audits(rt, "child.view") and not audits(rt, "attachment.download")

    own = browser(app, "mgr_a")
    assert "Dolkar" in page(own, "/children")
    assert iid(1) in page(own, "/submissions/household")
    assert re.search(r'id="children-count">1<', page(own, "/dashboard"))
    page(own, f"/children/{uid}")
    page(own, f"/submissions/household/{iid(1)}")
    # An administrator sees every region.
    assert "Dolkar" in page(browser(app, "boss"), "/children")


# --------------------------------------------------------------------------------------------- submissions


def walk(b: Browser, url: str) -> list[str]:
    """Follow the "more" links to the end; return the instance ids in page order."""
    seen: list[str] = []
    pages = 0
    while url:
        html = page(b, url)
        seen += re.findall(r'data-instance="([^"]+)"', html)
        more = re.search(r'<a rel="next" class="mgr-more" href="([^"]+)"', html)
        url = more.group(1).replace("&amp;", "&") if more else ""
        if more:
            assert "after" in parse_qs(urlsplit(url).query) and "offset" not in url
        pages += 1
        assert pages < 50
    return seen


def test_keyset_pages_and_filters(app: Any, world: Any, rt: Any) -> None:
    for n in range(1, 31):
        village = "540102002202" if n % 3 == 0 else VILLAGE_A
        household_post(world["a"], iid(n), village=village)
    for n in range(31, 34):
        household_post(world["b"], iid(n), village=VILLAGE_B)
    # Same received time for a run of rows: the id breaks the tie, no row is lost or repeated.
    tie = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    with rt.db.write() as s:
        s.execute(update(Submission).where(Submission.instance_id.in_([iid(n) for n in range(5, 15)]))
                  .values(created_at=tie))
        s.execute(update(Submission).where(Submission.instance_id == iid(2)).values(review_state="approved"))
    b = browser(app, "mgr_a")
    got = walk(b, "/submissions/household?size=7")
    assert len(got) == 30 and len(set(got)) == 30
    assert set(got) == {iid(n) for n in range(1, 31)}  # nothing of county 540121
    with rt.db.session() as s:
        expected = list(s.scalars(select(Submission.instance_id).where(Submission.region_code.startswith("540102"))
                                  .order_by(Submission.created_at.desc(), Submission.id.desc())))
    assert got == expected

    # Filters stay on every page.
    village_b = walk(b, "/submissions/household?size=4&region=540102002202")
    assert sorted(village_b) == sorted(iid(n) for n in range(3, 31, 3))
    assert walk(b, "/submissions/household?size=4&review_state=approved") == [iid(2)]
    assert len(walk(b, "/submissions/household?size=9&submitter=dolma")) == 30
    assert walk(b, "/submissions/household?submitter=pema") == []
    assert walk(b, "/submissions/household?submitter=nobody") == []
    march = walk(b, "/submissions/household?size=4&from=2026-03-01&to=2026-03-01")
    assert sorted(march) == sorted(iid(n) for n in range(5, 15))
    assert walk(b, "/submissions/household?to=2026-02-28") == []
    today = datetime.now(timezone(timedelta(hours=8))).date()
    assert len(walk(b, f"/submissions/household?size=50&from={today.isoformat()}")) == 20
    page(b, "/submissions/household?from=yesterday", 400)
    # A region filter cannot widen the manager's scope.
    assert walk(b, "/submissions/household?region=540121") == []
    assert len(walk(browser(app, "mgr_b"), "/submissions/household?region=540121")) == 3


def test_submission_page_shows_labelled_answers_photo_and_geopoint(app: Any, world: Any, rt: Any) -> None:
    household_post(world["a"], iid(1), files={"photo.jpg": PHOTO})
    b = browser(app, "mgr_a")
    html = page(b, f"/submissions/household/{iid(1)}")
    assert "Child&#39;s name" in html and "Tashi" in html
    assert "Village A" in html  # select_one: the choice label, not the code
    assert "Food, Health" in html  # select_multiple
    assert re.search(r"latitude 29\.65, longitude 91\.13, altitude 3650(\.0)? m, accuracy 5(\.0)? m", html)
    assert "Household members" in html and "grandfather" in html and "70" in html
    thumb = f"/submissions/household/{iid(1)}/files/photo.jpg"
    assert f'<img class="thumb" loading="lazy" src="{thumb}"' in html
    assert "dolma" in html  # submitter
    resp = b.get(thumb)
    assert resp.status_code == 200 and resp.data == PHOTO
    assert [e.target for e in audits(rt, "attachment.download")] == [f"submission:household/{iid(1)}/photo.jpg"]
    assert len(audits(rt, "submission.view")) == 1
    page(b, f"/submissions/household/{iid(1)}/files/other.jpg", 404)
    # Labels in Chinese when the UI is Chinese (the form's single label language stays as is).
    zh = page(browser(app, "mgr_a", "zh"), f"/submissions/household/{iid(1)}")
    assert "审核" in zh and "纬度 29.65" in zh


def test_edits_are_listed_as_versions(app: Any, world: Any) -> None:
    from tests.app.conftest import submission_body

    household_post(world["a"], iid(1), name="Tashi")
    xml = household_xml(iid(2), name="Tashi Dorje", deprecated_id=iid(1))
    resp = world["a"].post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    b = browser(app, "mgr_a")
    html = page(b, f"/submissions/household/{iid(1)}")
    assert "Tashi Dorje" in html and "Versions (edits)" in html and iid(2) in html
    old = page(b, f"/submissions/household/{iid(1)}?version={iid(1)}")
    assert "earlier version" in old and "Tashi Dorje" not in old
    page(b, f"/submissions/household/{iid(1)}?version=uuid:nope", 404)


def test_review_state_and_comment_are_saved_and_audited(app: Any, world: Any, rt: Any) -> None:
    household_post(world["a"], iid(1))
    b = browser(app, "mgr_a")
    url = f"/submissions/household/{iid(1)}"
    page(b, url)
    resp = b.post(url + "/review", {"review_state": "has_issues", "comment": "Age looks wrong; please check."})
    assert resp.status_code == 302
    html = page(b, url)
    assert "Age looks wrong; please check." in html and 'id="review-state">Has issues<' in html
    assert b.post(url + "/review", {"review_state": "approved", "comment": ""}).status_code == 302
    with rt.db.session() as s:
        sub = s.scalars(select(Submission)).one()
        assert sub.review_state == "approved"
        comments = list(s.scalars(select(SubmissionComment).order_by(SubmissionComment.id)))
    assert [(c.body, c.review_state) for c in comments] == [("Age looks wrong; please check.", "has_issues"),
                                                           ("", "approved")]
    events = audits(rt, "submission.review")
    assert [(e.username, e.details["previous"], e.details["state"]) for e in events] == [
        ("mgr_a", "received", "has_issues"), ("mgr_a", "has_issues", "approved")]
    # Bad input, a missing CSRF token: refused, nothing saved.
    assert b.post(url + "/review", {"review_state": "edited"}).status_code == 400
    assert b.post(url + "/review", {"review_state": "approved"}).status_code == 400  # nothing changes
    assert b.client.post(url + "/review", data={"review_state": "rejected"}).status_code == 400
    assert "approved" in walk_states(b)
    assert len(audits(rt, "submission.review")) == 2


def walk_states(b: Browser) -> str:
    return page(b, "/submissions/household?review_state=approved")


# --------------------------------------------------------------------------------------------- children


def test_child_file_shows_records_in_time_order_and_is_audited(app: Any, world: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(world["a"], register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(world["a"], update_xml("uuid:u1", uid, base=1, status="watch", due="2020-01-31"))
    post(world["a"], assess_xml("uuid:a1", uid, base=2, level="red"))
    b = browser(app, "mgr_a")
    html = page(b, f"/children/{uid}")
    assert 'id="risk-level">Red<' in html and 'class="badge red"' in html
    assert re.search(r'id="next-followup"><span class="error">2020-01-31', html)  # overdue: red
    timeline = html.split('id="timeline"')[1].split("</ol>")[0]
    forms = re.findall(r'data-form="(\w+)"', timeline)
    assert forms == ["register", "followup", "assess"]
    assert "/submissions/followup/uuid:u1" in timeline
    assert "Status: <strong>Watch</strong>" in timeline  # the record's summary line
    history = html.split("History of the file")[1]
    assert history.count("<tr>") == 4  # header + 3 versions
    assert [e.target for e in audits(rt, "child.view")] == [f"child:{uid}"]
    page(b, f"/children/{uid}")
    assert len(audits(rt, "child.view")) == 2
    zh = page(browser(app, "mgr_a", "zh"), f"/children/{uid}")
    assert "红" in zh and "关注" in zh
    page(b, "/children/not-a-child", 404)
    # The follow-up form has no region questions: its record is visible through the child's region.
    assert "Dolkar" not in page(b, "/submissions/followup/uuid:u1")
    assert "uuid:u1" in page(b, "/submissions/followup")
    other = browser(app, "mgr_b")
    page(other, "/submissions/followup/uuid:u1", 404)
    assert "uuid:u1" not in page(other, "/submissions/followup")


def test_children_list_filters_and_pages(app: Any, world: Any, monkeypatch: Any) -> None:
    import app.web.children as children_page

    ids = [str(uuid.uuid4()) for _ in range(4)]
    for n, uid in enumerate(ids):
        post(world["a"], register_xml(f"uuid:r{n}", uid, f"Child{n}", VILLAGE_A))
    post(world["a"], update_xml("uuid:u0", ids[0], base=1, status="urgent", due="2020-01-01"))
    post(world["a"], assess_xml("uuid:a1", ids[1], base=1, level="orange"))
    post(world["a"], update_xml("uuid:u2", ids[2], base=1, due="2999-01-01"))
    post(world["b"], register_xml("uuid:rb", str(uuid.uuid4()), "FarAway", VILLAGE_B))
    b = browser(app, "mgr_a")

    def listed(query: str) -> list[str]:
        return re.findall(r'data-uuid="([^"]+)"', page(b, "/children" + query))

    assert sorted(listed("")) == sorted(ids)
    assert listed("?overdue=1") == [ids[0]]
    assert listed("?risk_level=orange") == [ids[1]]
    assert listed("?status=urgent") == [ids[0]]
    assert listed("?q=Child3") == [ids[3]]  # this test form's labels are not built from sensitive answers
    assert listed("?region=540102002201") != [] and listed("?region=540121") == []
    monkeypatch.setattr(children_page, "PAGE_SIZE", 3)
    first, second = listed("?page=1"), listed("?page=2")
    assert len(first) == 3 and len(second) == 1 and set(first + second) == set(ids)
    assert "page=2" in page(b, "/children?page=1")
    assert "4 children" in page(b, "/children") and "Page 1 of 2" in page(b, "/children?page=1")
    # Above the count limit the total is "more than …" (not counted to the end), and paging goes on.
    monkeypatch.setattr(children_page, "COUNT_LIMIT", 2)
    capped = page(b, "/children?page=1")
    assert "More than 2 children" in capped and "Page 1 of" not in capped and "Page 1" in capped
    assert "page=2" in capped and len(listed("?page=2")) == 1
    monkeypatch.setattr(children_page, "COUNT_LIMIT", 4)  # exactly at the limit: the exact total
    assert "4 children" in page(b, "/children") and "More than" not in page(b, "/children")


# --------------------------------------------------------------------------------------------- dashboard


def test_dashboard_counts_by_region_level_status_and_week(app: Any, world: Any, rt: Any) -> None:
    from app.models import User
    from app.services.reports import dashboard

    a1, a2, a3 = (str(uuid.uuid4()) for _ in range(3))
    for n, uid in enumerate((a1, a2, a3)):
        post(world["a"], register_xml(f"uuid:r{n}", uid, f"A{n}", "540102010201" if n == 2 else VILLAGE_A))
    post(world["a"], assess_xml("uuid:a1", a1, base=1, level="red"))
    post(world["a"], update_xml("uuid:u2", a2, base=1, status="watch", due="2020-01-01"))
    post(world["b"], register_xml("uuid:rb", str(uuid.uuid4()), "B0", VILLAGE_B))
    post(world["b"], register_xml("uuid:rb2", str(uuid.uuid4()), "B1", VILLAGE_B))
    # One record three weeks back.
    with rt.db.write() as s:
        s.execute(update(Submission).where(Submission.instance_id == "uuid:r0")
                  .values(created_at=datetime.now(UTC) - timedelta(weeks=3)))

    today = datetime.now(timezone(timedelta(hours=8))).date()
    with rt.db.session() as s:
        mgr = s.scalars(select(User).where(User.username == "mgr_a")).one()
        risk = dashboard.children_by(s, 1, mgr, "risk_level")
        status = dashboard.children_by(s, 1, mgr, "status")
        weeks = dashboard.submissions_per_week(s, 1, mgr, today)
        assert dashboard.overdue_count(s, 1, mgr, today) == 1
        boss = s.scalars(select(User).where(User.username == "boss")).one()
        assert dashboard.children_by(s, 1, boss, "risk_level").rows == {"5401": {"unassessed": 4, "red": 1}}
    # One level below the manager's county: townships.
    assert risk.rows == {"540102002": {"red": 1, "unassessed": 1}, "540102010": {"unassessed": 1}}
    assert status.rows == {"540102002": {"registered": 1, "watch": 1}, "540102010": {"registered": 1}}
    assert len(weeks) == 12 and weeks[-1][0] <= today < weeks[-1][0] + timedelta(days=7)
    assert weeks[-1][1] == 4 and weeks[-4][1] == 1 and sum(n for _, n in weeks) == 5  # county B not counted

    html = page(browser(app, "mgr_a"), "/dashboard")
    assert re.search(r'id="overdue-count">1<', html) and re.search(r'id="children-count">3<', html)
    assert "/children?overdue=1" in html
    assert "/children?region=540102002&amp;risk_level=red" in html
    assert html.count('class="mgr-bar"') == 12


def test_pages_fit_a_phone(app: Any, world: Any) -> None:
    """Wide tables sit in .table-wrap (scroll inside), so the page itself never scrolls sideways."""
    uid = str(uuid.uuid4())
    post(world["a"], register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    household_post(world["a"], iid(1))
    b = browser(app, "mgr_a")
    for url in ("/dashboard", "/children", "/submissions/household", f"/submissions/household/{iid(1)}",
                f"/children/{uid}"):
        html = page(b, url)
        assert 'name="viewport"' in html
        for table in re.finditer(r"<table", html):
            before = html[:table.start()]
            assert before.rfind('<div class="table-wrap">') > before.rfind("</div>"), (url, html[table.start() - 200:
                                                                                              table.start()])


def test_every_day_date_filter_uses_local_days() -> None:
    from app.services.submissions.records import local_day_start

    assert local_day_start(date(2026, 3, 1)) == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)


def test_dashboard_shows_care_file_updates_that_did_not_apply(app: Any, make_user: Any, publish: Any) -> None:
    import uuid as uuidlib

    from tests.app.conftest import PASSWORD, submission_body
    from tests.app.web_helpers import Browser
    from tests.support.digest_client import DigestClient
    from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

    publish(REGISTER_MD, "register.md")
    publish(UPDATE_MD, "followup.md")
    make_user("dolma", "collector", ["540102"])
    make_user("boss", "manager", ["540102"])
    make_user("other", "manager", ["540121"])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    uid = str(uuidlib.uuid4())
    for xml in (register_xml("uuid:r1", uid, "Dolkar", "540102002201"),
                update_xml("uuid:u9", uid, base=7, status="watch")):  # a base version that does not exist
        assert phone.post("/v1/projects/1/submission", data=submission_body(xml),
                          content_type="multipart/form-data").status_code == 201
    boss = Browser(app)
    boss.login("boss")
    page = boss.get("/dashboard").get_data(as_text=True)
    assert 'id="entity-problems"' in page and "followup" in page
    other = Browser(app)
    other.login("other")
    assert 'id="entity-problems"' not in other.get("/dashboard").get_data(as_text=True)
