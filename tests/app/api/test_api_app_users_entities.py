"""Central's app users (our collectors), form assignments, entity-list writes, and the small things
(/version.txt, /v1/roles, X-Extended-Metadata) — with roles and regions."""
from __future__ import annotations

from typing import Any

import pytest

from tests.app.conftest import submission_body
from tests.support.api_client import ApiClient
from tests.support.entity_forms import REGISTER_MD, register_xml

CHILD = "00000000-0000-4000-8000-0000000000c1"
FAR_CHILD = "00000000-0000-4000-8000-0000000000c2"
ENTITIES = "/v1/projects/1/datasets/children/entities"


@pytest.fixture
def coord(login: Any, household: Any) -> ApiClient:
    return login("dawa", "coordinator", ["540102"])


def test_version_roles_and_current_user(app: Any, coord: ApiClient) -> None:
    txt = app.test_client().get("/version.txt")
    assert txt.status_code == 200 and txt.mimetype == "text/plain"
    assert txt.get_data(as_text=True).startswith("versions:\n")
    roles = {r["system"]: r["id"] for r in coord.get("/v1/roles").get_json()}
    assert roles["app-user"] == 2
    me = coord.get("/v1/users/current", headers={"X-Extended-Metadata": "true"}).get_json()
    assert me["email"] == "dawa" and "entity.update" in me["verbs"] and "user.create" not in me["verbs"]


def test_extended_metadata(coord: ApiClient, submit: Any) -> None:
    assert submit().status_code == 201  # village 540102002201: the coordinator's region
    plain = coord.get("/v1/projects/1/forms/household").get_json()
    assert "submissions" not in plain
    ext = coord.get("/v1/projects/1/forms/household", headers={"X-Extended-Metadata": "true"}).get_json()
    assert ext["submissions"] == 1 and ext["reviewStates"] == {"received": 1, "hasIssues": 0, "edited": 0}
    assert ext["lastSubmission"] is not None and ext["entityRelated"] is False
    (project,) = coord.get("/v1/projects", headers={"X-Extended-Metadata": "true"}).get_json()
    assert project["forms"] == 1 and project["appUsers"] == 1 and project["lastSubmission"] == ext["lastSubmission"]


def test_app_users_and_assignments(coord: ApiClient, login: Any, app: Any) -> None:
    made = coord.post("/v1/projects/1/app-users", json={"displayName": "Yangzom"})
    assert made.status_code == 200, made.get_data(as_text=True)
    au = made.get_json()
    assert au["type"] == "field_key" and len(au["token"]) == 64 and au["regions"] == ["540102"]
    # the token works as a Collect server URL at once
    form_list = app.test_client().get(f"/v1/key/{au['token']}/projects/1/formList",
                                      headers={"X-OpenRosa-Version": "1.0"})
    assert form_list.status_code == 200 and b"household" in form_list.data
    assert au["id"] in [u["id"] for u in coord.get("/v1/projects/1/app-users").get_json()]
    outside = coord.post("/v1/projects/1/app-users", json={"displayName": "X", "regions": ["540121"]})
    assert outside.status_code == 403
    narrowed = coord.post("/v1/projects/1/app-users", json={"displayName": "Nima", "regions": ["540102002001"]})
    assert narrowed.get_json()["regions"] == ["540102002001"]

    assign = coord.post(f"/v1/projects/1/forms/household/assignments/2/{au['id']}")
    assert assign.status_code == 200 and assign.get_json() == {"success": True}
    assert coord.post(f"/v1/projects/1/forms/household/assignments/app-user/{au['id']}").status_code == 409
    assert coord.get("/v1/projects/1/forms/household/assignments").get_json() == [{"actorId": au["id"], "roleId": 2}]
    assert coord.delete(f"/v1/projects/1/forms/household/assignments/app-user/{au['id']}").status_code == 200
    assert coord.get("/v1/projects/1/forms/household/assignments").get_json() == []

    # a coordinator elsewhere does not see or delete this collector
    other = login("lobsang", "coordinator", ["540121"])
    assert au["id"] not in [u["id"] for u in other.get("/v1/projects/1/app-users").get_json()]
    assert other.delete(f"/v1/projects/1/app-users/{au['id']}").status_code == 404
    manager = login("mgr", "manager", ["540102"])
    assert manager.get("/v1/projects/1/app-users").status_code == 403

    assert coord.delete(f"/v1/projects/1/app-users/{au['id']}").status_code == 200
    gone = app.test_client().get(f"/v1/key/{au['token']}/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert gone.status_code in (401, 403)
    assert au["id"] not in [u["id"] for u in coord.get("/v1/projects/1/app-users").get_json()]


@pytest.fixture
def children(rt: Any, publish: Any, collect: Any, login: Any) -> ApiClient:
    publish(REGISTER_MD, "register.md")
    for instance, uid, name, village in (("uuid:r1", CHILD, "Dolkar", "540102002201"),
                                         ("uuid:r2", FAR_CHILD, "Tenzin", "540121100201")):
        body = submission_body(register_xml(instance, uid, name, village))
        resp = collect.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")
        assert resp.status_code == 201
    return login("dawa", "coordinator", ["540102"])


def test_entity_writes(children: ApiClient, login: Any, app: Any) -> None:
    api = children
    created = api.post(ENTITIES, json={"label": "Pema", "data": {"village": "540102002202", "status": "new"}})
    assert created.status_code == 200, created.get_data(as_text=True)
    pema = created.get_json()
    assert pema["currentVersion"]["version"] == 1 and isinstance(pema["creatorId"], int)
    uid = pema["uuid"]
    # Central's rules: unknown property, non-string value, outside my regions
    assert api.post(ENTITIES, json={"label": "X", "data": {"nope": "1"}}).get_json()["code"] == 400.28
    assert api.post(ENTITIES, json={"label": "X", "data": {"village": 540102}}).status_code == 400
    assert api.post(ENTITIES, json={"label": "X", "data": {"village": "540121100201"}}).status_code == 403
    assert api.post(ENTITIES, json={"uuid": CHILD, "label": "Dup", "data": {"village": "540102002201"}}
                    ).get_json()["code"] == 409.3

    conflict = api.patch(f"{ENTITIES}/{uid}?baseVersion=3", json={"data": {"status": "watch"}})
    assert conflict.status_code == 409 and conflict.get_json()["code"] == 409.15
    upd = api.patch(f"{ENTITIES}/{uid}?baseVersion=1", json={"data": {"status": "watch"}})
    assert upd.status_code == 200 and upd.get_json()["currentVersion"]["data"]["status"] == "watch"
    forced = api.patch(f"{ENTITIES}/{uid}?force=true", json={"label": "Pema D."})
    assert forced.get_json()["currentVersion"]["version"] == 3
    assert forced.get_json()["currentVersion"]["label"] == "Pema D."
    versions = api.get(f"{ENTITIES}/{uid}/versions").get_json()
    assert [v["version"] for v in versions] == [1, 2, 3] and versions[1]["baseVersion"] == 1
    diffs = api.get(f"{ENTITIES}/{uid}/diffs").get_json()
    assert diffs[0] == [{"old": "new", "new": "watch", "propertyName": "status"}]
    # a child registered by a submission, updated through the API: one history
    assert api.patch(f"{ENTITIES}/{CHILD}?baseVersion=1", json={"data": {"status": "watch"}}).status_code == 200
    audits = api.get(f"{ENTITIES}/{CHILD}/audits").get_json()
    assert [a["action"] for a in audits] == ["entity.update.version", "entity.create"]
    assert audits[1]["details"]["submission"]["instanceId"] == "uuid:r1"
    # the child's file and its page show the API's change on the timeline
    history = api.get(f"/v1/projects/1/children/{CHILD}").get_json()["history"]
    assert [h["version"] for h in history] == [1, 2] and history[1]["changed"] == {"status": "watch"}
    from tests.app.web_helpers import Browser

    web = Browser(app)
    web.login("dawa")
    page = web.get(f"/children/{CHILD}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<tr><td>2</td>" in html  # version 2: no submission to link to
    # outside the coordinator's region: 404 for every write
    assert api.patch(f"{ENTITIES}/{FAR_CHILD}?force=true", json={"label": "x"}).status_code == 404
    assert api.delete(f"{ENTITIES}/{FAR_CHILD}").status_code == 404

    # bulk create: all or nothing
    bulk = {"entities": [{"label": "A", "data": {"village": "540102002201"}},
                         {"label": "B", "data": {"village": "540121100201"}}], "source": {"name": "roster.csv"}}
    assert api.post(ENTITIES, json=bulk).status_code == 403
    bulk["entities"][1]["data"]["village"] = "540102002202"
    assert api.post(ENTITIES, json=bulk).get_json() == {"success": True}
    labels = sorted(e["currentVersion"]["label"] for e in api.get(ENTITIES).get_json())
    assert labels == ["A", "B", "Dolkar", "Pema D."]

    assert api.delete(f"{ENTITIES}/{uid}").get_json() == {"success": True}
    assert api.get(f"{ENTITIES}/{uid}").status_code == 404
    assert api.post(f"{ENTITIES}/{uid}/restore").status_code == 200
    assert api.get(f"{ENTITIES}/{uid}").status_code == 200

    manager = login("mgr", "manager", ["540102"])
    assert manager.delete(f"{ENTITIES}/{uid}").status_code == 403


def test_datasets_and_properties(children: ApiClient) -> None:
    api = children
    made = api.post("/v1/projects/1/datasets", json={"name": "households"})
    assert made.status_code == 200 and made.get_json()["name"] == "households"
    assert api.post("/v1/projects/1/datasets", json={"name": "households"}).get_json()["code"] == 409.3
    assert api.post("/v1/projects/1/datasets", json={"name": "__bad"}).status_code == 400
    prop = api.post("/v1/projects/1/datasets/households/properties", json={"name": "village"})
    assert prop.get_json() == {"success": True}
    assert api.post("/v1/projects/1/datasets/households/properties", json={"name": "village"}).status_code == 409
    detail = api.get("/v1/projects/1/datasets/households").get_json()
    assert [p["name"] for p in detail["properties"]] == ["village"]
    ent = api.post("/v1/projects/1/datasets/households/entities",
                   json={"label": "House 1", "data": {"village": "540102002201"}})
    assert ent.status_code == 200


def test_form_create_publishes_with_publish_true(login: Any, household: Any) -> None:
    coord = login("dorje", "coordinator", ["54"])  # a new form reaches every collector: a province's coordinator
    xform = coord.get("/v1/projects/1/forms/household.xml").data
    assert xform.startswith(b"<")
    copy = xform.replace(b'id="household"', b'id="household2"')
    draft = coord.post("/v1/projects/1/forms", data=copy, content_type="application/xml")  # as Central: a draft
    assert draft.status_code == 200 and draft.get_json()["publishedAt"] is None
    copy = copy.replace(b'id="household2"', b'id="household3"')
    made = coord.post("/v1/projects/1/forms?publish=true", data=copy, content_type="application/xml")
    assert made.status_code == 200, made.get_data(as_text=True)
    assert made.get_json()["xmlFormId"] == "household3" and made.get_json()["state"] == "open"
    assert "household3" in [f["xmlFormId"] for f in coord.get("/v1/projects/1/forms").get_json()]
    assert coord.post("/v1/projects/1/forms?publish=true", data=b"not a form",
                      content_type="application/xml").status_code == 400
    assert coord.post("/v1/projects/1/forms?publish=true", data=copy, content_type="text/plain").status_code == 415
    manager = login("mgr", "manager", ["540102"])
    assert manager.post("/v1/projects/1/forms?publish=true", data=copy,
                        content_type="application/xml").status_code == 403


def test_concurrent_updates_of_one_entity_one_wins(children: ApiClient, app: Any) -> None:
    """Six scripts update the same version at once: the row is taken first (FOR UPDATE on PostgreSQL,
    BEGIN IMMEDIATE on SQLite), so exactly one applies and the others get 409.15 — none a 5xx."""
    from concurrent.futures import ThreadPoolExecutor

    token = children.headers["Authorization"]

    def patch(i: int) -> tuple[int, Any]:
        resp = app.test_client().patch(f"{ENTITIES}/{CHILD}?baseVersion=1", json={"data": {"status": f"s{i}"}},
                                       headers={"Authorization": token})
        return resp.status_code, resp.get_json().get("code")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(patch, range(6)))
    assert sorted(results, key=str) == sorted([(200, None)] + [(409, 409.15)] * 5, key=str), results
    versions = children.get(f"{ENTITIES}/{CHILD}/versions").get_json()
    assert [v["version"] for v in versions] == [1, 2]


def test_a_foreign_childs_uuid_on_create_is_not_confirmed(children: ApiClient, login: Any) -> None:
    """Creating an entity with the uuid of a child outside the caller's regions answers as for any id the
    caller cannot use: no 409.3 naming it (GET of it answers 404), nothing written."""
    far = "5b1f6c1e-8d8e-4c55-9a55-2f3a9c1d7e01"
    admin = login("boss", "admin")
    made = admin.post(ENTITIES, json={"uuid": far, "label": "Far", "data": {"village": "540121100201"}})
    assert made.status_code == 200, made.get_data(as_text=True)
    assert children.get(f"{ENTITIES}/{far}").status_code == 404
    resp = children.post(ENTITIES, json={"uuid": far, "label": "Mine", "data": {"village": "540102002201"}})
    body = resp.get_json()
    assert resp.status_code == 409 and body["code"] == 409.79, body
    assert far not in resp.get_data(as_text=True) and "details" not in body
    bulk = children.post(ENTITIES, json={"entities": [{"uuid": far, "label": "Mine",
                                                        "data": {"village": "540102002201"}}], "source": {"name": "x"}})
    assert bulk.get_json() == body
    assert admin.get(f"{ENTITIES}/{far}").get_json()["currentVersion"]["label"] == "Far"  # nothing written
    own = children.post(ENTITIES, json={"uuid": CHILD, "label": "Dup", "data": {"village": "540102002201"}})
    assert own.get_json()["code"] == 409.3  # the caller's own child: Central's answer
