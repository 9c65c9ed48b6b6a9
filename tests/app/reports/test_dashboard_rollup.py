"""The dashboard's stored figures (`carefile dashboard refresh`, app.services.rollup) equal the live ones for
every scope; the page uses them only while fresh (same day, younger than CAREFILE_DASHBOARD_MAX_AGE)."""
from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date, timedelta
from html import unescape
from typing import Any

from sqlalchemy import select

from app.models import DashboardRollup, User
from app.models.base import utcnow
from app.services.reports import county as reports
from app.services.reports import dashboard as dash
from app.services.reports import rollup
from app.web.children import today_local
from tests.app.reports.test_reports import Child, browser, sent  # noqa: F401  (the fixture)

SCOPES = [("boss", "admin", []), ("county", "manager", ["540102"]), ("town", "manager", ["540102002"]),
          ("two", "coordinator", ["540102002", "540121"]), ("elsewhere", "manager", ["540302"])]


def live(s: Any, user: User, today: date) -> dict[str, Any]:
    return {"risk": asdict(dash.children_by(s, 1, user, "risk_level")),
            "status": asdict(dash.children_by(s, 1, user, "status")),
            "overdue": dash.overdue_count(s, 1, user, today), "conflicts": dash.conflict_count(s, 1, user),
            "pictures": asdict(reports.pictures(s, 1, user, today)),
            "weeks": dash.submissions_per_week(s, 1, user, today)}


def stored(figures: rollup.Figures, user: User, today: date) -> dict[str, Any]:
    return {"risk": asdict(figures.children_by(user, "risk_level")),
            "status": asdict(figures.children_by(user, "status")),
            "overdue": figures.overdue_count(), "conflicts": figures.conflict_count(),
            "pictures": asdict(figures.pictures(user, today)), "weeks": figures.weeks(today)}


def test_stored_figures_equal_live_ones_in_every_scope(rt: Any, make_user: Any, sent: list[Child]) -> None:  # noqa: F811
    for name, role, codes in SCOPES:
        make_user(name, role, codes)
    for today in (date(2025, 9, 30), date(2025, 8, 15), today_local()):
        with rt.db.write() as s:
            n = rollup.refresh(s, 1, today)
        assert n >= 4  # one row per region code of the children (four villages)
        with rt.db.session() as s:
            for name, _, _ in SCOPES:
                user = s.scalars(select(User).where(User.username == name)).one()
                figures = rollup.current(s, 1, user, today, 600, now=utcnow())
                assert figures is not None
                want = live(s, user, today)
                assert stored(figures, user, today) == want, (name, today)
                if name == "boss":
                    assert want["risk"]["rows"] and want["pictures"]["coverage"]  # the scenario has figures
                if name == "elsewhere":
                    assert want["risk"]["rows"] == {} and want["overdue"] == 0


def test_stale_figures_are_not_used(rt: Any, make_user: Any, sent: list[Child]) -> None:  # noqa: F811
    make_user("boss", "admin", [])
    today = date(2025, 9, 30)
    with rt.db.write() as s:
        rollup.refresh(s, 1, today)
    with rt.db.session() as s:
        user = s.scalars(select(User).where(User.username == "boss")).one()
        later = utcnow() + timedelta(seconds=601)
        assert rollup.current(s, 1, user, today, 600, now=later) is None  # too old
        assert rollup.current(s, 1, user, today + timedelta(days=1), 600) is None  # another day
        assert rollup.current(s, 1, user, today, 0) is None  # switched off
        assert rollup.current(s, 1, user, today, 600) is not None


def test_dashboard_page_uses_fresh_figures(app: Any, rt: Any, make_user: Any, sent: list[Child]) -> None:  # noqa: F811
    rt.config["DASHBOARD_LIVE_UP_TO"] = 0  # stored figures for any scope (the scenario's county is small)
    b = browser(app, make_user, "mgr", "manager", ["540102"])
    page = unescape(b.get("/dashboard").get_data(as_text=True))
    assert 'id="figures-as-of"' not in page  # nothing stored: live
    live_overdue = page.split('id="overdue-count">', 1)[1].split("<", 1)[0]
    with rt.db.write() as s:
        rollup.refresh(s, 1, today_local())
    page = unescape(b.get("/dashboard").get_data(as_text=True))
    assert 'id="figures-as-of"' in page
    assert page.split('id="overdue-count">', 1)[1].split("<", 1)[0] == live_overdue
    with rt.db.write() as s:  # figures of another day: live again
        for row in s.scalars(select(DashboardRollup)):
            row.day = today_local() - timedelta(days=1)
    page = unescape(b.get("/dashboard").get_data(as_text=True))
    assert 'id="figures-as-of"' not in page


def test_a_small_scope_is_exact_right_after_a_change(app: Any, rt: Any, make_user: Any,
                                                      sent: list[Child]) -> None:  # noqa: F811
    """A county's dashboard is computed live even when stored figures exist: a child registered (or a held
    change approved) after the refresh counts at once, not at the next refresh."""
    from tests.app.conftest import PASSWORD, submission_body
    from tests.app.reports.test_reports import _xml_register
    from tests.support.digest_client import DigestClient

    b = browser(app, make_user, "mgr", "manager", ["540102"])
    with rt.db.write() as s:
        rollup.refresh(s, 1, today_local())

    def count() -> int:
        page = unescape(b.get("/dashboard").get_data(as_text=True))
        assert 'id="figures-as-of"' not in page  # live: the county holds fewer than 2,000 children
        return int(page.split('id="children-count">', 1)[1].split("<", 1)[0])

    before = count()
    late = Child(uid=str(uuid.uuid4()), village=sent[0].village, registered=today_local())
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    resp = phone.post("/v1/projects/1/submission", data=submission_body(_xml_register("uuid:late", late)),
                      content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    assert count() == before + 1
    with rt.db.session() as s:  # the stored figures still say what they said at the refresh
        user = s.scalars(select(User).where(User.username == "mgr")).one()
        stale = rollup.current(s, 1, user, today_local(), 600)
        assert stale is not None and stale.children_by(user, "risk_level").grand_total == before
        assert rollup.current(s, 1, user, today_local(), 600, live_up_to=2000) is None
