"""Every route × every role × own / foreign region, generated from the URL map.

Each view declares who may call it (app/routeaccess.py). This test walks `app.url_map`, so a new
route is covered without anyone adding it here: a route that declares nothing fails; for each
declared route and each user it builds the request from the rule's variables, with the records
of the user's own county and of the other one, and checks
- a role the route does not admit is refused (401/403/404, or the sign-in page),
- an admitted role never gets a 5xx, and gets 404 for the other county's records,
- every answer says `Cache-Control: no-store` (pages behind sign-in, API and Collect answers, files),
- no response body holds another county's child (name, label, id, instanceID), and a user who
  may not see identifying details never gets any of them — the child's name, the label built from it,
  ID number, guardian, guardian's phone, the instance name built from the name, the photo — on any
  route, in any format (JSON, HTML, CSV, XLSX, ZIP).
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.routing import Rule

from app.routeaccess import declared
from tests.app.access.access_world import (
    PHOTO_A,
    PHOTO_B,
    USERS,
    World,
    basic,
    build_world,
    post_submission,
    visit_xml,
)
from tests.app.web_helpers import Browser

# Variables whose value names a record of one county: a foreign value must answer 404.
SCOPED_VARS = {"instance_id", "uid", "job_id", "held_id", "username"}
REFUSED = {401, 403, 404, 405}


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "ALLOW_BASIC_OVER_HTTP": True, "EXPORT_WORKER": "false"}


@pytest.fixture
def world(app: Any, rt: Any, publish: Any) -> World:
    return build_world(app, rt, publish)


def rules(app: Any) -> Iterator[Rule]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint != "static":
            yield rule


def test_every_route_declares_its_access(app: Any) -> None:
    missing = [f"{r.endpoint} {r.rule}" for r in rules(app) if declared(app.view_functions[r.endpoint]) is None]
    assert not missing, "routes without an access declaration (app/routeaccess.py):\n" + "\n".join(missing)


def _values(rule: Rule, world: World, user: str, foreign: bool) -> dict[str, Any]:
    """URL variables for this rule: the user's own county's records, or the other county's."""
    own_b = user.endswith("_b")
    side = (world.a if not foreign else world.b) if not own_b else (world.b if not foreign else world.a)
    out: dict[str, Any] = {}
    for name in rule.arguments:
        if name == "project_id":
            out[name] = 1
        elif name in ("xml_form_id", "form_id"):
            out[name] = "reg"
        elif name == "instance_id":
            out[name] = side.instance
        elif name == "uid":
            out[name] = side.child
        elif name == "job_id":
            out[name] = side.job_id
        elif name == "held_id":
            out[name] = side.held_id
        elif name == "username":
            out[name] = side.collector
        elif name == "user_id":
            out[name] = world.user_ids["col_a" if not foreign else "col_b"]
        elif name == "name":
            out[name] = "children" if "/datasets/" in rule.rule else "p.jpg"
        elif name == "table":
            out[name] = "Entities" if "/datasets/" in rule.rule else "Submissions"
        elif name == "token":
            out[name] = world.tokens.get(user, "0" * 64) if "/key/" in rule.rule else "not-a-session-token"
        elif name == "version_id":
            out[name] = world.version_id
        elif name == "what":
            out[name] = "source"
        elif name == "filename":
            out[name] = "nothing.csv"
        elif "Integer" in type(rule._converters.get(name)).__name__ or "Int" in type(rule._converters.get(name)).__name__:
            out[name] = 987654  # an id that names nothing
        else:
            out[name] = "x"
    return out


def _value_sets(rule: Rule, world: World, user: str, foreign: bool) -> list[dict[str, Any]]:
    """The rule's URL variables; for a website's form file (the browser's renderer: fill, try, edit) also the
    visit form's children.csv, the list of children as a page gets it (labels redacted for the reader)."""
    base = _values(rule, world, user, foreign)
    out = [base]
    if rule.endpoint.startswith("web.") and "filename" in base and "xml_form_id" in base:
        out.append({**base, "xml_form_id": "visit", "filename": "children.csv"})
    return out


def _url(app: Any, rule: Rule, values: dict[str, Any]) -> str:
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        return str(adapter.build(rule.endpoint, values, force_external=False, append_unknown=False))


class Caller:
    """Sends requests as one user, the way that user's client would (web session, API, Collect)."""

    def __init__(self, app: Any, user: str | None) -> None:
        self.app, self.user = app, user
        self.api = app.test_client()
        self.web = Browser(app)
        if user and USERS[user][0] != "collector":
            assert self.web.login(user).status_code == 302
            self.web.get("/")

    def send(self, rule: Rule, url: str, method: str) -> Any:
        web = rule.endpoint.startswith("web.")
        if web:
            if method == "GET":
                return self.web.get(url)
            return self.web.post(url, {}) if method == "POST" else self.web.client.open(url, method=method)
        headers = basic(self.user) if self.user and "/key/" not in rule.rule else {"X-OpenRosa-Version": "1.0"}
        kwargs: dict[str, Any] = {"headers": headers}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = {}
        return self.api.open(url, method=method, **kwargs)


def _body(resp: Any) -> bytes:
    data: bytes = resp.get_data()
    if resp.headers.get("Content-Type", "").startswith("application/zip"):
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as z:
            data += b"".join(z.read(n) for n in z.namelist())
    return data


def _json_escaped(value: bytes) -> bytes:
    """How a text appears inside a JSON string (non-ASCII as \\uXXXX)."""
    try:
        return json.dumps(value.decode())[1:-1].encode()
    except UnicodeDecodeError:
        return value


def _forbidden_values(world: World, user: str | None) -> list[bytes]:
    """What this user must never receive."""
    if user is None:
        return [v.encode() for v in world.a.secrets + world.b.secrets]
    role, regions, sensitive = USERS[user]
    if role == "admin":
        return []
    own = world.b if user.endswith("_b") else world.a
    other = world.a if own is world.b else world.b
    out = other.secrets + ([] if regions else own.secrets)
    if not (sensitive or role == "coordinator"):
        out += own.identifying  # the name, the label built from it, ID number, guardian, phone, instance name
    found = [v.encode() for v in out]
    if not (sensitive or role == "coordinator"):
        found.append(PHOTO_A if own is world.a else PHOTO_B)
    found.append(PHOTO_B if own is world.a else PHOTO_A)
    return found


SCRIPT_TAG = re.compile(rb"<script\b([^>]*)>", re.I)
INLINE_HANDLER = re.compile(rb"<[^>]+\son[a-z]+\s*=", re.I)


def _script_policy_problems(resp: Any) -> list[str]:
    """A page runs only this server's scripts and inline scripts carrying the request's nonce: the CSP's
    script-src has no 'unsafe-inline', every inline <script> carries the nonce, and no tag has an on…= handler."""
    csp = resp.headers.get("Content-Security-Policy", "")
    scripts = next((d.strip() for d in csp.split(";") if d.strip().startswith("script-src")), "")
    if not scripts or "'unsafe-inline'" in scripts:
        return [f"script-src is {scripts!r}"]
    nonce = re.search(r"'nonce-([^']+)'", scripts)
    body = resp.get_data()
    out = []
    for attrs in SCRIPT_TAG.findall(body):
        if b"src=" not in attrs and (nonce is None or f'nonce="{nonce.group(1)}"'.encode() not in attrs):
            out.append(f"an inline <script{attrs.decode(errors='replace')}> without the request's nonce")
    if b"data-print" in body and b"/static/app.js" not in body:
        out.append("a print button (data-print) without app/static/app.js, which makes it work")
    if INLINE_HANDLER.search(body):
        out.append(f"an inline event handler: {INLINE_HANDLER.search(body).group(0)[:80]!r}")  # type: ignore[union-attr]
    return out


def _admitted(roles: tuple[str, ...], user: str | None) -> bool:
    if not roles:
        return True
    return user is not None and USERS[user][0] in roles


CALLERS = [None, "root", "coord_a", "coord_none", "mgr_a", "mgr_s", "mgr_none", "col_a"]


@pytest.mark.parametrize("user", CALLERS, ids=[u or "anonymous" for u in CALLERS])
def test_route_matrix(app: Any, world: World, user: str | None) -> None:
    caller = Caller(app, user)
    problems: list[str] = []
    forbidden = _forbidden_values(world, user)
    for rule in rules(app):
        spec = declared(app.view_functions[rule.endpoint])
        assert spec is not None
        admitted = _admitted(spec.roles, user)
        scoped = bool(SCOPED_VARS & set(rule.arguments)) and "/key/" not in rule.rule and rule.endpoint not in (
            "api.end_session",) and (user is None or USERS[user][0] != "admin")  # admins are unscoped
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            variants = [False, True] if scoped else [False]
            for foreign in variants:
                if method != "GET" and admitted and not foreign:
                    continue  # writes with own records change the world: see test_answers_to_case_work_are_redacted
                for values in _value_sets(rule, world, user or "anon", foreign):
                    url = _url(app, rule, values)
                    if rule.rule == "/logout" or (rule.rule == "/login" and method == "POST"):
                        continue  # would end or replace this caller's session
                    resp = caller.send(rule, url, method)
                    where = f"{method} {url} as {user or 'anonymous'}"
                    if resp.status_code >= 500:
                        problems.append(f"{where}: {resp.status_code}")
                        continue
                    if "no-store" not in resp.headers.get("Cache-Control", ""):  # every answer may be personal
                        problems.append(f"{where}: Cache-Control {resp.headers.get('Cache-Control')!r}, not no-store")
                    if resp.mimetype == "text/html" and rule.endpoint.startswith("web."):
                        problems += [f"{where}: {p}" for p in _script_policy_problems(resp)]
                    if not admitted:
                        refused = resp.status_code in REFUSED or (
                            resp.status_code == 302 and "/login" in resp.headers.get("Location", "")) or (
                            resp.status_code == 400 and method != "GET")  # a web write without its CSRF token
                        if not refused:
                            problems.append(f"{where}: {resp.status_code}, but the route admits only {spec.roles}")
                    elif foreign and resp.status_code not in (404, 400) and not (
                            method != "GET" and resp.status_code in (403, 405)):
                        problems.append(f"{where}: {resp.status_code} for the other county's record (expected 404)")
                    if 200 <= resp.status_code < 300:
                        body = _body(resp)
                        leaked = [v.decode(errors="replace")[:20] for v in forbidden
                                  if v in body or _json_escaped(v) in body]
                        if leaked:
                            problems.append(f"{where}: the body holds {leaked}")
    assert not problems, "\n".join(problems)


def test_matrix_sees_own_records(app: Any, world: World) -> None:
    """The matrix is not vacuous: an admitted user gets the own county's records."""
    caller = Caller(app, "coord_a")
    page = caller.web.get(f"/submissions/reg/{world.a.instance}").get_data(as_text=True)
    assert world.a.name in page and world.b.name not in page
    mgr = Caller(app, "mgr_a")
    page = mgr.web.get(f"/submissions/reg/{world.a.instance}").get_data(as_text=True)
    assert world.a.instance in page and world.a.name not in page and "***" in page
    resp = mgr.api.get(f"/v1/projects/1/children/{world.a.child}", headers=basic("mgr_a"))
    assert resp.status_code == 200 and re.fullmatch(r"儿童 [0-9A-F]{4}", resp.get_json()["child"]["label"])


# Routes that change a form (or show its draft, which carries the test token): everything under a form's
# id except reading its published versions and files, its records, assignments (collector management), the
# browser's fill pages, and the files the draft's renderer reads as the caller's own phone would.
NOT_FORM_CHANGES = ("/submissions", "/assignments", "/fill", "/v1/test/", "/v1/key/", "/draft/try/files/")


def _changes_a_form(rule: Rule, method: str) -> bool:
    if "<xml_form_id>" not in rule.rule or any(part in rule.rule for part in NOT_FORM_CHANGES):
        return False
    return method != "GET" or "/draft" in rule.rule


def test_form_changes_need_the_forms_reach(app: Any, rt: Any, world: World, make_user: Any) -> None:
    """A coordinator of one county may not publish, draft, upload files for or change the state of a form
    that reaches every collector (access.require_form_change): every such route, generated from the URL map,
    answers 403 — on the website, Central's API and the draft routes; a province's coordinator is let in."""
    from app.services import forms

    with rt.db.write() as s:
        form = forms.get_form(s, 1, "reg")
        assert form.current_version is not None
        forms.draft_from_published(s, rt.store, form, user=None, key=rt.config["SECRET_KEY"])
    make_user("coord_p", "coordinator", ["54"])
    county, province = Caller(app, "coord_a"), Caller(app, None)
    province.user = "coord_p"
    checked: list[str] = []
    problems: list[str] = []
    for rule in rules(app):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if not _changes_a_form(rule, method):
                continue
            url = _url(app, rule, _values(rule, world, "coord_a", False))
            resp = county.send(rule, url, method)
            checked.append(f"{method} {rule.rule}")
            if resp.status_code != 403:
                problems.append(f"{method} {url} as a county's coordinator: {resp.status_code} (expected 403)")
    assert len(checked) >= 15, checked  # the web's and the API's draft, files, state and publish routes
    assert not problems, "\n".join(problems)
    # not vacuous: the province's coordinator reads the draft (its test token) and may change the state
    draft = province.api.get("/v1/projects/1/forms/reg/draft", headers=basic("coord_p"))
    assert draft.status_code == 200 and draft.get_json()["draftToken"]
    assert county.api.get("/v1/projects/1/forms/reg/draft", headers=basic("coord_a")).get_json()["code"] == 403.77
    state = province.api.patch("/v1/projects/1/forms/reg", json={"state": "closing"}, headers=basic("coord_p"))
    assert state.status_code == 200 and state.get_json()["state"] == "closing"


def test_matrix_sees_the_lists_that_carry_children(app: Any, world: World) -> None:
    """Not vacuous either: the turning-18 list, the browser's children.csv and the entity's diffs hold the
    county's child, by label for a reader with the grant and by pseudonym for one without (the matrix checks
    every route). A visit renames the child first (the label in its entity block), so the diffs carry labels."""
    pseudonym = f"儿童 {world.a.child.replace('-', '')[:4].upper()}"
    renamed = visit_xml(f"uuid:{uuid.uuid4()}", world.a.child, 1, label=f"{world.a.label}（{world.a.name[0]}家）")
    assert post_submission(app.test_client(), "col_a", renamed).status_code == 201
    named, plain = Caller(app, "mgr_s"), Caller(app, "mgr_a")
    for caller, user, shown, hidden in ((named, "mgr_s", world.a.label, pseudonym),
                                        (plain, "mgr_a", pseudonym, world.a.label)):
        soon = caller.api.get("/v1/projects/1/children/turning18", headers=basic(user)).get_json()
        assert len(soon) == 1 and soon[0]["label"].startswith(shown)
        page = caller.web.get("/children/turning18").get_data(as_text=True)
        assert shown in page and hidden not in page
        csv = caller.web.get("/forms/visit/fill/files/children.csv")
        assert csv.status_code == 200 and shown in csv.get_data(as_text=True)
        assert hidden not in csv.get_data(as_text=True)
        diffs = caller.api.get(f"/v1/projects/1/datasets/children/entities/{world.a.child}/diffs", headers=basic(user))
        labels = [d for d in diffs.get_json()[0] if d["propertyName"] == "label"]
        if user == "mgr_a":  # the same pseudonym before and after: no label change to show
            assert diffs.status_code == 200 and not labels and world.a.label not in diffs.get_data(as_text=True)
        else:
            assert labels[0]["old"] == world.a.label != labels[0]["new"], labels
        file = json.dumps(caller.api.get(f"/v1/projects/1/children/{world.a.child}", headers=basic(user)).get_json(),
                          ensure_ascii=False)
        assert (world.a.label in file) == (user == "mgr_s")  # the visit's entity block too


CASE_WORK_BODY = {"reason": "other", "note": "matrix", "into": "", "other": ""}
VILLAGES = ("540102002002", "540102002003")


@pytest.mark.parametrize("user", ["mgr_a", "mgr_none"])
def test_answers_to_case_work_are_redacted(app: Any, world: World, user: str) -> None:
    """The writes the route matrix skips (own records, admitted roles), sent as a reader not entitled to
    identifying details, with a body carrying every field case work reads: every POST route naming a child,
    generated from the URL map (API and website), in path order (close, reopen, transfer); no answer holds the
    child's label, name or any identifying value, none is a 5xx, and the case work was done."""
    caller = Caller(app, user)
    forbidden = _forbidden_values(world, user)
    problems, done, moves = [], [], 0
    for rule in rules(app):
        if "<uid>" not in rule.rule or "POST" not in (rule.methods or set()):
            continue
        spec = declared(app.view_functions[rule.endpoint])
        assert spec is not None
        if not _admitted(spec.roles, user):
            continue
        url = _url(app, rule, _values(rule, world, user, False))
        moves += rule.rule.endswith("/transfer")
        body_sent = {**CASE_WORK_BODY, "village": VILLAGES[(moves + 1) % 2]}  # away, back, away
        if rule.endpoint.startswith("web."):
            caller.web.get(f"/children/{world.a.child}")
            resp = caller.web.post(url, body_sent)
        else:
            resp = caller.api.post(url, json=body_sent, headers=basic(user))
        where = f"POST {url} as {user}"
        if resp.status_code >= 500:
            problems.append(f"{where}: {resp.status_code}")
            continue
        if resp.status_code != 200:  # the website redirects to the child's page (checked by the matrix)
            continue
        done.append(rule.rule.rsplit("/", 1)[-1])
        body = _body(resp)
        leaked = [v.decode(errors="replace")[:20] for v in forbidden if v in body or _json_escaped(v) in body]
        if leaked:
            problems.append(f"{where}: the body holds {leaked}")
    assert not problems, "\n".join(problems)
    if user == "mgr_a":  # the county's child: closed, reopened and moved through the API
        assert {"close", "reopen", "transfer"} <= set(done), done
