"""The children entity list: creates, updates, offline branches, conflicts, scoped CSVs."""
from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Entity, EntityEvent, EntityVersion
from tests.app.conftest import PASSWORD, submission_body
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

VILLAGE_A = "540102002201"
VILLAGE_B = "540121100201"


@pytest.fixture
def forms(publish: Any) -> None:
    publish(UPDATE_MD, "followup.md")  # published before the list exists: linked later
    publish(REGISTER_MD, "register.md")


@pytest.fixture
def phone_a(app: Any, make_user: Any, forms: Any) -> DigestClient:
    make_user("dolma", "collector", ["540102"])
    return DigestClient(app.test_client(), "dolma", PASSWORD)


@pytest.fixture
def phone_b(app: Any, make_user: Any, forms: Any) -> DigestClient:
    make_user("pema", "collector", ["540121"])
    return DigestClient(app.test_client(), "pema", PASSWORD)


def post(phone: DigestClient, xml: bytes) -> Any:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data
    return resp


def children_csv(phone: DigestClient) -> list[dict[str, str]]:
    resp = phone.get("/v1/projects/1/forms/followup/attachments/children.csv", openrosa=False)
    assert resp.status_code == 200, resp.data
    return list(csv.DictReader(io.StringIO(resp.data.decode())))


def manifest_hash(phone: DigestClient) -> str:
    resp = phone.get("/v1/projects/1/forms/followup/manifest")
    assert resp.status_code == 200
    text = resp.data.decode()
    assert 'type="entityList"' in text and "<integrityUrl>" in text
    return text.split("<hash>")[1].split("</hash>")[0]


def entity(rt: Any, uid: str) -> Entity:
    with rt.db.session() as s:
        return s.scalars(select(Entity).where(Entity.uuid == uid)).one()


def test_registration_creates_child_visible_only_in_its_region(phone_a: Any, phone_b: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    hash_b_before = manifest_hash(phone_b)
    hash_a_before = manifest_hash(phone_a)
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    rows = children_csv(phone_a)
    assert [(r["name"], r["label"], r["__version"], r["village"], r["status"]) for r in rows] == [
        (uid, "Dolkar", "1", VILLAGE_A, "registered")]
    assert list(rows[0])[:5] == ["name", "label", "__version", "__trunkVersion", "__branchId"]
    assert children_csv(phone_b) == []
    assert manifest_hash(phone_a) != hash_a_before
    assert manifest_hash(phone_b) == hash_b_before  # nothing changed for that phone


def test_csv_conditional_get_answers_304(phone_a: Any) -> None:
    post(phone_a, register_xml("uuid:r1", str(uuid.uuid4()), "Dolkar", VILLAGE_A))
    first = phone_a.get("/v1/projects/1/forms/followup/attachments/children.csv", openrosa=False)
    etag = first.headers["ETag"]
    again = phone_a.get("/v1/projects/1/forms/followup/attachments/children.csv", openrosa=False,
                        headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert etag.strip('"') == manifest_hash(phone_a).removeprefix("md5:")


def test_no_consent_creates_no_entity(phone_a: Any, rt: Any) -> None:
    post(phone_a, register_xml("uuid:r1", str(uuid.uuid4()), "Dolkar", VILLAGE_A, consent="no"))
    assert children_csv(phone_a) == []
    with rt.db.session() as s:
        assert s.scalars(select(Entity)).all() == []


def test_update_counts_version_up_and_keeps_history(phone_a: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(phone_a, update_xml("uuid:u1", uid, base=1, status="watch"))
    (row,) = children_csv(phone_a)
    assert row["__version"] == "2" and row["status"] == "watch" and row["village"] == VILLAGE_A
    with rt.db.session() as s:
        hist = s.scalars(select(EntityVersion).order_by(EntityVersion.version)).all()
        assert [(v.version, v.data.get("status")) for v in hist] == [(1, "registered"), (2, "watch")]
        assert hist[1].data_received == {"status": "watch"}
        assert hist[1].submission_id is not None


def test_two_phones_update_same_base_offline_both_kept_and_flagged(phone_a: Any, rt: Any, app: Any,
                                                                   make_user: Any) -> None:
    make_user("lhamo", "collector", ["540102"])
    phone_c = DigestClient(app.test_client(), "lhamo", PASSWORD)
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    b1, b2 = str(uuid.uuid4()), str(uuid.uuid4())
    post(phone_a, update_xml("uuid:a1", uid, base=1, trunk=1, branch=b1, status="watch"))
    post(phone_c, update_xml("uuid:c1", uid, base=1, trunk=1, branch=b2, status="refer"))
    ent = entity(rt, uid)
    assert ent.version == 3 and ent.data["status"] == "refer"
    assert ent.conflict == "hard"
    with rt.db.session() as s:
        v3 = s.scalars(select(EntityVersion).where(EntityVersion.version == 3)).one()
        assert v3.conflicting_properties == ["status"] and v3.base_version == 1
        v2 = s.scalars(select(EntityVersion).where(EntityVersion.version == 2)).one()
        assert v2.data["status"] == "watch"  # the other phone's answer is kept in the history


def test_update_of_other_property_is_a_soft_conflict(phone_a: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(phone_a, update_xml("uuid:a1", uid, base=1, status="watch"))
    post(phone_a, update_xml("uuid:a2", uid, base=1, note="slept badly"))
    ent = entity(rt, uid)
    assert ent.conflict == "soft" and ent.data == {"village": VILLAGE_A, "status": "watch", "note": "slept badly"}


def test_offline_chain_arriving_out_of_order_is_held_then_applied(phone_a: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    branch = str(uuid.uuid4())
    # second offline update (local version 2 → 3) arrives first
    post(phone_a, update_xml("uuid:o2", uid, base=2, trunk=1, branch=branch, note="second"))
    with rt.db.session() as s:
        (held,) = s.scalars(select(EntityEvent).where(EntityEvent.status == "backlog")).all()
    assert entity(rt, uid).version == 1
    post(phone_a, update_xml("uuid:o1", uid, base=1, trunk=1, branch=branch, note="first", status="watch"))
    ent = entity(rt, uid)
    assert ent.version == 3 and ent.data["note"] == "second" and ent.data["status"] == "watch"
    assert ent.conflict is None  # one phone's contiguous offline chain is no conflict
    with rt.db.session() as s:
        assert s.scalars(select(EntityEvent).where(EntityEvent.status == "backlog")).all() == []


def test_offline_chain_crossed_by_an_online_update_after_a_long_history(phone_a: Any, rt: Any) -> None:
    """An update reads only the versions it compares (base, current, the branch's previous step), not the
    child's whole history: the outcome is the same as with every version at hand."""
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    for n in range(1, 6):  # versions 2..6, one visit after another
        post(phone_a, update_xml(f"uuid:v{n}", uid, base=n, note=f"visit {n}"))
    branch = str(uuid.uuid4())
    post(phone_a, update_xml("uuid:o1", uid, base=6, trunk=6, branch=branch, note="first", status="watch"))
    post(phone_a, update_xml("uuid:s1", uid, base=7, note="server"))  # another phone, online: version 8
    post(phone_a, update_xml("uuid:o2", uid, base=7, trunk=6, branch=branch, note="second"))
    ent = entity(rt, uid)
    assert ent.version == 9 and ent.data["note"] == "second" and ent.data["status"] == "watch"
    assert ent.conflict == "hard"  # the note changed on the server since the branch's previous step
    with rt.db.session() as s:
        hist = s.scalars(select(EntityVersion).where(EntityVersion.entity_id == ent.id)
                         .order_by(EntityVersion.version)).all()
        assert [v.conflict for v in hist] == [None] * 8 + ["hard"]
        assert hist[8].base_version == 7 and hist[8].branch_id == branch and hist[8].branch_base_version == 7
        assert hist[8].conflicting_properties == ["note"]


def test_old_backlog_is_forced_in(phone_a: Any, rt: Any) -> None:
    from datetime import timedelta

    from app.services.children import entities

    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(phone_a, update_xml("uuid:o2", uid, base=2, trunk=1, branch=str(uuid.uuid4()), note="lonely"))
    with rt.db.write() as s:
        assert entities.force_old_backlog(s, 1, older_than=timedelta(seconds=-1)) == 1
    assert entity(rt, uid).data["note"] == "lonely"


def test_entity_errors_are_recorded_and_never_fail_the_post(phone_a: Any, rt: Any) -> None:
    missing = str(uuid.uuid4())
    post(phone_a, update_xml("uuid:u1", missing, base=1, status="watch"))  # 201 all the same
    with rt.db.session() as s:
        (event,) = s.scalars(select(EntityEvent)).all()
        assert event.status == "error" and event.code == "404.8" and missing in event.message
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(phone_a, register_xml("uuid:r2", uid, "Someone else", VILLAGE_A))  # same entity id again
    assert entity(rt, uid).label == "Dolkar"
    with rt.db.session() as s:
        codes = [e.code for e in s.scalars(select(EntityEvent).where(EntityEvent.status == "error"))]
    assert "409.3" in codes


def test_integrity_reports_deleted_and_out_of_scope(phone_a: Any, phone_b: Any, rt: Any) -> None:
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    resp = phone_a.get(f"/v1/projects/1/datasets/children/integrity?id={uid},{uuid.uuid4()}")
    assert resp.status_code == 200 and resp.content_type.startswith("text/xml")
    assert f'<entity id="{uid}"><deleted>false</deleted></entity>' in resp.data.decode()
    resp = phone_b.get(f"/v1/projects/1/datasets/children/integrity?id={uid}")
    assert f'<entity id="{uid}"><deleted>true</deleted></entity>' in resp.data.decode()
