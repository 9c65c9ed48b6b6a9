"""Property-based tests (hypothesis): whatever a client puts in OData options, $skiptoken values and
path ids, the answer is never a 5xx, and a 4xx carries an error body the client can read (JSON for
the API, OpenRosa XML for Collect, a page for the web). Both backends; deterministic (derandomize)."""
from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient
from tests.support.sample_forms import household_xml

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SVC = "/v1/projects/1/forms/household.svc"


def check_body(resp: Any, kind: str) -> None:
    """< 500, and a 4xx says what was wrong in the client's format. The one exception is ODK Central's
    documented 501 for OData features it does not implement either (501.1 unknown option, 501.5
    filter field, 501.6 $expand), which pyodk and BI tools expect: a JSON problem, never a crash."""
    if resp.status_code == 501 and kind == "json":
        assert str(resp.get_json()["code"]).startswith("501."), resp.data[:300]
        return
    assert resp.status_code < 500, (resp.status_code, resp.data[:500])
    if resp.status_code < 400 or resp.status_code in (401,):
        return
    if kind == "json":
        body = resp.get_json(silent=True)
        assert isinstance(body, dict) and body.get("message"), resp.data[:300]
    elif kind == "text":
        assert resp.data.strip(), "an empty error"
    elif kind == "xml":
        assert b"OpenRosaResponse" in resp.data or resp.content_type.startswith("application/json"), resp.data[:300]
    else:
        assert b"<html" in resp.data.lower(), resp.data[:300]


@pytest.fixture
def feeds(app: Any, make_user: Any, submit: Any) -> Any:
    for i in range(3):
        assert submit(household_xml(f"uuid:fz-{i}", members=[("mother", "30"), ("aunt", str(40 + i))])
                      ).status_code == 201
    make_user("fuzzadmin", "admin")
    client = app.test_client()
    token = client.post("/v1/sessions", json={"email": "fuzzadmin", "password": PASSWORD}).get_json()["token"]

    def get(url: str, **kw: Any) -> Any:
        return client.get(url, headers={"Authorization": f"Bearer {token}"}, **kw)

    return get


# ---------------------------------------------------------------- strategies

FIELDS = ["__id", "__system/submissionDate", "__system/updatedAt", "__system/submitterId",
          "__system/reviewState", "__system/deletedAt", "$root/Submissions/__id", "age", "nonsense"]
huge = st.integers(min_value=-(10**30), max_value=10**30)
literals = st.one_of(
    huge.map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.6f}"),
    st.text(max_size=12).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.dates().map(str),
    st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99))
    .map(lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}"),
    st.sampled_from(["null", "true", "false", "now()", "2026-01-01T25:61:00Z", "9999-12-31T23:59:59-12:00",
                     "2026-02-30", "1e30", "'2026-01-01'"]),
)
operands = st.one_of(st.sampled_from(FIELDS), literals,
                     st.builds(lambda fn, f: f"{fn}({f})", st.sampled_from(["year", "month", "second", "now"]),
                               st.sampled_from([*FIELDS, "1", ""])))

comparisons = st.builds(lambda a, op, b: f"{a} {op} {b}", operands,
                        st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "like", ""]), operands)
filters = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or", "nand"]), inner),
        inner.map(lambda e: f"not {e}"), inner.map(lambda e: f"({e})"),
        st.integers(1, 3000).map(lambda n: "(" * n + "__id eq 'x'" + ")" * n)),
    max_leaves=8,
) | st.text(max_size=60)

json_values = st.recursive(
    st.none() | st.booleans() | huge | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["at", "id", "row", "x"]), inner,
                                                                max_size=3),
    max_leaves=6,
)
skiptokens = st.one_of(
    json_values.map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")),
    st.fixed_dictionaries({"at": st.one_of(st.datetimes().map(str), st.text(max_size=30)), "id": json_values})
    .map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode()),
    st.text(max_size=40),
)
numbers = st.one_of(huge.map(str), st.text(max_size=8), st.sampled_from(["", "-0", "1.5", "1e3", " 7 "]))
options = st.fixed_dictionaries({}, optional={
    "$top": numbers, "$skip": numbers, "$skiptoken": skiptokens, "$filter": filters,
    "$select": st.lists(st.sampled_from(["__id", "age", "meta/instanceID", "__system", "x/y/z", ""]) | st.text(
        max_size=10), max_size=4).map(",".join),
    "$orderby": st.text(max_size=20), "$count": st.sampled_from(["true", "false", "1", ""]),
    "$wkt": st.sampled_from(["true", "false", "x"]), "$expand": st.sampled_from(["*", "members", ""]),
    "$format": st.sampled_from(["json", "xml", ""]), "$search": st.text(max_size=10),
})


@FUZZ
@given(table=st.sampled_from(["Submissions", "Submissions.members", "Nope"]), query=options)
def test_odata_options_never_5xx(feeds: Any, table: str, query: dict[str, str]) -> None:
    check_body(feeds(f"{SVC}/{table}", query_string=query), "json")


@FUZZ
@given(query=options)
def test_entity_feed_options_never_5xx(feeds: Any, query: dict[str, str]) -> None:
    query.pop("$wkt", None)
    query.pop("$expand", None)
    check_body(feeds("/v1/projects/1/datasets/children.svc/Entities", query_string=query), "json")


@FUZZ
@given(token=skiptokens, table=st.sampled_from(["Submissions", "Submissions.members"]))
def test_skiptokens_never_5xx(feeds: Any, token: str, table: str) -> None:
    resp = feeds(f"{SVC}/{table}", query_string={"$skiptoken": token, "$top": "2"})
    check_body(resp, "json")
    if resp.status_code == 400:
        assert resp.get_json()["code"] in (400.35, 400.11)  # 400.11: control characters, refused first


# ---------------------------------------------------------------- every route's path ids

ids = st.one_of(st.integers(0, 10**30).map(str), st.text(max_size=20),
                st.sampled_from(["household", "uuid:fz-1", "..", "%00", "a/b", "children", "1"]))


def _routes(app: Any) -> list[tuple[str, str, list[tuple[str, str]]]]:
    out = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "web.logout"):
            continue
        args = [(name, type(conv).__name__) for name, conv in rule._converters.items()]
        out.append((rule.rule, rule.endpoint, args))
    return sorted(out)


@pytest.fixture
def web(app: Any, feeds: Any) -> Browser:
    browser = Browser(app)
    browser.login("fuzzadmin")
    return browser


@FUZZ
@given(data=st.data())
def test_path_ids_never_5xx(app: Any, feeds: Any, web: Browser, data: Any) -> None:
    routes = _routes(app)
    rule, endpoint, args = data.draw(st.sampled_from(routes))
    url = rule
    for name, conv in args:
        if conv == "AnyConverter":
            value = data.draw(st.sampled_from(["xml", "source", "other"]))
        elif conv in ("BoundedInt", "IntegerConverter"):
            value = data.draw(st.integers(0, 10**30).map(str))
        else:
            value = quote(data.draw(ids), safe="" if conv != "PathConverter" else "/")
        url = re.sub(r"<[^>]*\b" + name + ">", lambda _m, v=value: v, url)  # noqa: B023
    kind = "json" if url.startswith("/v1/") and not endpoint.startswith("openrosa.") else \
        "xml" if endpoint.startswith("openrosa.") else "text" if endpoint.startswith("ops.") else "html"
    if kind in ("html", "text"):  # ops routes (/metrics, /readyz) answer Prometheus and probes in plain text
        resp = web.get(url)
    elif kind == "xml":
        resp = DigestClient(app.test_client(), "fuzzadmin", PASSWORD).get(url)
    else:
        resp = feeds(url)
    check_body(resp, kind)
