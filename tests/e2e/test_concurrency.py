"""Races in the ingest path, against a real server (gunicorn, 2 workers × 4 threads) on SQLite and
PostgreSQL: many phones POST at the same instant (a barrier releases all threads together).

- ten edits (`deprecatedID`) of one version: exactly one 201, nine 409, one current version;
- ten entity updates of one child with the same baseVersion: all applied as versions, conflicts
  flagged, no entity error;
- an identical submission (and an identical edit) sent many times at once: one record, all 201;
- the parts of a split upload arriving at once: every file on the one record;
- an offline registration racing the offline update of the same child, and an offline chain of
  updates arriving all at once and out of order: all applied, nothing left waiting.

Design: app/db.py and app/services/entities.py (module docstrings), docs/architecture.md, *Locks*.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth
from sqlalchemy import func, select

from app.models import Entity, EntityEvent, EntityVersion, Submission, SubmissionAttachment, SubmissionVersion
from tests.e2e.live import LiveServer, LiveServerError
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

PASSWORD = "correct horse battery"
VILLAGE = "540102002201"
N = 10

VISIT_MD = """
| settings |
| | form_id | version |
| | conc_visit | 1 |

| survey |
| | type | name | label |
| | text | note | Note |
| | image | photo1 | Photo 1 |
| | image | photo2 | Photo 2 |
"""


def visit_xml(instance: str, note: str, deprecated: str | None = None, photos: bool = False) -> bytes:
    files = "<photo1>p1.jpg</photo1><photo2>p2.jpg</photo2>" if photos else "<photo1/><photo2/>"
    dep = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    return (f'<data id="conc_visit" version="1"><note>{note}</note>{files}'
            f"<meta><instanceID>{instance}</instanceID>{dep}</meta></data>").encode()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings: dict[str, str] = {}
    if request.param == "postgresql":
        from tests.support.pgserver import find_bindir, fresh_database

        if find_bindir() is None:
            pytest.skip("PostgreSQL server binaries not found")
        settings["CAREFILE_DATABASE_URL"] = fresh_database(request.getfixturevalue("pg_server"), "carefile_conc")
    root = tmp_path_factory.mktemp(f"conc-{request.param}")
    forms = []
    for name, text in (("visit.md", VISIT_MD), ("followup.md", UPDATE_MD), ("register.md", REGISTER_MD)):
        path = Path(root) / name
        path.write_text(text)
        forms.append(str(path))
    srv = LiveServer.prepare(root / "srv", settings)
    try:
        srv.cli("init")
        out = srv.cli("form", "publish", *forms).stdout
        if out.count("published") < 3:
            raise LiveServerError(f"carefile form publish: {out}")
        srv.cli("user", "add", "dolma", "--role", "collector", "--password", PASSWORD, "--region", "540102")
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rt(server: LiveServer) -> Any:
    return server.app().extensions["carefile"]


class Phone:
    """One Collect: its own HTTP connection and Digest state, signed in before the race starts."""

    def __init__(self, srv: LiveServer) -> None:
        self.url = f"{srv.url}/v1/projects/1/submission"
        self.http = requests.Session()
        self.http.headers["X-OpenRosa-Version"] = "1.0"
        self.http.auth = HTTPDigestAuth("dolma", PASSWORD)
        head = self.http.head(self.url, timeout=30)  # Digest challenge answered now, not in the race
        assert head.status_code == 204, head.text

    def post(self, xml: bytes, files: dict[str, bytes] | None = None, incomplete: bool = False) -> requests.Response:
        parts: list[tuple[str, tuple[str, bytes, str]]] = [("xml_submission_file", ("s.xml", xml, "text/xml"))]
        parts += [(name, (name, body, "image/jpeg")) for name, body in (files or {}).items()]
        return self.http.post(self.url, files=parts, data={"*isIncomplete*": "yes"} if incomplete else None,
                              timeout=120)


def race(srv: LiveServer, sends: list[Callable[[Phone], requests.Response]]) -> list[requests.Response]:
    """Every send on its own phone, all released at the same instant; responses in order."""
    phones = [Phone(srv) for _ in sends]
    barrier = threading.Barrier(len(sends))

    def go(i: int) -> requests.Response:
        barrier.wait(timeout=60)
        return sends[i](phones[i])

    try:
        with ThreadPoolExecutor(len(sends)) as pool:
            return list(pool.map(go, range(len(sends))))
    finally:
        for p in phones:
            p.http.close()


def ok(resp: requests.Response) -> requests.Response:
    assert resp.status_code == 201, resp.text
    return resp


def no_entity_errors(rt: Any) -> None:
    with rt.db.session() as s:
        bad = s.execute(select(EntityEvent.code, EntityEvent.message)
                        .where(EntityEvent.status.in_(("error", "backlog")))).all()
    assert bad == []


# -- edits ----------------------------------------------------------------------------------------


def test_parallel_edits_of_one_version_exactly_one_wins(server: LiveServer, rt: Any) -> None:
    original = f"uuid:{uuid.uuid4()}"
    ok(Phone(server).post(visit_xml(original, "first")))
    edits = [f"uuid:{uuid.uuid4()}" for _ in range(N)]
    responses = race(server, [lambda p, i=i: p.post(visit_xml(edits[i], f"edit {i}", deprecated=original))
                              for i in range(N)])

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * (N - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:  # Collect shows this to the village director
            assert "reached the server first" in r.text and "另一次修改已先到达服务器" in r.text
    winner = edits[[r.status_code for r in responses].index(201)]
    with rt.db.session() as s:
        sub = s.scalars(select(Submission).where(Submission.instance_id == original)).one()
        versions = s.scalars(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id)).all()
        current = [v for v in versions if v.current]
        assert len(versions) == 2  # the original and the one edit that won; the losers left nothing
        assert [v.instance_id for v in current] == [winner]
        assert sub.current_version_id == current[0].id and sub.review_state == "edited"
        assert current[0].data["note"] == f"edit {edits.index(winner)}"


def test_identical_edit_sent_twice_at_once_is_one_edit(server: LiveServer, rt: Any) -> None:
    original, edit = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    ok(Phone(server).post(visit_xml(original, "first")))
    xml = visit_xml(edit, "changed", deprecated=original)
    responses = race(server, [lambda p: p.post(xml)] * 4)
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    with rt.db.session() as s:
        sub = s.scalars(select(Submission).where(Submission.instance_id == original)).one()
        current = s.scalars(select(SubmissionVersion.instance_id).where(
            SubmissionVersion.submission_id == sub.id, SubmissionVersion.current)).all()
        assert current == [edit]


def test_identical_resend_racing_itself_stores_one_record(server: LiveServer, rt: Any) -> None:
    instance = f"uuid:{uuid.uuid4()}"
    xml = visit_xml(instance, "once")
    responses = race(server, [lambda p: p.post(xml)] * N)
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission).where(Submission.instance_id == instance)) == 1
        assert s.scalar(select(func.count()).select_from(SubmissionVersion)
                        .where(SubmissionVersion.instance_id == instance)) == 1


def test_split_upload_parts_arriving_at_once_keep_every_file(server: LiveServer, rt: Any) -> None:
    instance = f"uuid:{uuid.uuid4()}"
    xml = visit_xml(instance, "photos", photos=True)
    p1, p2 = b"\xff\xd8one" + uuid.uuid4().bytes, b"\xff\xd8two" + uuid.uuid4().bytes
    responses = race(server, [lambda p: p.post(xml, {"p1.jpg": p1}, incomplete=True),
                              lambda p: p.post(xml, {"p2.jpg": p2})])
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    with rt.db.session() as s:
        atts = s.execute(select(SubmissionAttachment.name, SubmissionAttachment.size)
                         .join(SubmissionVersion, SubmissionVersion.id == SubmissionAttachment.version_id)
                         .where(SubmissionVersion.instance_id == instance).order_by(SubmissionAttachment.name)).all()
    assert atts == [("p1.jpg", len(p1)), ("p2.jpg", len(p2))]


# -- entities -------------------------------------------------------------------------------------


def test_parallel_updates_with_same_base_version_are_all_applied(server: LiveServer, rt: Any) -> None:
    uid = str(uuid.uuid4())
    ok(Phone(server).post(register_xml(f"uuid:{uuid.uuid4()}", uid, "Dolkar", VILLAGE)))
    responses = race(server, [lambda p, i=i: p.post(update_xml(f"uuid:{uuid.uuid4()}", uid, base=1,
                                                               status=f"status {i}", note=f"note {i}"))
                              for i in range(N)])
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]

    with rt.db.session() as s:
        ent = s.scalars(select(Entity).where(Entity.uuid == uid)).one()
        history = s.scalars(select(EntityVersion).where(EntityVersion.entity_id == ent.id)
                            .order_by(EntityVersion.version)).all()
        assert ent.version == N + 1 and [v.version for v in history] == list(range(1, N + 2))
        updates = history[1:]
        assert sorted(v.data_received["note"] for v in updates) == sorted(f"note {i}" for i in range(N))
        assert len({v.submission_id for v in updates}) == N  # one version per submission
        # The first applied update was based on the current version; every later one was not and
        # changed `status` and `note` differently: a hard conflict on those properties, flagged for review.
        assert updates[0].conflict is None
        assert [(v.conflict, v.conflicting_properties) for v in updates[1:]] == [("hard", ["note", "status"])] * (N - 1)
        assert ent.conflict == "hard"
        assert ent.data["note"] == updates[-1].data_received["note"]  # the last applied is the record
        events = s.scalars(select(EntityEvent.status).where(EntityEvent.entity_uuid == uid)).all()
        assert sorted(events) == ["applied"] * (N + 1)
    no_entity_errors(rt)


def test_offline_registration_racing_its_update_and_offline_chain_out_of_order(server: LiveServer, rt: Any) -> None:
    children = [str(uuid.uuid4()) for _ in range(4)]
    branches = {uid: str(uuid.uuid4()) for uid in children}
    sends: list[Callable[[Phone], requests.Response]] = []
    for uid in children:
        # Registered offline, then followed up offline on the same phone: the update names the new
        # child with baseVersion 1, no trunkVersion, and the phone's branch id.
        sends.append(lambda p, uid=uid: p.post(register_xml(f"uuid:{uuid.uuid4()}", uid, "Tashi", VILLAGE)))
        sends.append(lambda p, uid=uid: p.post(
            f'<data id="followup" version="1"><child>{uid}</child><note>seen</note><meta>'
            f"<instanceID>uuid:{uuid.uuid4()}</instanceID>"
            f'<entity dataset="children" id="{uid}" update="1" baseVersion="1" trunkVersion="" '
            f'branchId="{branches[uid]}"><label/></entity></meta></data>'.encode()))
    # And a child on the server, updated three times offline; the three arrive at once.
    chained = str(uuid.uuid4())
    ok(Phone(server).post(register_xml(f"uuid:{uuid.uuid4()}", chained, "Pema", VILLAGE)))
    branch = str(uuid.uuid4())
    for k in (3, 2, 1):
        sends.append(lambda p, k=k: p.post(update_xml(f"uuid:{uuid.uuid4()}", chained, base=k, trunk=1,
                                                      branch=branch, note=f"visit {k}")))
    responses = race(server, sends)
    assert [r.status_code for r in responses] == [201] * len(sends), [r.text for r in responses]

    with rt.db.session() as s:
        for uid in children:
            ent = s.scalars(select(Entity).where(Entity.uuid == uid)).one()
            events = s.execute(select(EntityEvent.status, EntityEvent.code, EntityEvent.message)
                               .where(EntityEvent.entity_uuid == uid)).all()
            assert (ent.version, ent.label, ent.data.get("note")) == (2, "Tashi", "seen"), events
        ent = s.scalars(select(Entity).where(Entity.uuid == chained)).one()
        assert ent.version == 4 and ent.data["note"] == "visit 3" and ent.conflict is None
    no_entity_errors(rt)


# -- held changes -----------------------------------------------------------------------------------


def test_parallel_decisions_of_one_held_change_exactly_one_wins(server: LiveServer, rt: Any) -> None:
    """A collector of another county registers a child here: held; eight reviewers decide at once."""
    from app.models import HeldChange

    for name, role, region in (("pema_h", "collector", "540121"), ("coord_h", "coordinator", "540102"),
                               ("root_h", "admin", None)):
        server.cli("user", "add", name, "--role", role, "--password", PASSWORD,
                   *(["--region", region] if region else []))
    uid = str(uuid.uuid4())
    with requests.Session() as pema:
        pema.headers["X-OpenRosa-Version"] = "1.0"
        pema.auth = HTTPDigestAuth("pema_h", PASSWORD)
        resp = pema.post(f"{server.url}/v1/projects/1/submission", timeout=60,
                         files=[("xml_submission_file", ("s.xml", register_xml(f"uuid:{uuid.uuid4()}", uid, "Held",
                                                                                   VILLAGE), "text/xml"))])
    assert resp.status_code == 201 and "review" in resp.text, resp.text
    with rt.db.session() as s:
        held_id = s.scalar(select(HeldChange.id).where(HeldChange.target == uid))
        assert held_id is not None and s.scalar(select(func.count()).select_from(Entity).where(Entity.uuid == uid)) == 0

    def token(user: str) -> str:
        r = requests.post(f"{server.url}/v1/sessions", json={"email": user, "password": PASSWORD}, timeout=60)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    deciders = [("coord_h", "apply")] * 4 + [("root_h", "reject")] * 4
    tokens = {u: token(u) for u in ("coord_h", "root_h")}
    barrier = threading.Barrier(len(deciders))

    def decide(i: int) -> int:
        user, action = deciders[i]
        barrier.wait(timeout=60)
        r = requests.post(f"{server.url}/v1/projects/1/held-changes/{held_id}", json={"action": action},
                          headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=120)
        return r.status_code

    with ThreadPoolExecutor(len(deciders)) as pool:
        codes = list(pool.map(decide, range(len(deciders))))
    assert sorted(codes) == [200] + [409] * 7, codes
    winner = deciders[codes.index(200)][1]
    with rt.db.session() as s:
        change = s.get(HeldChange, held_id)
        assert change is not None and change.status == ("applied" if winner == "apply" else "rejected")
        children = s.scalar(select(func.count()).select_from(Entity).where(Entity.uuid == uid))
        assert children == (1 if winner == "apply" else 0)
