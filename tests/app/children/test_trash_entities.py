"""The entity lists' trash (issue 20, A): delete, bulk delete, restore, `?deleted=true`, purge after 30 days
(`carefile purge`, forced), through Central's API and the website; phones, OData and the integrity check
follow; a purge removes the child everywhere and its id stays taken."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import (
    AuditEvent,
    ChildDirectory,
    DuplicateCandidate,
    Entity,
    EntityEvent,
    EntityVersion,
    HeldChange,
    PurgedEntity,
    utcnow,
)
from tests.app.children.casework_helpers import FOLLOW_MD, REG_MD, Api, follow_xml, phone, phone_csv, post, reg_xml
from tests.support.cli import cli_runner

ENTITIES = "/v1/projects/1/datasets/children/entities"
VILLAGE = "540102002001"
FAR_VILLAGE = "540121100201"
ID_NUMBER = "540102201001010011"


@pytest.fixture
def cli(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return cli_runner(app_config, monkeypatch, capsys)


@pytest.fixture
def kids(app: Any, make_user: Any, publish: Any) -> dict[str, str]:
    """a, b: same ID number (a duplicate pair) in the coordinator's county; far: another county."""
    publish(REG_MD, "reg.md")
    publish(FOLLOW_MD, "follow.md")
    make_user("dolma", "collector", ["540102"])
    make_user("far", "collector", ["540121"])
    make_user("coord", "coordinator", ["540102"])
    make_user("mgr", "manager", ["540102"])
    make_user("root", "admin")
    uids = {k: str(uuid.uuid4()) for k in ("a", "b", "far")}
    post(phone(app, "dolma"), reg_xml("uuid:a", uids["a"], "扎西", "2012-01-01", VILLAGE, ID_NUMBER))
    post(phone(app, "dolma"), reg_xml("uuid:b", uids["b"], "扎西", "2012-01-01", VILLAGE, ID_NUMBER))
    post(phone(app, "far"), reg_xml("uuid:far", uids["far"], "卓玛", "2013-01-01", FAR_VILLAGE))
    return uids


def _integrity(app: Any, ids: list[str]) -> str:
    resp = phone(app, "dolma").get(f"/v1/projects/1/datasets/children/integrity?id={','.join(ids)}")
    assert resp.status_code == 200, resp.data
    return resp.get_data(as_text=True)


def _deleted_in_integrity(body: str, uid: str) -> bool:
    start = body.index(f'id="{uid}"')
    return "<deleted>true</deleted>" in body[start:start + 120]


def test_delete_and_restore_one_entity(app: Any, rt: Any, kids: dict[str, str]) -> None:
    coord = Api(app, "coord")
    a = kids["a"]
    assert coord.delete(f"{ENTITIES}/{a}").get_json() == {"success": True}
    # gone from every reading path
    assert coord.get(f"{ENTITIES}/{a}").status_code == 404
    assert a not in [e["uuid"] for e in coord.get(ENTITIES).get_json()]
    trashed = coord.get(f"{ENTITIES}?deleted=true").get_json()
    assert [e["uuid"] for e in trashed] == [a] and trashed[0]["deletedAt"]
    odata = coord.get("/v1/projects/1/datasets/children.svc/Entities").get_json()["value"]
    assert a not in [r["__id"] for r in odata]
    assert a not in [r["name"] for r in phone_csv(phone(app, "dolma"))]
    assert _deleted_in_integrity(_integrity(app, [a]), a)
    assert coord.get(f"/v1/projects/1/children/{a}").status_code == 404
    # a second delete: not found; an update of a deleted entity: not found
    assert coord.delete(f"{ENTITIES}/{a}").status_code == 404
    # restore: back everywhere, as it was
    assert coord.post(f"{ENTITIES}/{a}/restore").get_json() == {"success": True}
    assert coord.get(f"{ENTITIES}/{a}").get_json()["currentVersion"]["version"] == 1
    assert coord.get(f"{ENTITIES}?deleted=true").get_json() == []
    assert a in [r["name"] for r in phone_csv(phone(app, "dolma"))]
    assert not _deleted_in_integrity(_integrity(app, [a]), a)
    assert coord.post(f"{ENTITIES}/{a}/restore").status_code == 404  # not in the trash any more
    with rt.db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.target == f"entity:{a}")
                                               .order_by(AuditEvent.id))]
    assert actions == ["entity.delete", "entity.restore"]


def test_who_may_delete_and_where(app: Any, kids: dict[str, str]) -> None:
    coord, mgr = Api(app, "coord"), Api(app, "mgr")
    assert mgr.delete(f"{ENTITIES}/{kids['a']}").status_code == 403
    assert mgr.post(f"{ENTITIES}/bulk-delete", json={"ids": [kids["a"]]}).status_code == 403
    assert mgr.get(f"{ENTITIES}?deleted=true").get_json() == []  # readers list; nothing of theirs is deleted
    # another county's child: absent for this coordinator, single or bulk
    assert coord.delete(f"{ENTITIES}/{kids['far']}").status_code == 404
    assert coord.post(f"{ENTITIES}/bulk-delete", json={"ids": [kids["far"]]}).get_json() == {"count": 0}
    root = Api(app, "root")
    assert root.delete(f"{ENTITIES}/{kids['far']}").status_code == 200
    assert kids["far"] not in [e["uuid"] for e in coord.get(f"{ENTITIES}?deleted=true").get_json()]
    assert coord.post(f"{ENTITIES}/{kids['far']}/restore").status_code == 404
    assert root.post(f"{ENTITIES}/{kids['far']}/restore").status_code == 200


def test_bulk_delete_and_restore(app: Any, rt: Any, kids: dict[str, str]) -> None:
    coord = Api(app, "coord")
    unknown = str(uuid.uuid4())
    ids = [kids["a"], kids["b"], kids["far"], unknown]
    done = coord.post(f"{ENTITIES}/bulk-delete", json={"ids": ids})
    assert done.status_code == 200 and done.get_json() == {"count": 2}
    assert sorted(e["uuid"] for e in coord.get(f"{ENTITIES}?deleted=true").get_json()) == sorted(ids[:2])
    assert coord.post(f"{ENTITIES}/bulk-delete", json={"ids": ids}).get_json() == {"count": 0}
    for bad, code in (({}, 400.91), ({"ids": []}, 400.91), ({"ids": "x"}, 400.91), ({"ids": ["not-a-uuid"]}, 400.93),
                      ({"ids": [1]}, 400.93)):
        resp = coord.post(f"{ENTITIES}/bulk-delete", json=bad)
        assert resp.status_code == 400 and resp.get_json()["code"] == code, bad
        assert "ids" in resp.get_json()["message"] or "entity id" in resp.get_json()["message"]
    back = coord.post(f"{ENTITIES}/bulk-restore", json={"ids": [kids["a"].upper(), kids["b"]]})
    assert back.get_json() == {"count": 2}
    assert coord.get(f"{ENTITIES}?deleted=true").get_json() == []
    with rt.db.session() as s:
        bulk = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(["entity.bulk.delete", "entity.bulk.restore"]))
                         .order_by(AuditEvent.id)).all()
    assert [e.action for e in bulk] == ["entity.bulk.delete", "entity.bulk.restore"]
    assert sorted(bulk[0].details["entities"]) == sorted(ids[:2])


def _count(s: Any, model: Any, *where: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_purge_after_30_days_removes_the_child_everywhere(app: Any, rt: Any, cli: Any, kids: dict[str, str]) -> None:
    coord = Api(app, "coord")
    a, b = kids["a"], kids["b"]
    # an update waiting (offline branch) and a held change for the child, and its duplicate pair
    dolma = phone(app, "dolma")
    post(dolma, follow_xml("uuid:f1", a, 1, "watch"))
    with rt.db.session() as s:
        entity_id = s.scalar(select(Entity.id).where(Entity.uuid == a))
        assert _count(s, DuplicateCandidate, (DuplicateCandidate.entity_a_id == entity_id)
                      | (DuplicateCandidate.entity_b_id == entity_id)) == 1
        assert _count(s, ChildDirectory, ChildDirectory.entity_id == entity_id) == 1
    post(phone(app, "far"), follow_xml("uuid:f2", a, 2, "urgent"))  # outside far's county: held
    with rt.db.session() as s:
        assert _count(s, HeldChange, HeldChange.target == a) == 1
    assert coord.delete(f"{ENTITIES}/{a}").status_code == 200
    # not yet due: nothing happens
    code, out, _ = cli("purge", "--now", (utcnow() + timedelta(days=29)).isoformat())
    assert code == 0 and "Entities purged: 0" in out
    assert len(coord.get(f"{ENTITIES}?deleted=true").get_json()) == 1
    code, out, _ = cli("purge", "--now", (utcnow() + timedelta(days=31)).isoformat())
    assert code == 0 and "Entities purged: 1" in out, out
    with rt.db.session() as s:
        assert _count(s, Entity, Entity.uuid == a) == 0
        assert _count(s, EntityVersion, EntityVersion.entity_id == entity_id) == 0
        assert _count(s, ChildDirectory, ChildDirectory.entity_id == entity_id) == 0
        assert _count(s, DuplicateCandidate, (DuplicateCandidate.entity_a_id == entity_id)
                      | (DuplicateCandidate.entity_b_id == entity_id)) == 0
        assert _count(s, EntityEvent, EntityEvent.entity_uuid == a) == 0
        assert _count(s, HeldChange, HeldChange.target == a) == 0
        assert _count(s, PurgedEntity, PurgedEntity.uuid == a) == 1
        assert _count(s, Entity, Entity.uuid == b) == 1  # the other child of the pair stays
        purge_event = s.scalars(select(AuditEvent).where(AuditEvent.action == "entity.purge")).one()
        assert purge_event.details["entities"] == 1
    assert coord.get(f"{ENTITIES}?deleted=true").get_json() == []
    assert coord.post(f"{ENTITIES}/{a}/restore").status_code == 404
    # the phone that registered it still hears "deleted"; the id may not be used again
    assert _deleted_in_integrity(_integrity(app, [a]), a)
    again = coord.post(ENTITIES, json={"uuid": a, "label": "X", "data": {"village": VILLAGE}})
    assert again.status_code == 409 and again.get_json()["code"] == 409.19
    post(dolma, reg_xml("uuid:a2", a, "扎西", "2012-01-01", VILLAGE))
    with rt.db.session() as s:
        assert _count(s, Entity, Entity.uuid == a) == 0
        event = s.scalars(select(EntityEvent).where(EntityEvent.entity_uuid == a)).one()
        assert event.status == "error" and event.code == "409.19"


def test_forced_purge_and_its_narrowing(app: Any, rt: Any, cli: Any, kids: dict[str, str]) -> None:
    coord, root = Api(app, "coord"), Api(app, "root")
    assert coord.post(f"{ENTITIES}/bulk-delete", json={"ids": [kids["a"], kids["b"]]}).get_json() == {"count": 2}
    assert root.delete(f"{ENTITIES}/{kids['far']}").status_code == 200
    code, _, err = cli("purge", "--force", "--entity", kids["a"])
    assert code == 1 and "--project" in err
    code, out, _ = cli("purge", "--force", "-p", "1", "-d", "children", "-e", kids["a"])
    assert code == 0 and "Entities purged: 1" in out
    code, out, _ = cli("purge", "--force", "--mode", "submissions")
    assert "Entities purged: 0" in out
    code, out, _ = cli("purge", "--force")
    assert code == 0 and "Entities purged: 2" in out
    with rt.db.session() as s:
        assert _count(s, PurgedEntity) == 3 and _count(s, Entity) == 0


def test_a_merged_child_is_not_in_the_trash(app: Any, rt: Any, cli: Any, kids: dict[str, str]) -> None:
    coord = Api(app, "coord")
    merged = coord.post(f"/v1/projects/1/children/{kids['b']}/merge", json={"into": kids["a"]})
    assert merged.status_code == 200, merged.data
    assert coord.get(f"{ENTITIES}?deleted=true").get_json() == []
    assert coord.post(f"{ENTITIES}/{kids['b']}/restore").status_code == 404
    code, out, _ = cli("purge", "--force")
    assert "Entities purged: 0" in out
    with rt.db.session() as s:
        assert _count(s, Entity, Entity.uuid == kids["b"]) == 1
    # the survivor deleted and purged: the file merged into it goes with it
    assert coord.delete(f"{ENTITIES}/{kids['a']}").status_code == 200
    code, out, _ = cli("purge", "--force")
    assert "Entities purged: 1" in out
    with rt.db.session() as s:
        assert _count(s, Entity, Entity.uuid.in_([kids["a"], kids["b"]])) == 0
        assert _count(s, PurgedEntity) == 2
