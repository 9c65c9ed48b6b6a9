"""pyodk (ODK's own Python client) against a live CareFile: gunicorn, bearer sessions, Central's shapes.

The server is set up as an operator would (``carefile init``, ``user add``, ``form publish``) and
filled over OpenRosa exactly as ODK Collect sends (Digest-authenticated multipart POSTs): household
visits with a repeat, and children registered/updated through the entity forms. Then pyodk reads it
all back: projects, forms, submissions (REST and OData, paged through ``@odata.nextLink``), entity
lists and entities (REST and OData), with region scoping for a manager. Then the write side, as
scripts use it: forms created and updated through drafts (new definition, media files, version_updater);
submissions created (with a photo), edited, reviewed and commented; app users
created with forms; entity lists, properties and entities created, updated, merged and deleted.
Last, centralpy (a third-party Central CLI): check, pullcsv with media, push, download-attachments.

The write tests come after the read tests (they add rows the read tests count) and run in file order.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pyodk.client import Client
from pyodk.errors import PyODKError
from requests.auth import HTTPDigestAuth

from tests.conftest import BACKENDS
from tests.e2e.live import LiveServer, LiveServerError
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml
from tests.support.sample_forms import household_md, household_xml

PASSWORD = "correct horse battery"
VILLAGE_A = "540102002201"  # county 540102
VILLAGE_B = "540121100201"  # county 540121
N_VISITS = 5
CHILD_IDS = {name: str(uuid.UUID(int=i + 1, version=4)) for i, name in enumerate(("Dolkar", "Norbu", "Tenzin"))}


def _database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the default SQLite file; else a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return None
    from tests.support.pgserver import find_bindir

    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    from tests.support.pgserver import fresh_database

    # pg_server: the session fixture in tests/conftest.py
    return fresh_database(request.getfixturevalue("pg_server"), "carefile_pyodk")


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("pyodk-live")
    forms = root / "forms"
    forms.mkdir()
    (forms / "household.md").write_text(household_md("1"))
    (forms / "followup.md").write_text(UPDATE_MD)
    (forms / "register.md").write_text(REGISTER_MD)
    url = _database_url(request)
    srv = LiveServer.prepare(root / "server", {"CAREFILE_DATABASE_URL": url} if url else None)
    try:
        if "Database ready" not in srv.cli("init").stdout:
            raise LiveServerError("carefile init failed")
        # One command publishes the files in order (followup first: it links the list later).
        out = srv.cli("form", "publish", *(str(forms / f"{name}.md") for name in ("followup", "register",
                                                                                   "household"))).stdout
        if out.count("published") < 3:
            raise LiveServerError(f"carefile form publish: {out}")
        srv.cli_parallel(
            ["user", "add", "boss", "--role", "admin", "--password", PASSWORD],
            ["user", "add", "analyst", "--role", "manager", "--region", "540102", "--password", PASSWORD],
            ["user", "add", "dolma", "--role", "collector", "--region", "540102", "--password", PASSWORD],
            ["user", "add", "pema", "--role", "collector", "--region", "540121", "--password", PASSWORD])
        srv.start()
        _fill(srv)
        yield srv
    finally:
        srv.stop()


def _post(srv: LiveServer, user: str, xml: bytes) -> None:
    """One OpenRosa submission as ODK Collect sends it (Digest, multipart, deviceID)."""
    with requests.Session() as http:
        http.auth = HTTPDigestAuth(user, PASSWORD)
        http.headers.update({"X-OpenRosa-Version": "1.0", "User-Agent": "org.odk.collect.android/v2024.2.0"})
        resp = http.post(f"{srv.url}/v1/projects/1/submission", params={"deviceID": "collect:pyodk-test"},
                         files=[("xml_submission_file", ("submission.xml", xml, "text/xml"))], timeout=60)
    assert resp.status_code == 201, resp.text


def _fill(srv: LiveServer) -> None:
    for i in range(N_VISITS):
        _post(srv, "dolma", household_xml(f"uuid:visit-{i}", name=f"Child {i}", age=str(5 + i),
                                          members=[("mother", "30"), ("brother", str(10 + i))]))
    _post(srv, "dolma", register_xml("uuid:reg-1", CHILD_IDS["Dolkar"], "Dolkar", VILLAGE_A))
    _post(srv, "dolma", register_xml("uuid:reg-2", CHILD_IDS["Norbu"], "Norbu", VILLAGE_A))
    _post(srv, "pema", register_xml("uuid:reg-3", CHILD_IDS["Tenzin"], "Tenzin", VILLAGE_B))
    _post(srv, "dolma", update_xml("uuid:upd-1", CHILD_IDS["Dolkar"], base=1, status="watch", note="slept badly"))


def make_client(srv: LiveServer, tmp_path: Path, user: str) -> Any:
    config = tmp_path / f"{user}_config.toml"
    config.write_text(f'[central]\nbase_url = "{srv.url}"\nusername = "{user}"\npassword = "{PASSWORD}"\n'
                      "default_project_id = 1\n")
    return Client(config_path=config, cache_path=tmp_path / f"{user}_cache.toml")


@pytest.fixture
def admin(server: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with make_client(server, tmp_path, "boss") as client:
        yield client


@pytest.fixture
def manager(server: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with make_client(server, tmp_path, "analyst") as client:
        yield client


def follow(client: Any, first: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """All rows of an OData feed: the first page, then every @odata.nextLink (returns rows, pages)."""
    rows, pages, body = list(first["value"]), 1, first
    while body.get("@odata.nextLink"):
        resp = client.get(body["@odata.nextLink"])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        rows += body["value"]
        pages += 1
    return rows, pages


def test_projects_forms_and_submissions(admin: Any, server: LiveServer, tmp_path: Path) -> None:
    (project,) = admin.projects.list()
    assert project.id == 1 and project.createdAt is not None
    assert admin.projects.get().id == 1
    forms = {f.xmlFormId: f for f in admin.forms.list()}
    assert set(forms) == {"household", "register", "followup"}
    assert forms["household"].version == "1" and forms["household"].state == "open"
    subs = admin.submissions.list(form_id="household")
    assert sorted(s.instanceId for s in subs) == [f"uuid:visit-{i}" for i in range(N_VISITS)]
    assert all(isinstance(s.submitterId, int) for s in subs)
    one = admin.submissions.get(form_id="household", instance_id="uuid:visit-3")  # ':' is sent as %3A
    assert one.instanceId == "uuid:visit-3" and one.deviceId == "collect:pyodk-test"
    # the token is cached: a second client verifies it (GET users/current) instead of signing in again
    token = (tmp_path / "boss_cache.toml").read_text()
    assert token.startswith("token = ")
    with make_client(server, tmp_path, "boss") as again:
        assert [p.id for p in again.projects.list()] == [1]
    assert (tmp_path / "boss_cache.toml").read_text() == token


def test_submission_tables_paged_through_next_link(admin: Any) -> None:
    first = admin.submissions.get_table(form_id="household", table_name="Submissions", count=True, top=2)
    assert first["@odata.count"] == N_VISITS and len(first["value"]) == 2
    assert first["@odata.context"].endswith("/v1/projects/1/forms/household.svc/$metadata#Submissions")
    rows, pages = follow(admin, first)
    assert pages == 3 and sorted(r["__id"] for r in rows) == [f"uuid:visit-{i}" for i in range(N_VISITS)]
    row = next(r for r in rows if r["__id"] == "uuid:visit-2")
    assert row["age"] == 7 and row["__system"]["submitterName"] == "dolma"
    assert row["members@odata.navigationLink"] == "Submissions('uuid%3Avisit-2')/members"
    skipped = admin.submissions.get_table(form_id="household", skip=1, top=2)["value"]
    assert [r["__id"] for r in skipped] == [r["__id"] for r in rows[1:3]]
    filtered = admin.submissions.get_table(form_id="household", filter="__id eq 'uuid:visit-1'",
                                           select="__id,age")["value"]
    assert filtered == [{"__id": "uuid:visit-1", "age": 6}]

    members = admin.submissions.get_table(form_id="household", table_name="Submissions.members", top=4)
    reps, pages = follow(admin, members)
    assert pages == 3 and len(reps) == 2 * N_VISITS
    assert {r["__Submissions-id"] for r in reps} == {f"uuid:visit-{i}" for i in range(N_VISITS)}
    assert sorted(r["member_age"] for r in reps if r["member_role"] == "brother") == list(range(10, 10 + N_VISITS))


def test_entity_lists(admin: Any, manager: Any) -> None:
    (children,) = admin.entity_lists.list()
    assert children.name == "children" and children.projectId == 1 and children.approvalRequired is False
    detail = admin.entity_lists.get(entity_list_name="children")
    props = {p.name: p for p in detail.properties or []}
    assert set(props) == {"village", "status", "note", "next_followup_due"}
    assert props["status"].forms == ["followup", "register"] and props["status"].odataName == "status"
    (seen_by_manager,) = manager.entity_lists.list()
    assert seen_by_manager.name == "children"
    raw = manager.get("projects/1/datasets").json()
    assert raw[0]["entities"] == 2  # Tenzin lives in another county


def test_entities_rest_and_odata(admin: Any) -> None:
    ents = {e.uuid: e for e in admin.entities.list(entity_list_name="children")}
    assert set(ents) == set(CHILD_IDS.values())
    dolkar = ents[CHILD_IDS["Dolkar"]]
    assert dolkar.currentVersion.version == 2 and dolkar.currentVersion.label == "Dolkar"
    assert dolkar.currentVersion.data == {"village": VILLAGE_A, "status": "watch", "note": "slept badly"}
    assert dolkar.currentVersion.baseVersion == 1 and dolkar.conflict is None and dolkar.updatedAt is not None
    assert dolkar.currentVersion.userAgent.startswith("org.odk.collect.android")
    assert ents[CHILD_IDS["Norbu"]].updatedAt is None

    first = admin.entities.get_table(entity_list_name="children", top=2, count=True)
    assert first["@odata.count"] == 3 and len(first["value"]) == 2
    assert first["@odata.context"].endswith("/v1/projects/1/datasets/children.svc/$metadata#Entities")
    rows, pages = follow(admin, first)
    assert pages == 2 and sorted(r["__id"] for r in rows) == sorted(CHILD_IDS.values())
    row = next(r for r in rows if r["__id"] == CHILD_IDS["Dolkar"])
    assert row["label"] == "Dolkar" and row["status"] == "watch" and row["next_followup_due"] == ""
    assert row["__system"]["version"] == 2 and row["__system"]["creatorName"] == "dolma"
    updated = admin.entities.get_table(entity_list_name="children", filter="__system/updatedAt ne null",
                                       select="__id,label")["value"]
    assert updated == [{"__id": CHILD_IDS["Dolkar"], "label": "Dolkar"}]


def test_manager_sees_only_their_county(manager: Any) -> None:
    ents = manager.entities.list(entity_list_name="children")
    assert sorted(e.currentVersion.label for e in ents) == ["Dolkar", "Norbu"]
    table = manager.entities.get_table(entity_list_name="children", count=True)
    assert table["@odata.count"] == 2 and CHILD_IDS["Tenzin"] not in {r["__id"] for r in table["value"]}
    resp = manager.get(f"projects/1/datasets/children/entities/{CHILD_IDS['Tenzin']}")
    assert resp.status_code == 404


PHOTO = b"\xff\xd8\xff\xe0 a small jpeg " * 100


def test_forms_xml_and_extended_metadata(admin: Any) -> None:
    xml = admin.forms.get_xml(form_id="household")
    assert xml.startswith("<") and 'id="household"' in xml
    ext = admin.get("projects/1/forms/household", headers={"X-Extended-Metadata": "true"}).json()
    assert ext["submissions"] == N_VISITS and ext["reviewStates"]["received"] == N_VISITS
    assert admin.get("projects/1/forms/register", headers={"X-Extended-Metadata": "true"}).json()["entityRelated"]


def test_forms_create_and_update(admin: Any, tmp_path: Path) -> None:
    from tests.app.api.test_api_forms import xlsx

    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG first logo")
    definition = tmp_path / "clinic.xlsx"
    definition.write_bytes(xlsx("1"))
    made = admin.forms.create(definition=definition, attachments=[logo])  # POST ?publish=false, files, publish
    assert made.xmlFormId == "clinic" and made.publishedAt is None
    form = admin.forms.get(form_id="clinic")
    assert form.version == "1" and form.publishedAt is not None
    assert admin.get("projects/1/forms/clinic/attachments/logo.png").content == b"\x89PNG first logo"

    v2 = tmp_path / "clinic_v2.xlsx"
    v2.write_bytes(xlsx("2", extra_label="Child's name"))
    admin.forms.update(form_id="clinic", definition=v2)  # a new definition: its own version
    assert admin.forms.get(form_id="clinic").version == "2"
    assert "Child" in admin.forms.get_xml(form_id="clinic")
    # the published version keeps the file uploaded earlier
    assert admin.get("projects/1/forms/clinic/attachments/logo.png").content == b"\x89PNG first logo"

    logo.write_bytes(b"\x89PNG second logo")
    admin.forms.update(form_id="clinic", attachments=[logo], version_updater=lambda v: v + ".1")
    assert admin.forms.get(form_id="clinic").version == "2.1"
    assert admin.get("projects/1/forms/clinic/attachments/logo.png").content == b"\x89PNG second logo"
    admin.forms.update(form_id="clinic", attachments=[logo])  # no updater: pyodk's timestamp version
    assert admin.forms.get(form_id="clinic").version not in ("1", "2", "2.1")

    versions = admin.get("projects/1/forms/clinic/versions").json()
    assert [v["version"] for v in versions][1:] == ["2.1", "2", "1"]
    assert admin.get("projects/1/forms/clinic/versions/2.xlsx").content == v2.read_bytes()
    assert admin.get("projects/1/forms/clinic/versions/1.xlsx").content == definition.read_bytes()
    closed = admin.patch("projects/1/forms/clinic", json={"state": "closed"})
    assert closed.status_code == 200 and admin.forms.get(form_id="clinic").state == "closed"


def test_submissions_create_edit_review_comments(admin: Any, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(PHOTO)
    xml = household_xml("uuid:api-1", name="Pasang", age="8").decode()
    made = admin.submissions.create(xml=xml, form_id="household", device_id="script:pyodk", attachments=[photo])
    assert made.instanceId == "uuid:api-1" and made.deviceId == "script:pyodk"
    assert [(a.name, a.exists) for a in made.attachments] == [("photo.jpg", True)]
    got = admin.submissions.get(form_id="household", instance_id="uuid:api-1")
    assert got.submitterId == made.submitterId and got.reviewState is None
    # the REST submission went through the OpenRosa ingest: typed values in OData
    row = admin.submissions.get_table(form_id="household", filter="__id eq 'uuid:api-1'")["value"][0]
    assert row["child_name"] == "Pasang" and row["age"] == 8 and row["__system"]["attachmentsPresent"] == 1

    edited = household_xml("uuid:api-1b", name="Pasang", age="9", deprecated_id="uuid:api-1").decode()
    admin.submissions.edit(instance_id="uuid:api-1", xml=edited, form_id="household", comment="age corrected")
    assert admin.submissions.get(form_id="household", instance_id="uuid:api-1").reviewState == "edited"
    row = admin.submissions.get_table(form_id="household", filter="__id eq 'uuid:api-1'")["value"][0]
    assert row["age"] == 9 and row["__system"]["edits"] == 1
    with pytest.raises(PyODKError) as stale:  # the copy being edited is no longer the current one
        admin.submissions.edit(instance_id="uuid:api-1", xml=edited.replace("api-1b", "api-1c"), form_id="household")
    assert "409.9" in str(stale.value)

    admin.submissions.review(instance_id="uuid:api-1", review_state="approved", form_id="household",
                             comment="checked with the family")
    assert admin.submissions.get(form_id="household", instance_id="uuid:api-1").reviewState == "approved"
    added = admin.submissions.add_comment(instance_id="uuid:api-1", comment="filed", form_id="household")
    assert added.body == "filed" and isinstance(added.actorId, int)
    bodies = [c.body for c in admin.submissions.list_comments(instance_id="uuid:api-1", form_id="household")]
    assert sorted(bodies) == ["age corrected", "checked with the family", "filed"]
    # the photo came through the REST upload; the edit kept it
    resp = admin.get("projects/1/forms/household/submissions/uuid:api-1/attachments/photo.jpg")
    assert resp.status_code == 200 and resp.content == PHOTO


def test_manager_cannot_write_outside_reading(manager: Any) -> None:
    with pytest.raises(PyODKError) as err:
        manager.submissions.create(xml=household_xml("uuid:mgr-1").decode(), form_id="household")
    assert "403" in str(err.value)
    with pytest.raises(PyODKError) as err:
        manager.entities.create(label="X", data={"village": VILLAGE_A}, entity_list_name="children")
    assert "403" in str(err.value)


def test_app_users_with_forms(admin: Any, server: LiveServer) -> None:
    users = list(admin.projects.create_app_users(display_names=["Yangzom", "Nima"], forms=["household"]))
    assert sorted(u.displayName for u in users) == ["Nima", "Yangzom"] and all(len(u.token) == 64 for u in users)
    # created again: pyodk sees they exist (by display name) and makes no duplicates
    assert list(admin.projects.create_app_users(display_names=["Yangzom"])) == []
    assigned = admin.get("projects/1/forms/household/assignments").json()
    assert {a["actorId"] for a in assigned} == {u.id for u in users}
    # the token is the collector's Collect URL: they see exactly the assigned form
    resp = requests.get(f"{server.url}/v1/key/{users[0].token}/projects/1/formList",
                        headers={"X-OpenRosa-Version": "1.0"}, timeout=30)
    assert resp.status_code == 200 and "household" in resp.text and "register" not in resp.text


def test_entity_lists_and_entities_written(admin: Any) -> None:
    made = admin.entity_lists.create(entity_list_name="households")
    assert made.name == "households" and made.approvalRequired is False
    assert admin.entity_lists.add_property(name="village", entity_list_name="households")
    assert admin.entity_lists.add_property(name="size", entity_list_name="households")
    one = admin.entities.create(label="House A", data={"village": VILLAGE_A, "size": "4"},
                                entity_list_name="households")
    assert one.currentVersion.version == 1 and one.currentVersion.data == {"village": VILLAGE_A, "size": "4"}
    assert admin.entities.create_many(data=[{"label": "House B", "village": VILLAGE_A, "size": "2"},
                                            {"label": "House C", "village": VILLAGE_B, "size": "7"}],
                                      entity_list_name="households", create_source="census.csv")
    updated = admin.entities.update(one.uuid, entity_list_name="households", data={"size": "5"}, base_version=1)
    assert updated.currentVersion.version == 2 and updated.currentVersion.data["size"] == "5"
    with pytest.raises(PyODKError) as err:
        admin.entities.update(one.uuid, entity_list_name="households", data={"size": "6"}, base_version=1)
    assert "409.15" in str(err.value)
    forced = admin.entities.update(one.uuid, entity_list_name="households", label="House A1", force=True)
    assert forced.currentVersion.label == "House A1" and forced.currentVersion.version == 3
    assert admin.entities.delete(one.uuid, entity_list_name="households")
    table = admin.entities.get_table(entity_list_name="households", count=True)
    assert table["@odata.count"] == 2 and {r["label"] for r in table["value"]} == {"House B", "House C"}
    # merge: House B changes, House D is new, House C (not in the source) is deleted
    actions = admin.entities.merge(data=[{"label": "House B", "village": VILLAGE_A, "size": "3"},
                                         {"label": "House D", "village": VILLAGE_B, "size": "1"}],
                                   entity_list_name="households", match_keys=["label"], delete_not_matched=True)
    assert len(actions.to_insert) == 1 and len(actions.to_update) == 1 and len(actions.to_delete) == 1
    rows = {e.currentVersion.label: e.currentVersion.data for e in admin.entities.list(entity_list_name="households")}
    assert rows == {"House B": {"village": VILLAGE_A, "size": "3"}, "House D": {"village": VILLAGE_B, "size": "1"}}
    # a child registered by a submission, updated by a script: one history
    child = CHILD_IDS["Norbu"]
    admin.entities.update(child, entity_list_name="children", data={"status": "moved"}, base_version=1)
    versions = admin.get(f"projects/1/datasets/children/entities/{child}/versions").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["data"]["status"] == "moved"


def test_the_trash_through_pyodks_session(admin: Any, manager: Any) -> None:
    """Central 2024.3+'s trash with pyodk's signed-in session: a submission and entities deleted, gone from
    pyodk's lists and OData, listed with ?deleted=true, restored (entities in bulk). Everything is restored
    at the end (the module's other tests share the server)."""
    subs = "projects/1/forms/household/submissions"
    assert admin.delete(f"{subs}/uuid:visit-4").json() == {"success": True}
    assert "uuid:visit-4" not in {s.instanceId for s in admin.submissions.list(form_id="household")}
    assert "uuid:visit-4" not in {r["__id"] for r in admin.submissions.get_table(form_id="household")["value"]}
    assert [s["instanceId"] for s in admin.get(subs, params={"deleted": "true"}).json()] == ["uuid:visit-4"]
    assert manager.delete(f"{subs}/uuid:visit-3").status_code == 403
    assert admin.post(f"{subs}/uuid:visit-4/restore").json() == {"success": True}
    assert "uuid:visit-4" in {s.instanceId for s in admin.submissions.list(form_id="household")}

    ents = "projects/1/datasets/children/entities"
    two = [CHILD_IDS["Tenzin"], CHILD_IDS["Norbu"]]
    assert admin.post(f"{ents}/bulk-delete", json={"ids": two}).json() == {"count": 2}
    listed = {e.uuid for e in admin.entities.list(entity_list_name="children")}
    assert not listed & set(two)
    assert sorted(e["uuid"] for e in admin.get(ents, params={"deleted": "true"}).json()) == sorted(two)
    assert admin.post(f"{ents}/bulk-restore", json={"ids": two}).json() == {"count": 2}
    assert set(two) <= {e.uuid for e in admin.entities.list(entity_list_name="children")}


def _centralpy(server: LiveServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "centralpy"
    return subprocess.run([str(exe), "--url", server.url, "--email", "boss", "--password", PASSWORD,
                           "--log-file", str(cwd / "centralpy.log"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_centralpy(server: LiveServer, admin: Any, tmp_path: Path) -> None:
    pytest.importorskip("centralpy")
    checked = _centralpy(server, "check", "--project", "1", "--form-id", "household", "--instance-id",
                         "uuid:visit-1", cwd=tmp_path)
    assert checked.returncode == 0 and "Failure" not in checked.stdout, checked.stdout + checked.stderr
    assert checked.stdout.count("Success:") == 6

    # push: one folder per instance, as on the phone, the photo next to the XML
    inst = tmp_path / "instances" / "household_2026-11-29"
    inst.mkdir(parents=True)
    (inst / "household_2026-11-29.xml").write_bytes(household_xml("uuid:pushed-1", name="Dawa"))
    (inst / "photo.jpg").write_bytes(PHOTO)
    pushed = _centralpy(server, "push", "--project", "1", "--local-dir", str(tmp_path / "instances"), cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    atts = admin.get("projects/1/forms/household/submissions/uuid:pushed-1/attachments").json()
    assert atts == [{"name": "photo.jpg", "exists": True}]

    csv_dir, zip_dir = tmp_path / "csv", tmp_path / "zips"
    pulled = _centralpy(server, "pullcsv", "--project", "1", "--form-id", "household", "--csv-dir", str(csv_dir),
                        "--zip-dir", str(zip_dir), "--no-progress-bar", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    (zip_path,) = zip_dir.glob("*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.read("media/photo.jpg") == PHOTO  # media included by default, as Central
        main = list(csv.DictReader(io.StringIO(zf.read("household.csv").decode("utf-8-sig"))))
    assert main[0]["KEY"] == "uuid:pushed-1"  # newest first
    assert (csv_dir / "household.csv").exists()

    out = tmp_path / "downloads"
    got = _centralpy(server, "download-attachments", "--project", "1", "--form-id", "household",
                     "--instance-id", "uuid:pushed-1", "--download-dir", str(out), cwd=tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (out / "photo.jpg").read_bytes() == PHOTO
