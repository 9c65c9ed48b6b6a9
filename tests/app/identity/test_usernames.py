"""User names are unique without regard to case (issue 19, Build 7): `Admin` cannot be made beside `admin` —
web users, app users, collectors — and web and API sign-in find the account whatever the case typed."""
from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from app.errors import Problem
from app.migrate import alembic_config, upgrade
from app.services.identity import signin
from app.services.identity import users as user_service
from tests.app.web_helpers import Browser
from tests.support.api_client import PASSWORD, ApiClient

UNREFLECTED_INDEX = "ignore:Skipped unsupported reflection of expression-based index"


def test_a_name_differing_only_by_case_is_refused_everywhere(app: Any, rt: Any, make_user: Any) -> None:
    make_user("admin", "admin")
    make_user("tashi", "collector", ["540102002001"])
    with rt.db.write() as s, pytest.raises(Problem) as exc:
        user_service.create_user(s, project_id=1, username="Admin", role="manager", password=PASSWORD,
                                 realm="CareFile")
    assert exc.value.status == 409 and "'admin'" in exc.value.message and "case" in exc.value.message
    api = ApiClient(app, "admin")
    resp = api.post("/v1/projects/1/app-users", json={"displayName": "Tashi", "username": "TASHI",
                                                       "regions": ["540102002001"]})
    assert resp.status_code == 409 and "'tashi'" in resp.get_json()["message"]
    web = Browser(app)
    assert web.login("admin").status_code == 302
    web.get("/")
    page = web.post("/users/new", {"username": "Tashi", "role": "manager", "password": "a good password",
                                   "repeat": "a good password"})
    assert page.status_code in (400, 409)
    page = web.post("/collectors/new", {"username": "ADMIN", "password": "a good password",
                                        "regions": "540102002001"})
    assert page.status_code == 400
    with rt.db.session() as s:
        names = sorted(n for (n,) in s.execute(text("SELECT username FROM user_account")))
    assert names == ["admin", "tashi"]


def test_sign_in_ignores_case_and_so_does_the_throttle(app: Any, rt: Any, make_user: Any) -> None:
    make_user("Dolma", "coordinator", ["5401"])
    assert app.test_client().post("/v1/sessions", json={"email": "dolma", "password": PASSWORD}).status_code == 200
    assert Browser(app).login("DOLMA").status_code == 302
    client = app.test_client()
    for name in ["dolma", "Dolma", "DOLMA", "dOlma", "doLMA"][:signin.PAIR_FREE]:
        assert client.post("/v1/sessions", json={"email": name, "password": "wrong one"}).status_code == 401
    assert client.post("/v1/sessions", json={"email": "DoLmA", "password": PASSWORD}).status_code == 429


@pytest.mark.filterwarnings(UNREFLECTED_INDEX)
def test_the_migration_names_clashing_accounts(rt: Any, make_user: Any) -> None:
    make_user("nima", "manager", ["5401"])
    cfg = alembic_config(rt.db.engine.url.render_as_string(hide_password=False))
    with rt.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0023")
    with rt.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO user_account (project_id, username, display_name, role, password_hash, "
                          "digest_ha1, active, sees_sensitive, language, created_at) SELECT project_id, 'Nima', "
                          "display_name, role, password_hash, digest_ha1, active, sees_sensitive, language, "
                          "created_at FROM user_account WHERE username = 'nima'"))
    with pytest.raises(RuntimeError, match="nima"):
        upgrade(rt.db.engine)
    with rt.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM user_account WHERE username = 'Nima'"))
    upgrade(rt.db.engine)
