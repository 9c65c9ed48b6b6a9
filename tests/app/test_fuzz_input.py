"""Property-based tests (hypothesis) of what people and phones send: web query strings on every
list page, API query strings, and submission XML (mutated answers, encodings, broken bytes).
Never a 5xx; a 4xx has a page (web), a JSON problem (API) or an OpenRosa message (Collect); an
accepted submission stores the answer as sent. Both backends; deterministic (derandomize)."""
from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.models import Submission, SubmissionVersion
from tests.app.conftest import PASSWORD
from tests.app.api.test_fuzz_api import check_body
from tests.app.web_helpers import Browser
from tests.support.sample_forms import household_xml

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

PAGES = ["/submissions/household", "/children", "/audit", "/dashboard", "/exports", "/users", "/forms",
         "/collectors", "/submissions", "/submissions/household/uuid:q-1"]
KEYS = ["after", "from", "to", "region", "review_state", "submitter", "size", "page", "q", "risk_level",
        "status", "overdue", "action", "user", "target", "before_id", "role", "version", "next", "lang"]
EDGES = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**20, 10**30]  # where drivers overflow
ints = st.one_of(st.integers(-(10**30), 10**30), st.sampled_from(EDGES))
values = st.one_of(
    st.text(max_size=30),
    ints.map(str),
    st.tuples(ints, ints).map(lambda t: f"{t[0]}.{t[1]}"),
    st.sampled_from(["1.99999999999999999999999", "2026-13-45", "0000-00-00", "9999-12-31", "54", "%", "_",
                     "'; DROP TABLE submission; --", "\u0000", "１２", "١٢٣", "2026-02-29", "-1", "1e308"]),
)
queries = st.one_of(
    st.builds(lambda k, v: {k: v}, st.sampled_from(KEYS), values),  # one parameter: nothing else fails first
    st.fixed_dictionaries({}, optional={k: values for k in KEYS}),
    st.dictionaries(st.text(max_size=8), values, max_size=2))
PAGE_FUZZ = settings(FUZZ, max_examples=40)


@pytest.fixture
def site(app: Any, make_user: Any, submit: Any) -> Any:
    assert submit(household_xml("uuid:q-1")).status_code == 201
    make_user("fuzzboss", "admin")
    make_user("fuzzmgr", "manager", ["540102"])
    admin, manager = Browser(app), Browser(app)
    admin.login("fuzzboss")
    manager.login("fuzzmgr")
    api = app.test_client()
    token = api.post("/v1/sessions", json={"email": "fuzzmgr", "password": PASSWORD}).get_json()["token"]
    return admin, manager, api, token


@pytest.mark.parametrize("page", PAGES)
@PAGE_FUZZ
@given(query=queries, as_admin=st.booleans())
def test_web_query_strings_never_5xx(site: Any, page: str, query: dict[str, str], as_admin: bool) -> None:
    admin, manager, _, _ = site
    resp = (admin if as_admin else manager).get(page, query_string=query)
    check_body(resp, "html")


API_PAGES = ["/v1/projects/1/children", "/v1/projects/1/children/overdue", "/v1/projects/1/forms",
             "/v1/projects/1/forms/household/submissions", "/v1/projects/1/exports",
             "/v1/projects/1/forms/household/submissions.csv.zip", "/v1/projects/1/datasets/children/entities"]


@FUZZ
@given(page=st.sampled_from(API_PAGES), query=st.dictionaries(
    st.sampled_from(["q", "region", "risk_level", "status", "overdue", "groupPaths", "splitSelectMultiples",
                     "attachments", "from", "to", "review_states", "labels", "form_version"]), values, max_size=4))
def test_api_query_strings_never_5xx(site: Any, page: str, query: dict[str, str]) -> None:
    _, _, api, token = site
    resp = api.get(page, query_string=query, headers={"Authorization": f"Bearer {token}"})
    check_body(resp, "json")


# ---------------------------------------------------------------- submission XML

answers = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
mutations = st.sampled_from(["none", "truncate", "flip", "latin1", "utf16", "bad-decl", "dup-root", "doctype"])


def _mutate(xml: bytes, how: str, at: int) -> bytes:
    if how == "truncate":
        return xml[: at % max(len(xml), 1)]
    if how == "flip":
        i = at % len(xml)
        return xml[:i] + bytes([xml[i] ^ 0xFF]) + xml[i + 1:]
    if how == "latin1":
        text = xml.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>')
        return text.encode("latin-1", errors="replace")
    if how == "utf16":
        return xml.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>') \
            .encode("utf-16")
    if how == "bad-decl":
        return xml.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="utf-9"?>')
    if how == "dup-root":
        return xml + xml
    if how == "doctype":
        return xml.replace(b"<data ", b'<!DOCTYPE d [<!ENTITY e "x">]><data ', 1)
    return xml


@FUZZ
@given(name=answers, age=st.one_of(st.integers(-(10**30), 10**30).map(str), answers),
       village=st.one_of(st.integers(0, 10**20).map(str), answers), how=mutations, at=st.integers(0, 10**6),
       n=st.integers(0, 10**9))
def test_submission_xml_never_5xx(submit: Any, rt: Any, name: str, age: str, village: str, how: str, at: int,
                                  n: int) -> None:
    assume("\r" not in name)  # XML normalises CR line ends: not the value as sent
    iid = f"uuid:fuzz-{n}-{at}-{how}"
    xml = household_xml(iid, name=escape(name), age=escape(age), village=escape(village))
    resp = submit(_mutate(xml, how, at))
    check_body(resp, "xml")
    if resp.status_code == 201 and how == "none":
        with rt.db.session() as s:
            sv = s.scalars(select(SubmissionVersion).join(Submission, Submission.current_version_id ==
                                                          SubmissionVersion.id)
                           .where(Submission.instance_id == iid)).one()
            assert sv.data.get("child_name") == (name or None)
