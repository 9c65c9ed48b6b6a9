"""The manager's pictures and the county report in real headless Chromium at 375 px and 1280 px.

Reuses the harness of tests/e2e/test_browser.py (a live server, Playwright with Debian's
Chromium); screenshots go to tests/artifacts/screenshots/dashboard-*.png and report-*.png.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.app.reports.test_reports import FORMS, REGISTER, Child, _xml_register, _xml_update, update_md
from tests.e2e.live import LiveServer
from tests.e2e.test_browser import (  # noqa: F401  (fixtures)
    PASSWORD,
    SHOTS,
    WIDTHS,
    browser,
    check_layout,
    open_page,
    server,
    sign_in,
)

VILLAGES = ["540102002001", "540102002002", "540102003001", "540102010201"]


@pytest.fixture(scope="module")
def care_work(server: LiveServer) -> list[Child]:  # noqa: F811
    """A few months of work in Chengguan sent from a phone: registrations, visits, assessments, referrals."""
    from app.services import forms

    rt = server.app().extensions["carefile"]
    with rt.db.write() as s:
        forms.publish_form(s, rt.store, project_id=1, data=REGISTER.replace("child_registration", "reg_e2e").encode(),
                           filename="reg.md")
        for form in FORMS:
            forms.publish_form(s, rt.store, project_id=1, data=update_md(form).encode(), filename=f"{form}.md")
    today = date.today()
    levels = ["green", "yellow", "orange", "red"]
    children = []
    for i in range(12):
        c = Child(str(uuid.uuid4()), VILLAGES[i % len(VILLAGES)], today - timedelta(days=300 - 20 * i))
        day = c.registered
        c.events.append(("identification", day + timedelta(days=5), {"status": "refer", "due": str(today)}))
        c.events.append(("assessment", day + timedelta(days=12), {"risk_level": levels[i % 4],
                                                                  "due": str(today + timedelta(days=i - 6))}))
        if i % 2:
            c.events.append(("referral_followup", day + timedelta(days=15),
                             {"record_type": "referral", "ref_consent": "yes", "referral_status": "referred"}))
        if i % 4 == 1:
            c.events.append(("referral_followup", day + timedelta(days=25),
                             {"record_type": "followup", "referral_status": "in_service"}))
        if i % 3 == 0:
            c.events.append(("visit_record", min(day + timedelta(days=40), today), {}))
        children.append(c)
    auth = HTTPDigestAuth("dolma", PASSWORD)
    url = f"{server.url}/v1/projects/1/submission"

    def send(xml: bytes) -> None:
        resp = requests.post(url, auth=auth, headers={"X-OpenRosa-Version": "1.0"},
                             files={"xml_submission_file": ("submission.xml", xml, "text/xml")}, timeout=20)
        assert resp.status_code == 201, resp.text

    for c in children:
        send(_xml_register(f"uuid:{uuid.uuid4()}", c).replace(b'id="child_registration"', b'id="reg_e2e"'))
        for version, (form, day, values) in enumerate(c.events, start=1):
            send(_xml_update(f"uuid:{uuid.uuid4()}", form, c, day, values, base=version))
    return children


@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_charts(open_page: Callable[..., Any], care_work: list[Child], width: int) -> None:  # noqa: F811
    page = open_page(width, "mgr")
    page.goto("/dashboard")
    for cls in ("chart-risk", "chart-coverage", "chart-overdue", "chart-funnel", "chart-records"):
        svg = page.locator(f"svg.{cls}")
        assert svg.count() == 1, cls
        box = svg.bounding_box()
        assert box and 0 < box["width"] <= width and box["height"] > 40, (cls, box)
    # what the charts say: 6 children were referred, 3 accepted; the risk columns carry bars
    funnel = page.locator("svg.chart-funnel").inner_html()
    assert ": 6" in funnel and ": 3 (50%)" in funnel
    assert page.locator("svg.chart-risk rect").count() >= 5
    assert "八廓街道" in page.locator("svg.chart-coverage").inner_html()
    # the axis labels stay legible on a phone: rendered font size of at least 9 px
    size = page.evaluate("() => document.querySelector('svg.chart-coverage text').getBoundingClientRect().height")
    assert size >= 9, size
    check_layout(page, "dashboard-charts")
    page.locator("#charts").screenshot(path=str(SHOTS / f"dashboard-charts-only-{width}.png"))


@pytest.mark.parametrize("width", WIDTHS)
def test_county_report_page(open_page: Callable[..., Any], care_work: list[Child], width: int) -> None:  # noqa: F811
    page = open_page(width, "mgr")
    page.goto("/reports")
    page.click("#report-choice button.primary")
    page.wait_for_load_state()
    total = page.locator("tr[data-town=total] td[data-col=on_file]").inner_text()
    assert int(total) == len(care_work)
    assert page.locator("tr[data-town='540102002'] th").inner_text().startswith("八廓街道")
    assert page.locator("#report-xlsx").is_visible()
    check_layout(page, "report")
    if width > 375:  # paper, not a phone: printed, the navigation goes and the table fits the page
        page.emulate_media(media="print")
        assert not page.locator("header.top").is_visible()
        fits = page.evaluate("() => document.querySelector('.rep-table').getBoundingClientRect().right "
                             "<= document.documentElement.clientWidth")
        assert fits
        page.pdf(path=str(SHOTS / "report-a4.pdf"), format="A4", landscape=True)
        check_layout(page, "report-print")


@pytest.mark.parametrize("width", WIDTHS)
def test_region_picker_adds_a_place(open_page: Callable[..., Any], width: int) -> None:  # noqa: F811
    page = open_page(width, "root")
    page.goto("/users/new")
    box = page.locator(".rp-search")
    box.fill("八廓")
    page.wait_for_function("() => document.querySelectorAll('#rp-list-regions option').length > 0")
    options = page.locator("#rp-list-regions option")
    assert options.first.get_attribute("value") == "540102002"
    assert "拉萨市 城关区 八廓街道" in (options.first.get_attribute("label") or "")
    box.fill("540102002")  # choosing the option puts its value (the code) in the box
    assert page.input_value("input[name=regions]") == "540102002" and box.input_value() == ""
    check_layout(page, "region-picker")
    # a wrong code typed by hand is refused with the code named
    page.fill("input[name=username]", f"picker{width}")
    page.fill("input[name=regions]", "540102002 540102099")
    page.fill("input[name=password]", "picker password 1")
    page.fill("input[name=repeat]", "picker password 1")
    page.click("form button.primary")
    page.wait_for_load_state()
    assert "540102099" in page.locator("[role=alert]").inner_text()
