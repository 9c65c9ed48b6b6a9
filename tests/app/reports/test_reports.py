"""The county report: its numbers equal counts computed here, independently, from the submissions
the test sends (registrations, identifications, assessments, referrals, follow-ups, closures,
visits) — on the A4 page and in the XLSX, on both backends; scope by region."""
from __future__ import annotations

import io
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import unescape
from typing import Any

import pytest
from openpyxl import load_workbook

from app.services import regions
from tests.app.conftest import PASSWORD
from tests.app.children.test_entities import post
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient

REGISTER = """
| settings |
| | form_id | version |
| | child_registration | 1 |

| survey |
| | type | name | label | save_to |
| | text | given | Name | |
| | text | village | Village | village |
| | date | registered_on | Registered | registered_on |
| | text | status | Status | status |
| | text | risk_level | Risk | risk_level |
| | text | due | Due | next_followup_due |

| entities |
| | list_name | label |
| | children | ${given} |
"""

# As in the shipped forms, some answers the report reads sit in groups: the assessor's date in
# grp_assessor, the guardian's consent to a referral in grp_ref (stored as grp_ref/ref_consent).
UPDATE = """
| settings |
| | form_id | version |
| | {form_id} | 1 |

| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | date | today | Filled on | |
{date_rows}
| | text | record_type | Type | |
| | begin_group | grp_ref | Referral | |
| | text | ref_consent | Consent | |
| | end_group | grp_ref | | |
| | text | status | Status | status |
| | text | risk_level | Risk | risk_level |
| | text | referral_status | Referral | referral_status |
| | text | due | Due | next_followup_due |

| entities |
| | list_name | entity_id |
| | children | ${{child}} |
"""
FORMS = {"identification": "visit_date", "assessment": "grp_assessor/assessment_date",
         "referral_followup": "record_date", "visit_record": "visit_date"}
FILLED_ON = "2026-12-01"  # every record was typed into the phone long after its own date


def _date_rows(path: str) -> str:
    group, _, name = path.rpartition("/")
    row = f"| | date | {name} | Date | |"
    return f"| | begin_group | {group} | Group | |\n{row}\n| | end_group | {group} | | |" if group else row


def update_md(form: str) -> str:
    """The update form `form` (identification, assessment …) as markdown."""
    return UPDATE.format(form_id=form, date_rows=_date_rows(FORMS[form]))


def _element(path: str, text: str) -> str:
    group, _, name = path.rpartition("/")
    inner = f"<{name}>{text}</{name}>"
    return f"<{group}>{inner}</{group}>" if group else inner
PERIOD_START, PERIOD_END = date(2025, 7, 1), date(2025, 9, 30)  # 2025-Q3


@dataclass
class Child:
    uid: str
    village: str
    registered: date
    events: list[tuple[str, date, dict[str, str]]] = field(default_factory=list)


def _xml_register(instance: str, c: Child) -> bytes:
    due = (c.registered + timedelta(days=30)).isoformat()
    return (f'<data id="child_registration" version="1"><given>X</given><village>{c.village}</village>'
            f"<registered_on>{c.registered.isoformat()}</registered_on><status>registered</status>"
            f"<risk_level>unassessed</risk_level><due>{due}</due><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{c.uid}" create="1"><label>X</label></entity></meta></data>').encode()


def _xml_update(instance: str, form: str, c: Child, day: date, values: dict[str, str], base: int) -> bytes:
    fields = f"<child>{c.uid}</child><today>{FILLED_ON}</today>{_element(FORMS[form], day.isoformat())}"
    fields += "".join(_element("grp_ref/ref_consent" if k == "ref_consent" else k, v) for k, v in values.items())
    return (f'<data id="{form}" version="1">{fields}<meta><instanceID>{instance}</instanceID>'
            f'<entity dataset="children" id="{c.uid}" update="1" baseVersion="{base}" trunkVersion="" branchId="">'
            "<label/></entity></meta></data>").encode()


def scenario(seed: int, villages: list[str]) -> list[Child]:
    """Children with records before, in and after the period, in random but reproducible ways."""
    rnd = random.Random(seed)
    out = []
    for _ in range(14):
        registered = date(2025, 5, 1) + timedelta(days=rnd.randrange(0, 170))  # some after the period ends
        c = Child(str(uuid.uuid4()), rnd.choice(villages), registered)
        day = registered
        for _ in range(rnd.randrange(0, 6)):
            day += timedelta(days=rnd.randrange(5, 40))
            kind = rnd.choice(["identification", "assessment", "referral", "followup", "visit_record", "closure"])
            due = (day + timedelta(days=rnd.choice([7, 14, 30, 90]))).isoformat()
            if kind == "identification":
                c.events.append(("identification", day, {"status": rnd.choice(["healthy", "watch", "refer"]),
                                                         "due": due}))
            elif kind == "assessment":
                c.events.append(("assessment", day, {"risk_level": rnd.choice(["green", "yellow", "orange", "red"]),
                                                     "due": due}))
            elif kind == "referral":
                consent = rnd.choice(["yes", "no"])
                values = {"record_type": "referral", "ref_consent": consent, "due": due}
                if consent == "yes":
                    values["referral_status"] = "referred"
                c.events.append(("referral_followup", day, values))
            elif kind == "followup":
                c.events.append(("referral_followup", day, {"record_type": "followup", "referral_status": "in_service",
                                                            "due": due}))
            elif kind == "visit_record":
                c.events.append(("visit_record", day, {}))
            else:
                c.events.append(("referral_followup", day, {"record_type": "closure", "status": "closed",
                                                            "referral_status": "closed"}))
                break
        out.append(c)
    # edge cases: closed before the period; closed in it after a red assessment; due on the last day
    early = Child(str(uuid.uuid4()), villages[0], date(2025, 5, 2))
    early.events = [("referral_followup", date(2025, 6, 20), {"record_type": "closure", "status": "closed"})]
    red = Child(str(uuid.uuid4()), villages[1], date(2025, 6, 1))
    red.events = [("assessment", date(2025, 7, 3), {"risk_level": "red", "due": "2025-07-10"}),
                  ("referral_followup", date(2025, 9, 30), {"record_type": "closure", "status": "closed"})]
    due_last_day = Child(str(uuid.uuid4()), villages[2], date(2025, 6, 2))
    due_last_day.events = [("identification", date(2025, 9, 1), {"status": "watch", "due": "2025-09-30"}),
                           ("assessment", date(2025, 10, 2), {"risk_level": "yellow", "due": "2025-10-09"})]
    return out + [early, red, due_last_day]


def expected(children: list[Child], start: date, end: date) -> dict[str, dict[str, int]]:
    """The report's definitions, applied to what the test sent (not to what the server stored)."""
    towns: dict[str, dict[str, int]] = {}
    for c in children:
        if c.registered > end:
            continue
        row = towns.setdefault(c.village[:9], {})

        def add(key: str, n: int = 1, row: dict[str, int] = row) -> None:
            row[key] = row.get(key, 0) + n

        def inside(d: date) -> bool:
            return start <= d <= end

        closes = [d for f, d, v in c.events if v.get("record_type") == "closure"]
        closed_by_end = any(d <= end for d in closes)
        add("new_files", int(inside(c.registered)))
        add("identified", int(any(f == "identification" and inside(d) for f, d, _ in c.events)))
        add("assessed", int(any(f == "assessment" and inside(d) for f, d, _ in c.events)))
        add("visited", int(any(f == "visit_record" and inside(d) for f, d, _ in c.events)))
        add("referred", int(any(v.get("record_type") == "referral" and v.get("ref_consent") == "yes" and inside(d)
                                for _, d, v in c.events)))
        add("followed_up", int(any(v.get("record_type") == "followup" and inside(d) for _, d, v in c.events)))
        add("closed", int(closed_by_end and not any(d < start for d in closes)))
        if not closed_by_end:
            add("on_file")
            levels = [v["risk_level"] for f, d, v in c.events if f == "assessment" and d <= end]
            add(f"risk_{levels[-1] if levels else 'unassessed'}")
            dues = [(c.registered, (c.registered + timedelta(days=30)).isoformat())]
            dues += [(d, v["due"]) for _, d, v in c.events if "due" in v and d <= end]
            add("overdue", int(dues[-1][1] < end.isoformat()))
    return towns


@pytest.fixture
def sent(app: Any, make_user: Any, publish: Any) -> list[Child]:
    publish(REGISTER, "register.md")
    for form in FORMS:
        publish(update_md(form), f"{form}.md")
    make_user("dolma", "collector", ["5401"])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    villages = ([r.code for r in regions.children("540102002")][:2]
                + [r.code for r in regions.children("540102003")][:1]
                + [r.code for r in regions.children("540121100")][:1])  # the last: another county
    children = scenario(7, villages)
    n = 0
    for c in children:
        n += 1
        post(phone, _xml_register(f"uuid:{uuid.uuid4()}", c))
        for version, (form, day, values) in enumerate(c.events, start=1):
            post(phone, _xml_update(f"uuid:{uuid.uuid4()}", form, c, day, values, base=version))
    return children


def browser(app: Any, make_user: Any, name: str, role: str, codes: list[str]) -> Browser:
    make_user(name, role, codes)
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")
    assert b.post("/language", {"lang": "en", "next": "/"}).status_code == 302
    return b


def table(html: str) -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    for town, body in re.findall(r'<tr data-town="(\w+)">(.*?)</tr>', html, re.S):
        rows[town] = {k: int(re.sub(r"<[^>]+>", "", v)) for k, v in
                      re.findall(r'<td class="num[^"]*" data-col="(\w+)"[^>]*>(.*?)</td>', body, re.S)}
    return rows


def test_county_report_equals_independent_counts(app: Any, make_user: Any, sent: list[Child]) -> None:
    want = expected([c for c in sent if c.village.startswith("540102")], PERIOD_START, PERIOD_END)
    assert sum(r.get("on_file", 0) for r in want.values()) > 3  # the scenario exercises the report
    b = browser(app, make_user, "mgr", "manager", ["540102"])
    resp = b.get("/reports?county=540102&period=2025-Q3")
    assert resp.status_code == 200
    page = unescape(resp.get_data(as_text=True))
    assert "拉萨市 城关区" in page and "八廓街道" in page and "Care-file report of" in page
    got = table(page)
    for town, counts in want.items():
        for key, n in counts.items():
            assert got[town][key] == n, (town, key)
    for key in ("on_file", "identified", "assessed", "referred", "followed_up", "closed", "risk_red"):
        assert got["total"][key] == sum(r.get(key, 0) for r in want.values()), key
    # a township with no child still has its row (zeros): the county reports every township
    assert got["540102013"]["on_file"] == 0

    xlsx = b.get("/reports/county.xlsx?county=540102&period=2025-Q3")
    assert xlsx.status_code == 200 and xlsx.headers["Content-Disposition"].endswith("report-540102-2025-Q3.xlsx")
    ws = load_workbook(io.BytesIO(xlsx.data)).active
    rows = list(ws.iter_rows(values_only=True))
    header = list(rows[3])
    sheet = {r[1]: dict(zip(header[2:], r[2:], strict=True)) for r in rows[4:] if r and r[1]}
    col = {"on_file": "Open files", "identified": "Identified", "risk_orange": "Orange", "closed": "Closed"}
    for town, counts in want.items():
        for key, label in col.items():
            assert sheet[town][label] == counts.get(key, 0), (town, key)


def test_month_report_and_scope(app: Any, make_user: Any, sent: list[Child]) -> None:
    august = expected([c for c in sent if c.village.startswith("540102")], date(2025, 8, 1), date(2025, 8, 31))
    town = browser(app, make_user, "pema", "manager", ["540102002"])
    page = unescape(town.get("/reports?county=540102&period=2025-08").get_data(as_text=True))
    got = table(page)
    assert set(got) == {"540102002", "total"}  # a township manager sees only the own township
    assert got["540102002"] == {k: august.get("540102002", {}).get(k, 0) for k in got["540102002"]}
    other = browser(app, make_user, "norbu", "manager", ["540121"])
    assert other.get("/reports?county=540102&period=2025-Q3").status_code == 404
    assert other.get("/reports/county.xlsx?county=540102&period=2025-Q3").status_code == 404
    bad = other.get("/reports?county=540121&period=2025-13")
    assert bad.status_code == 400 and "is not a period" in unescape(bad.get_data(as_text=True))
