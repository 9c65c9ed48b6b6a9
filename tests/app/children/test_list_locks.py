"""The locks of a list's changes (app/services/children/store.py, the lock order; lean.py): the plain changes of
new records share the list's lock and take turns only on the names they decide on — a child's id, a registration's
duplicate check — while every other change of the list excludes them. Each test holds one change open after its
rows are written (before its COMMIT) and looks at who waits for it."""
from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from app.models import Dataset, DuplicateCandidate, Entity
from app.services.children import duplicates, entities, lean
from app.services.children.store import list_revision, lock_dataset
from tests.app.children.casework_helpers import follow_xml, phone, post, reg_xml

A, B = "a1000000-0000-4000-8000-000000000000", "b1000000-0000-4000-8000-000000000000"
VILLAGE = "540102002001"
WAIT = 1.5  # seconds a change that takes turns is seen waiting


class Held:
    """Posts a record in a thread; a lean change of it stops after its rows are written until `release`."""

    def __init__(self, setup: Any, monkeypatch: Any, body: bytes) -> None:
        self.written, self.go = threading.Event(), threading.Event()
        real = lean.Rows.flush
        # The periodic look for old held updates is not due (when it is, the change takes the full path).
        monkeypatch.setattr(entities, "force_due", lambda *args, **kw: False)

        def flush(rows: Any, *args: Any, **kw: Any) -> None:
            real(rows, *args, **kw)
            if threading.current_thread() is self.thread:
                self.written.set()
                assert self.go.wait(30)

        monkeypatch.setattr(lean.Rows, "flush", flush)
        self.thread = Posting(setup, body)
        self.thread.start()
        assert self.written.wait(30), "the held change did not take the lean path"

    def release(self) -> None:
        self.go.set()
        self.thread.join(30)
        assert self.thread.error is None


class Posting(threading.Thread):
    def __init__(self, setup: Any, body: bytes) -> None:
        super().__init__(daemon=True)
        self.client, self.body, self.error = phone(setup, "dolma"), body, None

    def run(self) -> None:
        try:
            post(self.client, self.body)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err

    def finished(self, seconds: float) -> bool:
        self.join(seconds)
        assert self.error is None
        return not self.is_alive()


def test_two_registrations_of_one_child_at_once_are_flagged_as_duplicates(setup: Any, rt: Any,
                                                                          monkeypatch: Any) -> None:
    held = Held(setup, monkeypatch, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE))
    second = Posting(setup, reg_xml("uuid:r2", B, "扎西", "2015-03-14", VILLAGE))
    second.start()
    assert not second.finished(WAIT)  # its duplicate check waits for the first registration
    held.release()
    assert second.finished(30)
    with rt.db.session() as s:
        ids = dict(s.execute(select(Entity.uuid, Entity.id)).all())
        pairs = [(p.entity_a_id, p.entity_b_id, p.reasons) for p in s.scalars(select(DuplicateCandidate))]
    assert pairs == [(ids[A], ids[B], ["name_birth"])]


def test_plain_changes_of_other_children_go_on_while_one_is_written(setup: Any, rt: Any, monkeypatch: Any) -> None:
    if rt.db.is_sqlite:
        pytest.skip("SQLite has one writer at a time")
    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE))
    post(dolma, reg_xml("uuid:r2", B, "卓玛", "2016-08-01", VILLAGE))
    with rt.db.session() as s:
        before = list_revision(s, s.scalars(select(Dataset).where(Dataset.name == "children")).one())
    held = Held(setup, monkeypatch, follow_xml("uuid:f1", A, 1, "watch"))
    other = Posting(setup, follow_xml("uuid:f2", B, 1, "healthy"))
    other.start()
    assert other.finished(30)  # a visit of another child does not wait
    born_later = Posting(setup, reg_xml("uuid:r3", "c1000000-0000-4000-8000-000000000000", "次仁", "2012-01-09",
                                        VILLAGE))
    born_later.start()
    assert born_later.finished(30)  # nor does a registration that cannot be the held child's duplicate
    same_child = Posting(setup, follow_xml("uuid:f3", A, 2, "refer"))
    same_child.start()
    assert not same_child.finished(WAIT)  # a second visit of the same child waits for the first
    # Any other change of the list waits for the plain changes (here: the list's lock, as case work takes it).
    with rt.db.write() as s, pytest.raises(OperationalError):
        s.execute(text("SET LOCAL lock_timeout = '300ms'"))
        lock_dataset(s, 1, "children")
    held.release()
    assert same_child.finished(30)
    with rt.db.session() as s:
        child = s.scalars(select(Entity).where(Entity.uuid == A)).one()
        assert (child.version, child.data["status"]) == (3, "refer")
        assert list_revision(s, s.scalars(select(Dataset).where(Dataset.name == "children")).one()) == before + 4


def test_the_list_row_changes_only_under_the_lists_lock(setup: Any, rt: Any) -> None:
    if rt.db.is_sqlite:
        pytest.skip("PostgreSQL's trigger (migration 0029); SQLite has one writer at a time")
    with pytest.raises(DBAPIError, match="without its lock"), rt.db.write() as s:
        s.execute(update(Dataset).where(Dataset.name == "children").values(revision=Dataset.revision + 1))
    with rt.db.write() as s:
        ds = lock_dataset(s, 1, "children")
        assert ds is not None
        ds.revision = (ds.revision or 0) + 1


def test_registrations_a_duplicate_reason_could_join_share_a_lock_name() -> None:
    """duplicates.check_keys: a birth date within 31 days of another's (either side), or the same ID number, in
    the same province, gives a shared name; other provinces' children share none."""
    def keys(born: date, id_number: str = "", village: str = VILLAGE) -> set[str]:
        return set(duplicates.check_keys({"birth_date": born.isoformat()}, village,
                                         {"id_number": id_number, "child_name": "扎西"}))

    start = date(2015, 1, 1)
    for offset in range(0, 400, 3):
        day = start + timedelta(days=offset)
        for gap in (0, 1, 15, 30, 31):
            assert keys(day) & keys(day + timedelta(days=gap)), (day, gap)
    assert not keys(start) & keys(start + timedelta(days=100))
    assert keys(start, "54010220150314002X") & keys(start + timedelta(days=900), "54010220150314002x")
    assert not keys(start) & keys(start, village="630102002001")
    assert duplicates.check_keys({}, None, {}) == []
