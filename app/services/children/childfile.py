"""One child, one file (一人一档): everything recorded about a child, in time order.

A record belongs to a child when its meta/entity block names the child (Submission.entity_uuid):
the registration that created the child and every identification, assessment, visit and
referral that picked the child from children.csv.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Entity, EntityVersion, Form, FormVersion, Submission, SubmissionVersion, User
from app.services import access
from app.services.children.store import CHILDREN, children_query, get_child, overdue_condition
from app.services.children.store import history as entity_history
from app.services.schemas import schema_of

DATE_KEYS = ("visit_date", "today", "start")  # the record's own date, when the form has one


@dataclass
class ChildSummary:
    uuid: str
    label: str
    region_code: str | None
    version: int
    status: str | None
    risk_level: str | None
    referral_status: str | None
    next_followup_due: str | None
    conflict: str | None
    updated_at: str

    @classmethod
    def of(cls, e: Entity) -> ChildSummary:
        d = e.data or {}
        return cls(uuid=e.uuid, label=e.label, region_code=e.region_code, version=e.version,
                   status=d.get("status") or None, risk_level=d.get("risk_level") or None,
                   referral_status=d.get("referral_status") or None,
                   next_followup_due=d.get("next_followup_due") or None, conflict=e.conflict,
                   updated_at=e.updated_at.isoformat())


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def list_children(session: Session, project_id: int, user: User, *, q: str = "", region: str = "",
                  risk_level: str = "", status: str = "", overdue_on: date | None = None,
                  limit: int = 50, offset: int = 0,
                  count_limit: int | None = None) -> tuple[list[ChildSummary], int]:
    """A page of the children the user may see, and how many match (with `count_limit`: counted up to one
    more than the limit, so a total above it means "more than count_limit" — counting every one of a
    province's 120,000 overdue children reads all their rows, bench/scale)."""
    query = children_query(session, project_id, user)
    red = access.Redactor(session, user, project_id)
    show = red.show or CHILDREN not in red.lists
    if q and show:
        query = query.where(Entity.label.contains(q, autoescape=True))
    elif q:  # labels may be built from names: search the pseudonym (儿童 A3F2) instead
        query = query.where(Entity.uuid.startswith(q.replace("儿童", "").strip().lower(), autoescape=True))
    if region:
        query = query.where(Entity.region_code.startswith(region, autoescape=True))
    if risk_level:
        query = query.where(Entity.data["risk_level"].as_string() == risk_level)
    if status:
        query = query.where(Entity.data["status"].as_string() == status)
    if overdue_on is not None:
        query = query.where(overdue_condition(overdue_on))
    counted = query.with_only_columns(Entity.id).limit(count_limit + 1) if count_limit is not None else query
    total = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
    order = (Entity.label, Entity.id) if show else (Entity.uuid,)
    rows = session.scalars(query.order_by(*order).limit(limit).offset(offset))
    out = []
    for e in rows:
        summary = ChildSummary.of(e)
        if e.anonymised_at is None:
            summary.label = red.child_label(CHILDREN, e.uuid, e.label)
        out.append(summary)
    return out, int(total)


def overdue_children(session: Session, project_id: int, user: User, today: date,
                     limit: int = 200) -> dict[str, list[ChildSummary]]:
    """Children whose next follow-up date has passed, grouped by region code."""
    rows, _ = list_children(session, project_id, user, overdue_on=today, limit=limit)
    grouped: dict[str, list[ChildSummary]] = {}
    for row in sorted(rows, key=lambda r: (r.next_followup_due or "", r.label)):
        grouped.setdefault(row.region_code or "", []).append(row)
    return grouped


def _record_date(values: dict[str, Any], received: str) -> str:
    for key in DATE_KEYS:
        v = values.get(key)
        if isinstance(v, str) and v:
            return v
    return received


def child_file(session: Session, project_id: int, user: User, uid: str) -> dict[str, Any]:
    """The child's whole file: current state, every record in time order, entity history.

    Sensitive answers, files and a label built from them are masked unless the user may see them
    (app.services.access); "unmasked" tells the caller to audit the view as one of identifying data.
    """
    child = get_child(session, project_id, user, uid)
    red = access.Redactor(session, user, project_id)
    rows = session.execute(
        select(Submission, SubmissionVersion, Form, FormVersion)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .join(Form, Form.id == Submission.form_id)
        .join(FormVersion, FormVersion.id == SubmissionVersion.form_version_id)
        .where(Form.project_id == project_id, Submission.entity_uuid == child.uuid,
               Submission.deleted_at.is_(None)))
    history_rows = entity_history(session, child)
    merged_from = _merged_history(session, child)
    history_rows = sorted(history_rows + list(merged_from), key=lambda v: (v.created_at, v.id))
    changed_by = {v.submission_id: v.data_received for v in history_rows if v.submission_id is not None}
    records = []
    sensitive_props = red.entity_properties(CHILDREN, {p: "x" for p in (child.data or {})})
    for sub, sv, form, fv in rows:
        received = sub.created_at.isoformat()
        changed = red.entity_properties(CHILDREN, changed_by.get(sub.id) or {})
        schema = schema_of(fv)
        withheld = red.withheld_files(schema, sv.data or {}, sv.repeat_rows)
        records.append({
            "submission_id": sub.id,
            # What the record changed in the child's file (e.g. status → watch): its summary line.
            "summary": [[k, v] for k, v in changed.items() if k != "label" and v not in (None, "")],
            "images": [a.name for a in sv.attachments if a.blob_key is not None and a.name not in withheld and (
                (a.content_type or "").startswith("image/") or a.name.lower().endswith(IMAGE_EXTENSIONS))],
            "form_id": form.xml_form_id,
            "form_title": fv.title,
            "form_version": fv.version,
            "instance_id": sub.instance_id,
            "instance_name": sv.instance_name,
            "date": _record_date(sv.data, received),
            "received_at": received,
            "review_state": sub.review_state,
            "submitter_id": sub.submitter_id,
            "edited": sv.deprecated_id is not None,
            "values": red.values(schema, sv.data or {}),
            "repeats": [{"repeat": r.repeat, "ordinal": r.ordinal, "values": red.values(schema, r.data or {}, r.repeat)}
                        for r in sv.repeat_rows],
            "attachments": [{"name": a.name, "present": a.blob_key is not None, "size": a.size,
                             "content_type": a.content_type} for a in sv.attachments if a.name not in withheld],
        })
    records.sort(key=lambda r: (r["date"], r["received_at"]))
    by_id = {r["submission_id"]: r for r in records}
    history = [{"version": v.version, "label": red.child_label(CHILDREN, child.uuid, v.label),
                "changed": red.entity_properties(CHILDREN, v.data_received or {}), "at": v.created_at.isoformat(),
                "submission_id": v.submission_id, "conflict": v.conflict,
                "conflicting_properties": v.conflicting_properties,
                "form_id": by_id[v.submission_id]["form_id"] if v.submission_id in by_id else None,
                "instance_id": by_id[v.submission_id]["instance_id"] if v.submission_id in by_id else None,
                # Server-side versions (transfer, close, reopen, merge) and versions of merged files.
                "action": v.action, "note": v.note, "merged_from": merged_from.get(v)}
               for v in history_rows]
    summary = ChildSummary.of(child)
    if child.anonymised_at is None:  # an anonymised file's label says so, and names nobody
        summary.label = red.child_label(CHILDREN, child.uuid, child.label)
    masked_any = any(v == access.MASK for v in sensitive_props.values())
    return {
        "child": summary.__dict__,
        "closed_at": child.closed_at.isoformat() if child.closed_at else None,
        "close_reason": child.close_reason,
        "anonymised": child.anonymised_at is not None,
        "properties": red.entity_properties(CHILDREN, child.data or {}),
        "unmasked": red.show,
        "masked": not red.show and (masked_any or summary.label != child.label),
        "records": records,
        "history": history,
    }


def _merged_history(session: Session, child: Entity) -> dict[EntityVersion, str]:
    """Entity versions of the files merged into this child, each with the merged file's uuid."""
    rows = session.execute(select(EntityVersion, Entity.uuid).join(Entity, Entity.id == EntityVersion.entity_id)
                           .where(Entity.dataset_id == child.dataset_id, Entity.merged_into == child.uuid))
    return {v: uid for v, uid in rows}
