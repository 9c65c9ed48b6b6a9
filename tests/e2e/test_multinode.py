"""Two `carefile serve` nodes on one PostgreSQL and one SeaweedFS (issue 11 item 3), as behind a proxy that
sends each request to either node:

- started at the same instant on an empty database, they migrate once, publish the shipped forms once and
  both come up;
- a Digest nonce given out by one node signs in on the other, and a replayed count is refused by both;
- a web session, an API token and the sign-in throttle hold whichever node answers (sign-out on one
  ends the session on the other);
- children.csv served by one node changes as soon as the other node changes a child;
- an export job is run by exactly one node, and when that node is killed (kill -9) mid-job the other
  takes it over and finishes it.
"""
from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth
from sqlalchemy import create_engine, text

from tests.e2e.cluster import (
    OR,
    PASSWORD,
    Node,
    api_token,
    cluster_settings,
    csrf_token,
    start_together,
    wait_for,
    web_login,
)
from tests.support.digest_client import authorization, parse_challenge
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

VILLAGE = "540102002201"


@dataclass
class Cluster:
    a: Node
    b: Node
    database_url: str
    engine: Any

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    from tests.support.pgserver import find_bindir, fresh_database
    from tests.support.s3server import start_seaweedfs

    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    root = tmp_path_factory.mktemp("multinode")
    url = fresh_database(request.getfixturevalue("pg_server"), "carefile_multinode")
    s3 = start_seaweedfs(root / "s3")
    forms = root / "xlsforms"  # what a deployment ships; `carefile serve` publishes it on the first start
    forms.mkdir()
    for name, text_ in (("register.md", REGISTER_MD), ("followup.md", UPDATE_MD)):
        (forms / name).write_text(text_)
    settings = {**cluster_settings(url, s3), "CAREFILE_XLSFORMS_DIR": str(forms)}
    a, b = Node.prepare(root / "a", settings), Node.prepare(root / "b", settings)
    engine = create_engine(url, pool_size=2)
    try:
        start_together([a, b])  # both migrate an empty database and publish the forms, at the same instant
        a.cli_parallel(
            ["user", "add", "dolma", "--role", "collector", "--password", PASSWORD, "--region", "540102"],
            ["user", "add", "tsering", "--role", "admin", "--password", PASSWORD],
            ["user", "add", "pema", "--role", "manager", "--password", PASSWORD, "--region", "540102"],
        )
        yield Cluster(a, b, url, engine)
    finally:
        for node in (a, b):
            node.stop()
        engine.dispose()
        s3.stop()


def test_nodes_starting_together_migrate_and_publish_once(cluster: Cluster) -> None:
    with cluster.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        projects = conn.execute(text("SELECT id FROM project")).scalars().all()
        forms = conn.execute(text("SELECT f.xml_form_id, count(v.id) FROM form f JOIN form_version v "
                                  "ON v.form_id = f.id GROUP BY f.xml_form_id ORDER BY 1")).all()
    assert len(versions) == 1 and projects == [1]
    assert [tuple(row) for row in forms] == [("followup", 1), ("register", 1)]  # published once, not per node
    for node in cluster.nodes:
        assert requests.get(f"{node.url}/readyz", timeout=10).json()["checks"] == {"database": "ok",
                                                                                 "blob_store": "ok"}
        assert "Traceback" not in node.log(), node.log()[-3000:]


def test_digest_nonce_from_one_node_signs_in_on_the_other_and_replays_are_refused(cluster: Cluster) -> None:
    path = "/v1/projects/1/formList"
    first = requests.get(cluster.a.url + path, headers=OR, timeout=10)
    assert first.status_code == 401
    chal = parse_challenge(first.headers["WWW-Authenticate"])
    h1 = authorization("dolma", PASSWORD, "GET", path, chal, 1)
    h2 = authorization("dolma", PASSWORD, "GET", path, chal, 2)
    ok_b = requests.get(cluster.b.url + path, headers={**OR, "Authorization": h1}, timeout=10)
    assert ok_b.status_code == 200 and "<formID>register</formID>" in ok_b.text
    assert requests.get(cluster.a.url + path, headers={**OR, "Authorization": h2}, timeout=10).status_code == 200
    # a captured request sent again, to either node: its count was used already
    for node, header in ((cluster.a, h1), (cluster.b, h2), (cluster.b, h1)):
        replay = requests.get(node.url + path, headers={**OR, "Authorization": header}, timeout=10)
        assert replay.status_code == 401 and "stale=true" in replay.headers["WWW-Authenticate"].lower()


def _home(url: str, cookie: str) -> requests.Response:
    return requests.get(f"{url}/", cookies={"carefile_session": cookie}, allow_redirects=False, timeout=10)


def test_web_session_from_one_node_works_on_the_other_and_sign_out_ends_it_on_both(cluster: Cluster) -> None:
    cookie = web_login(cluster.a.url, "tsering")
    for node in cluster.nodes:
        home = _home(node.url, cookie)
        assert home.status_code == 200
    # the sign-out form of the page node B served (its CSRF token travels in the refreshed cookie)
    csrf, newer = csrf_token(home.text), home.cookies.get("carefile_session", cookie)
    out = requests.post(f"{cluster.b.url}/logout", data={"csrf_token": csrf}, cookies={"carefile_session": newer},
                        allow_redirects=False, timeout=10)
    assert out.status_code in (302, 303)
    for node in cluster.nodes:  # the cookies, replayed on either node, sign in no one
        for old in (cookie, newer):
            resp = _home(node.url, old)
            assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_api_token_from_one_node_works_on_the_other_until_ended_there(cluster: Cluster) -> None:
    token = api_token(cluster.a.url, "tsering")
    bearer = {"Authorization": f"Bearer {token}"}
    me = requests.get(f"{cluster.b.url}/v1/users/current", headers=bearer, timeout=10)
    assert me.status_code == 200 and "tsering" in me.text
    assert requests.delete(f"{cluster.b.url}/v1/sessions/{token}", headers=bearer, timeout=10).status_code == 200
    assert requests.get(f"{cluster.a.url}/v1/users/current", headers=bearer, timeout=10).status_code == 401


def test_sign_in_throttle_counts_wrong_passwords_on_every_node(cluster: Cluster) -> None:
    statuses = []
    for i in range(7):
        node = cluster.nodes[i % 2]
        resp = requests.post(f"{node.url}/v1/sessions", json={"email": "pema", "password": f"guess {i}"}, timeout=10)
        statuses.append(resp.status_code)
    assert statuses == [401] * 5 + [429] * 2  # five wrong passwords in all, not five per node
    for node in cluster.nodes:  # now even the right password waits, on both
        resp = requests.post(f"{node.url}/v1/sessions", json={"email": "pema", "password": PASSWORD}, timeout=10)
        assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0


def _submit(node: Node, xml: bytes) -> None:
    resp = requests.post(f"{node.url}/v1/projects/1/submission", headers=OR, auth=HTTPDigestAuth("dolma", PASSWORD),
                         files={"xml_submission_file": ("s.xml", xml, "text/xml")}, timeout=30)
    assert resp.status_code == 201, resp.text


def _children_csv(node: Node) -> str:
    resp = requests.get(f"{node.url}/v1/projects/1/forms/followup/attachments/children.csv",
                        auth=HTTPDigestAuth("dolma", PASSWORD), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.text


def test_children_list_served_by_one_node_follows_a_change_made_on_the_other(cluster: Cluster) -> None:
    child = str(uuid.uuid4())
    _submit(cluster.a, register_xml(f"uuid:{uuid.uuid4()}", child, "Tenzin", VILLAGE, status="registered"))
    for _ in range(4):  # every worker of both nodes has built and cached the list
        for node in cluster.nodes:
            assert f"{child},Tenzin" in _children_csv(node) and "moved-away" not in _children_csv(node)
    _submit(cluster.b, update_xml(f"uuid:{uuid.uuid4()}", child, 1, status="moved-away"))
    for _ in range(4):
        for node in cluster.nodes:
            row = next(line for line in _children_csv(node).splitlines() if line.startswith(child))
            assert "moved-away" in row


def _job(cluster: Cluster, job_id: int) -> dict[str, Any]:
    with cluster.engine.connect() as conn:
        row = conn.execute(text("SELECT status, worker, attempts, error FROM export_job WHERE id = :id"),
                           {"id": job_id}).mappings().one()
    return dict(row)


def test_export_job_runs_on_one_node_and_the_other_finishes_it_when_that_node_dies(cluster: Cluster) -> None:
    for i in range(5):
        _submit(cluster.b, register_xml(f"uuid:{uuid.uuid4()}", str(uuid.uuid4()), f"Export {i}", VILLAGE))
    for node in cluster.nodes:
        node.warm()
    token = api_token(cluster.a.url, "tsering")
    bearer = {"Authorization": f"Bearer {token}"}
    # Hold the job in the middle: the export's first read of submissions waits for this lock, while the
    # claiming worker keeps sending heartbeats.
    blocker = cluster.engine.connect()
    try:
        blocker.execute(text("LOCK TABLE submission IN ACCESS EXCLUSIVE MODE"))
        created = requests.post(f"{cluster.a.url}/v1/projects/1/exports", json={"form": "register", "format": "csvzip"},
                                headers=bearer, timeout=20)
        assert created.status_code == 202, created.text
        job_id = int(created.json()["id"])
        running = wait_for(lambda: (j := _job(cluster, job_id))["status"] == "running" and j, 20,
                           "a node to claim the job")
        assert running["attempts"] == 1  # claimed once, by one worker of one node
        owner_pid = int(running["worker"].split(".")[0])
        owner = next(n for n in cluster.nodes if owner_pid in n.pids())
        survivor = cluster.b if owner is cluster.a else cluster.a
        owner.kill()  # kill -9, mid-job
    finally:
        blocker.rollback()
        blocker.close()
    # The dead node's heartbeat stops. Age it past STALE_SECONDS instead of waiting two minutes.
    with cluster.engine.begin() as conn:
        conn.execute(text("UPDATE export_job SET heartbeat_at = heartbeat_at - :age WHERE id = :id"),
                     {"age": timedelta(minutes=10), "id": job_id})
    done = wait_for(lambda: (j := _job(cluster, job_id))["status"] in ("done", "failed") and j, 40,
                    "the surviving node to finish the job")
    assert done["status"] == "done", done
    assert done["attempts"] == 2 and int(done["worker"].split(".")[0]) in survivor.pids()
    file = requests.get(f"{survivor.url}/v1/projects/1/exports/{job_id}/file", headers=bearer, timeout=30)
    assert file.status_code == 200
    with zipfile.ZipFile(io.BytesIO(file.content)) as zf:
        csv_name = next(n for n in zf.namelist() if n.endswith(".csv"))
        body = zf.read(csv_name).decode("utf-8-sig")
    assert all(f"Export {i}" in body for i in range(5))
    # the killed node comes back and serves again (nothing to repair by hand)
    owner.start()
    assert requests.get(f"{owner.url}/readyz", timeout=10).status_code == 200
