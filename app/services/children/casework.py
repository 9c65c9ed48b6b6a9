"""Case work on a child's file outside form submissions: moves, closure and reopening.

Every change here is a new entity version without a submission (EntityVersion.action says what,
actor_id who, note why), written on the locked entity row, so the phones' lists (children.csv)
and the child's timeline change like after a form update. The entity logic (app.services.children.entities)
(conflict detection, offline branches) treats these versions like any server-side update: a
phone's update based on an older version is applied on top and flagged as a conflict.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.models import Dataset, Entity, EntityVersion, User, utcnow
from app.services import access, audit, events, regions
from app.services.answers import answer, iso_day, local_today
from app.services.children.store import CHILDREN, follow_child, locked_child, server_version

log = logging.getLogger(__name__)

CLOSE_REASONS = ("turned18", "risk_resolved", "moved", "deceased", "consent_withdrawn", "other")


# ---------------------------------------------------------------- moves


def transfer(session: Session, project_id: int, user: User, uid: str, village: str, note: str = "",
             ip: str = "") -> Entity:
    """Move the child to another village: the old director's phone loses it, the new one's gets it."""
    access.require_reader(user)
    child = locked_child(session, project_id, user, uid)  # first: a child out of reach is 404 whatever was asked
    village = (village or "").strip()
    if not (len(village) == 12 and village.isdigit()):
        raise problems.NOT_A_VILLAGE_CODE(village=village)
    if not regions.exists(village):
        raise problems.VILLAGE_NOT_IN_TABLE(village=village)
    if user.role not in access.COORDINATORS and not access.sees_region(user, village):
        raise problems.VILLAGE_OUTSIDE_REGIONS(village=village)
    old = child.region_code or ""
    if (child.data or {}).get("village") == village:
        raise problems.CHILD_ALREADY_IN_VILLAGE(village=village)
    changes = {"village": village, "township": village[:9], "county": village[:6], "prefecture": village[:4]}
    server_version(session, child, changes, action="transfer", user=user, note=note.strip()[:500])
    follow_child(session, child)
    audit.record(session, user, "child.transfer", target=f"child:{child.uuid}", ip=ip, **{"from": old, "to": village})
    return child


# ---------------------------------------------------------------- closure


# "Turned 18" fits a case from this many days before the 18th birthday (the turning-18 list's hand-over window).
ADULT_NOTICE_DAYS = 90


def may_close_as_adult(child: Entity, today: date) -> bool:
    """Whether 'turned 18' can be why the case closes: the recorded birth date puts the 18th birthday within
    ADULT_NOTICE_DAYS of today or before it (no recorded birth date: the coordinator knows)."""
    born = iso_day((child.data or {}).get("birth_date"))
    if born is None:
        return True
    try:
        adult = born.replace(year=born.year + 18)
    except ValueError:  # born on 29 February
        adult = date(born.year + 18, 3, 1)
    return adult <= today + timedelta(days=ADULT_NOTICE_DAYS)


def close(session: Session, project_id: int, user: User, uid: str, reason: str, note: str = "",
          ip: str = "") -> Entity:
    """Close the case: the child leaves phones and overdue lists; the file stays (retention applies)."""
    access.require_reader(user)
    child = locked_child(session, project_id, user, uid)  # first: a child out of reach is 404 whatever was asked
    reason = (reason or "").strip()
    note = (note or "").strip()[:1000]
    if reason not in CLOSE_REASONS:
        raise problems.CLOSE_REASON_UNKNOWN(reason=reason, choices=', '.join(CLOSE_REASONS))
    if reason == "other" and not note:
        raise problems.CLOSE_NOTE_MISSING()
    if child.closed_at is not None:
        raise problems.CASE_CLOSED_ALREADY()
    if reason == "turned18" and not may_close_as_adult(child, local_today()):
        raise problems.NOT_TURNING_18(adult_notice_days=ADULT_NOTICE_DAYS)
    server_version(session, child, {"status": "closed", "next_followup_due": ""}, action="close", user=user,
                   note=f"{reason}: {note}" if note else reason)
    child.closed_at = utcnow()
    child.close_reason = reason
    audit.record(session, user, "child.close", target=f"child:{child.uuid}", ip=ip, reason=reason)
    return child


def reopen(session: Session, project_id: int, user: User, uid: str, note: str = "", ip: str = "") -> Entity:
    """Reopen a closed case: status and next follow-up date as they were before the closure."""
    access.require_reader(user)
    child = locked_child(session, project_id, user, uid)
    if child.closed_at is None and (child.data or {}).get("status") != "closed":
        raise problems.CASE_NOT_CLOSED()
    if child.anonymised_at is not None:
        raise problems.CASE_ANONYMISED()
    before = session.scalars(select(EntityVersion).where(EntityVersion.entity_id == child.id)
                             .order_by(EntityVersion.version.desc())).all()
    prev = next((v.data for v in before if (v.data or {}).get("status") not in (None, "", "closed")), {})
    changes = {"status": prev.get("status") or "registered",
               "next_followup_due": prev.get("next_followup_due") or date.today().isoformat()}
    server_version(session, child, changes, action="reopen", user=user, note=note.strip()[:500])
    child.closed_at = None
    child.close_reason = None
    audit.record(session, user, "child.reopen", target=f"child:{child.uuid}", ip=ip)
    return child


def _changes_case_state(event: events.ChildChanged) -> bool:
    """Whether on_child_changed has anything to do: a form closed an open case, or an update reopened (in its
    data) a closed one."""
    closed_now = (event.entity.data or {}).get("status") == "closed"
    closed_before = event.entity.closed_at is not None
    return (closed_now and not closed_before) or (not closed_now and closed_before and not event.created)


@events.only_when(_changes_case_state)
def on_child_changed(event: events.ChildChanged) -> None:
    """After-effect of a submission that created or updated a child (app/services/effects.py).

    A form that sets status `closed` (the referral/follow-up form's closure) closes the case with
    the form's close_reason. An update that arrives for a closed case (made offline before the
    closure reached the phone) is kept in the history, but the case stays closed: only a reopen
    (web page or API) reopens it.
    """
    session, entity, sv, created = event.session, event.entity, event.version, event.created
    ds = session.get(Dataset, entity.dataset_id)
    if ds is None or ds.name != CHILDREN:
        return
    status = (entity.data or {}).get("status")
    if status == "closed" and entity.closed_at is None:
        reason = str(answer(event.answers if event.answers is not None else (sv.data or {}), "close_reason")
                     or "other")
        entity.closed_at = utcnow()
        entity.close_reason = reason if reason in CLOSE_REASONS else "other"
    elif status != "closed" and entity.closed_at is not None and not created:
        keep = {"status": "closed", "next_followup_due": ""}
        entity.data = {**(entity.data or {}), **keep}
        latest = session.scalar(select(EntityVersion).where(EntityVersion.entity_id == entity.id,
                                                            EntityVersion.version == entity.version))
        if latest is not None:
            latest.data = {**(latest.data or {}), **keep}
