"""Entity processing: what an error records (never SQL or a child's data), lost races retried,
offline updates that arrive before the child's registration. The parallel versions of these
run against a live server in tests/e2e/test_concurrency.py."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import is_retryable
from app.models import Entity, EntityEvent
from app.services.children import entities
from app.services.submissions import ingest
from tests.app.conftest import PASSWORD, submission_body
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

VILLAGE = "540102002201"
SQL_TEXT = "INSERT INTO entity_version (entity_id, version, label, data) VALUES (%(entity_id)s, ...)"
CHILD = {"label": "Dolkar Tsering", "village": VILLAGE, "status": "self-harm risk"}


class PgError(Exception):
    """Stands in for psycopg's error: carries a SQLSTATE like the real one."""

    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


@pytest.fixture
def phone(app: Any, make_user: Any, publish: Any) -> DigestClient:
    publish(UPDATE_MD, "followup.md")
    publish(REGISTER_MD, "register.md")
    make_user("dolma", "collector", ["540102"])
    return DigestClient(app.test_client(), "dolma", PASSWORD)


def post(phone: DigestClient, xml: bytes) -> Any:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    return resp


def events(rt: Any) -> list[tuple[str, str | None, str]]:
    with rt.db.session() as s:
        return [(e.status, e.code, e.message) for e in s.scalars(select(EntityEvent).order_by(EntityEvent.id))]


def child(rt: Any, uid: str) -> Entity:
    with rt.db.session() as s:
        return s.scalars(select(Entity).where(Entity.uuid == uid)).one()


def test_unexpected_error_records_class_not_sql_or_child_data(phone: Any, rt: Any, monkeypatch: Any,
                                                              caplog: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone, register_xml("uuid:r1", uid, "Dolkar Tsering", VILLAGE))

    def broken(*args: Any, **kw: Any) -> Any:  # what a unique violation used to look like
        raise IntegrityError(SQL_TEXT, CHILD, PgError("23505", f"duplicate key; DETAIL: {CHILD}"))

    monkeypatch.setattr(entities, "_update", broken)
    monkeypatch.setattr(ingest, "LEAN_ENTITIES", False)  # the full path's errors (lean path: test_lean_entities)
    with caplog.at_level(logging.DEBUG):
        post(phone, update_xml("uuid:u1", uid, base=1, status="self-harm risk"))  # still 201: nothing lost
    status, code, message = events(rt)[-1]
    assert (status, code) == ("error", "500.1")
    assert "IntegrityError" in message and "not applied" in message
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "IntegrityError" in logged
    for secret in ("INSERT", "entity_version", "Dolkar", "self-harm", VILLAGE, "DETAIL"):
        assert secret not in message, secret
        assert secret not in logged, secret


def test_entity_id_that_is_not_a_uuid_is_not_repeated(phone: Any, rt: Any) -> None:
    post(phone, update_xml("uuid:u1", "Dolkar Tsering 2015-03-02", base=1, status="watch"))
    (status, code, message), = events(rt)
    assert (status, code) == ("error", "400.11")
    assert "Dolkar" not in message and "2015" not in message and "not a UUID" in message


def test_lost_race_is_retried_not_recorded_as_error(phone: Any, rt: Any, monkeypatch: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone, register_xml("uuid:r1", uid, "Dolkar", VILLAGE))
    real = entities._update
    calls: list[int] = []

    def deadlock_once(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE dataset ...", {}, PgError("40P01", "deadlock detected"))
        return real(*args, **kw)

    monkeypatch.setattr(entities, "_update", deadlock_once)
    monkeypatch.setattr(ingest, "LEAN_ENTITIES", False)  # the full path's (the lean path's: test_lean_entities)
    post(phone, update_xml("uuid:u1", uid, base=1, status="watch"))
    assert len(calls) == 2  # the whole submission ran again
    assert child(rt, uid).version == 2 and child(rt, uid).data["status"] == "watch"
    assert [(s, c) for s, c, _ in events(rt)] == [("applied", None), ("applied", None)]
    with rt.db.session() as s:  # the first attempt left nothing behind
        from app.models import SubmissionVersion

        assert s.scalars(select(SubmissionVersion.instance_id).order_by(SubmissionVersion.id)).all() == [
            "uuid:r1", "uuid:u1"]


def test_retryable_means_a_lost_race_only() -> None:
    assert is_retryable(OperationalError("x", {}, PgError("40001", "could not serialize access")))
    assert is_retryable(OperationalError("x", {}, PgError("40P01", "deadlock detected")))
    assert not is_retryable(IntegrityError("x", {}, PgError("23505", "duplicate key")))
    assert not is_retryable(OperationalError("x", {}, Exception("database is locked")))
    assert not is_retryable(ValueError("40001"))


def offline_update(instance: str, uid: str, branch: str, note: str) -> bytes:
    """A follow-up of a child registered offline on the same phone (no trunkVersion yet)."""
    return (f'<data id="followup" version="1"><child>{uid}</child><note>{note}</note><meta>'
            f"<instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{uid}" update="1" baseVersion="1" trunkVersion="" '
            f'branchId="{branch}"><label/></entity></meta></data>').encode()


def test_offline_update_arriving_before_the_registration_waits_for_it(phone: Any, rt: Any) -> None:
    uid, branch = str(uuid.uuid4()), str(uuid.uuid4())
    post(phone, offline_update("uuid:u1", uid, branch, "first visit"))
    ((status, _, message),) = events(rt)
    assert status == "backlog" and "registration" in message
    post(phone, register_xml("uuid:r1", uid, "Dolkar", VILLAGE))
    ent = child(rt, uid)
    assert (ent.version, ent.data["note"], ent.label) == (2, "first visit", "Dolkar")
    assert [s for s, _, _ in events(rt)] == ["applied", "applied"]


def test_update_without_branch_of_a_missing_child_is_still_an_error(phone: Any, rt: Any) -> None:
    missing = str(uuid.uuid4())
    post(phone, update_xml("uuid:u1", missing, base=1, status="watch"))
    ((status, code, message),) = events(rt)
    assert (status, code) == ("error", "404.8") and missing in message


def test_held_update_whose_registration_never_comes_is_reported_when_forced(phone: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone, offline_update("uuid:u1", uid, str(uuid.uuid4()), "lonely"))
    with rt.db.write() as s:
        assert entities.force_old_backlog(s, 1, older_than=timedelta(seconds=-1)) == 1
    ((status, code, _),) = events(rt)
    assert (status, code) == ("error", "404.8")
    with rt.db.write() as s:  # nothing is processed twice
        assert entities.force_old_backlog(s, 1, older_than=timedelta(seconds=-1)) == 0


def test_migration_scrubs_old_error_texts(phone: Any, rt: Any) -> None:
    from alembic import command
    from sqlalchemy import update

    from app.migrate import alembic_config, upgrade

    post(phone, update_xml("uuid:u1", str(uuid.uuid4()), base=1, status="watch"))  # two 404.8 errors
    post(phone, update_xml("uuid:u2", str(uuid.uuid4()), base=1, status="watch"))
    (first, _), (second, kept) = events_by_id(rt)
    cfg = alembic_config(rt.db.engine.url.render_as_string(hide_password=False))
    with rt.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010-1")
    old = f"internal error: (psycopg.errors.UniqueViolation) duplicate key [SQL: {SQL_TEXT}] [parameters: {CHILD}]"
    with rt.db.engine.begin() as conn:  # what the old code stored
        conn.execute(update(EntityEvent.__table__).where(EntityEvent.__table__.c.id == first)
                     .values(code="500.1", message=old))
    upgrade(rt.db.engine)
    texts = dict(events_by_id(rt))
    assert texts[first].startswith("internal error")
    assert "Dolkar" not in texts[first] and "SQL" not in texts[first] and "self-harm" not in texts[first]
    assert texts[second] == kept  # other errors stay as they were


def events_by_id(rt: Any) -> list[tuple[int, str]]:
    with rt.db.session() as s:
        return [(e.id, e.message) for e in s.scalars(select(EntityEvent).order_by(EntityEvent.id))]


@pytest.mark.parametrize("entity_id,dataset,branch", [
    ("x" * 200, "children", None),                         # an id longer than the column
    (str(uuid.uuid4()), "c" * 150, None),                  # a list name longer than the column
    (str(uuid.uuid4()), "children", "b" * 100),            # a branchId longer than the column
], ids=["long-id", "long-list-name", "long-branch"])
def test_oversized_entity_attributes_are_an_entity_error_not_a_500(phone: Any, rt: Any, entity_id: str,
                                                                   dataset: str, branch: str | None) -> None:
    offline = f' trunkVersion="1" branchId="{branch}"' if branch else ""
    xml = (f'<data id="followup" version="1"><child>x</child><note>n</note><meta><instanceID>uuid:o1</instanceID>'
           f'<entity dataset="{dataset}" id="{entity_id}" update="1" baseVersion="1"{offline}><label/></entity>'
           "</meta></data>").encode()
    post(phone, xml)  # stored; the entity part is an error, not a failed POST Collect would retry forever
    ((status, code, message),) = events(rt)
    assert status == "error" and code is not None and len(message) < 400


def test_old_held_update_is_applied_by_a_later_change_of_the_list(phone: Any, rt: Any) -> None:
    from sqlalchemy import update

    from app.models import utcnow

    uid = str(uuid.uuid4())
    post(phone, register_xml("uuid:r1", uid, "Dolkar", VILLAGE))
    post(phone, update_xml("uuid:o2", uid, base=2, trunk=1, branch=str(uuid.uuid4()), note="lonely"))
    post(phone, register_xml("uuid:r2", str(uuid.uuid4()), "Tashi", VILLAGE))
    assert child(rt, uid).version == 1  # held: its predecessor (base version 1) never came
    with rt.db.write() as s:  # six days pass
        s.execute(update(EntityEvent).where(EntityEvent.status == "backlog")
                  .values(created_at=utcnow() - entities.BACKLOG_FORCE_AFTER - timedelta(days=1)))
    post(phone, register_xml("uuid:r3", str(uuid.uuid4()), "Pema", VILLAGE))
    assert child(rt, uid).version == 1  # this process looked a moment ago: not again yet
    entities._FORCE_CHECKED.clear()  # ten minutes later
    post(phone, register_xml("uuid:r4", str(uuid.uuid4()), "Norbu", VILLAGE))
    ent = child(rt, uid)
    assert (ent.version, ent.data["note"]) == (2, "lonely")
    assert "backlog" not in [s for s, _, _ in events(rt)]
