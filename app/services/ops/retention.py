"""Retention: closed care files are anonymised CAREFILE_RETENTION_YEARS after their closure.

What goes (PIPL Arts. 19, 47: no longer than needed): every answer the form marks sensitive
(`bind::carefile:sensitive`: names, ID numbers, phones, addresses, free text) and every field calculated
from one or from the child's label (`child_label`: forms.sensitivity follows the expressions), every
photo and signature (binary questions), the instance name and the entity block's label
(`meta/instanceName`, `meta/entity/label`), from the stored values, the repeat rows and the raw XML of
every version of every record of the child (including records of files merged into it); the files
themselves; the child's label in the list and its history, properties filled from sensitive answers, and
the child's directory row (full name, pinyin, guardian, ID number). Reviewers' comments on those records are
emptied too, and every finished export's file is deleted (exports made before the run hold what is gone).
What stays, for statistics: risk levels, statuses, dates, scores, region codes, the entity's other
properties (which never hold names: see scripts/build_xlsforms.py).

run() changes rows inside the caller's transaction and returns the blob keys to delete; the
caller deletes them after the commit (delete_blobs), so a failed commit never loses a file
the database still refers to. The original XML hash is kept, so a phone re-sending an old
submission is still recognised (and acknowledged) instead of storing its data again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    ChildDirectory,
    Dataset,
    Entity,
    EntityVersion,
    FormAttachment,
    FormVersion,
    Submission,
    SubmissionAttachment,
    SubmissionComment,
    SubmissionVersion,
    utcnow,
)
from app.services import access, audit
from app.services import forms as form_service
from app.services.children.store import CHILDREN, lock_dataset
from app.services.exports import jobs as export_jobs
from forms import FormSchema
from forms.sensitivity import sensitive_paths, sensitive_properties
from forms.submission import SENT_TEXT
from storage import BlobStore

ANONYMISED_LABEL = "（已匿名）anonymised"


@dataclass
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    children: list[str] = field(default_factory=list)  # uuids of the anonymised files
    records: int = 0  # submission versions changed
    values_removed: int = 0  # answers removed from stored values and repeat rows
    files: int = 0  # attachments removed from records
    comments: int = 0  # review comments emptied
    blob_keys: set[str] = field(default_factory=set)  # stored files to delete after the commit
    blobs_deleted: int = 0
    export_keys: list[str] = field(default_factory=list)  # export files to delete after the commit
    exports_expired: int = 0

    def lines(self) -> list[str]:
        verb = "Would anonymise" if self.dry_run else "Anonymised"
        out = [f"Closed before {self.cutoff.date().isoformat()}: {verb} {len(self.children)} child file(s); "
               f"{self.records} record version(s), {self.values_removed} sensitive answer(s), "
               f"{self.files} photo(s)/signature(s), {self.comments} review comment(s)" + ("" if self.dry_run else
                                                       f", {self.blobs_deleted} stored file(s) deleted, "
                                                       f"{self.exports_expired} finished export(s) deleted") + "."]
        out += [f"  child {uid}" for uid in self.children]
        return out


def cutoff_for(now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


def due_children(session: Session, cutoff: datetime) -> list[Entity]:
    """The children due, locked: the children lists first, then the children (docs/architecture.md, *Locks*)."""
    for project_id, name in session.execute(select(Dataset.project_id, Dataset.name).where(Dataset.name == CHILDREN)
                                            .order_by(Dataset.id)).all():
        lock_dataset(session, project_id, name)
    return list(session.scalars(
        select(Entity).join(Dataset, Dataset.id == Entity.dataset_id)
        .where(Dataset.name == CHILDREN, Entity.closed_at.is_not(None), Entity.closed_at <= cutoff,
               Entity.anonymised_at.is_(None), Entity.deleted_at.is_(None))
        .order_by(Entity.id).with_for_update(of=Entity)))


def run(session: Session, *, now: datetime | None = None, years: int, dry_run: bool = False) -> RetentionReport:
    """Anonymise every closed child file whose closure is `years` or more before `now`."""
    now = now or utcnow()
    report = RetentionReport(cutoff=cutoff_for(now, years), dry_run=dry_run)
    for child in due_children(session, report.cutoff):
        report.children.append(child.uuid)
        _anonymise_child(session, child, report, dry_run, now)
    if report.children and not dry_run:  # finished exports may hold what was just removed
        report.export_keys = export_jobs.expire(session, keep_days=0, everything=True)
        report.exports_expired = len(report.export_keys)
    if not dry_run:
        audit.record(session, None, "retention.run", target="children", username="carefile retention",
                     years=years, cutoff=report.cutoff.isoformat(), children=len(report.children),
                     records=report.records, values=report.values_removed, files=report.files)
    session.flush()
    return report


def _anonymise_child(session: Session, child: Entity, report: RetentionReport, dry_run: bool, now: datetime) -> None:
    merged = list(session.scalars(select(Entity).where(Entity.dataset_id == child.dataset_id,
                                                       Entity.merged_into == child.uuid)))
    uids = [child.uuid, *(m.uuid for m in merged)]
    versions = session.scalars(
        select(SubmissionVersion).join(Submission, Submission.id == SubmissionVersion.submission_id)
        .where(Submission.entity_uuid.in_(uids))).all()
    records_before, values_before, files_before = report.records, report.values_removed, report.files
    ds = session.get(Dataset, child.dataset_id)
    # The child's label is identity whatever the forms build it from: every list it names is treated as
    # sensitive, so fields calculated from it (child_label in a visit) go too.
    lists = (access.sensitive_label_lists(session, ds.project_id) if ds else frozenset()) | {CHILDREN}
    props: set[str] = set()
    for sv in versions:
        fv = session.get(FormVersion, sv.form_version_id)
        if fv is None:
            continue
        schema = form_service.schema_of(fv)
        props |= sensitive_properties(schema, lists)
        _anonymise_version(sv, schema, lists, report, dry_run)
    comments = session.scalars(select(SubmissionComment)
                               .join(Submission, Submission.id == SubmissionComment.submission_id)
                               .where(Submission.entity_uuid.in_(uids), SubmissionComment.body != "")).all()
    report.comments += len(comments)
    if dry_run:
        return
    for comment in comments:  # reviewers' free text about the child
        comment.body = ""
    for entity in (child, *merged):
        entity.label = ANONYMISED_LABEL
        entity.anonymised_at = now
        entity.data = _without(entity.data, props)
        for ev in session.scalars(select(EntityVersion).where(EntityVersion.entity_id == entity.id)):
            ev.label = ANONYMISED_LABEL
            ev.note = None  # free text typed by a coordinator
            ev.data = _without(ev.data, props)
            ev.data_received = _without(ev.data_received, props | {"label"})
        directory = session.get(ChildDirectory, entity.id)
        if directory is not None:  # full name, pinyin, guardian, ID number: the search's copy
            session.delete(directory)
    if ds is not None:
        ds.revision = (ds.revision or 0) + 1
    audit.record(session, None, "child.anonymise", target=f"child:{child.uuid}", username="carefile retention",
                 closed_at=child.closed_at.isoformat() if child.closed_at else None,
                 records=report.records - records_before, values=report.values_removed - values_before,
                 files=report.files - files_before)


def _without(data: dict[str, Any] | None, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in (data or {}).items() if k not in keys}


def _sensitive(schema: FormSchema, lists: frozenset[str] | set[str]) -> tuple[set[str], set[str]]:
    """Absolute paths of the nodes to remove (sensitive answers and what is calculated from them, files, the
    instance name and the entity block's label), and the value keys of the questions among them."""
    root = f"/{schema.root}"
    paths = set(sensitive_paths(schema, lists)) | {f.path for f in schema.fields if f.type == "binary"}
    paths |= {f"{root}/meta/instanceName", f"{root}/meta/entity/label"}
    keys = {"meta/instanceName", "meta/entity/label"}  # kept in the values whether or not the form declares them
    for f in schema.fields:
        if f.path in paths:
            base = f.repeat if f.repeat else f"/{schema.root}"
            keys.add(f.path[len(base) + 1:] if f.path.startswith(base + "/") else f.name)
    return paths, keys


def _strip(values: dict[str, Any], keys: set[str]) -> tuple[dict[str, Any], int]:
    kept = {k: v for k, v in values.items() if k not in keys}
    removed = sum(1 for k, v in values.items() if k in keys and v not in (None, ""))
    sent = kept.get(SENT_TEXT)  # a removed select-multiple's text as submitted goes with it
    if isinstance(sent, dict) and not sent.keys().isdisjoint(keys):
        sent = {k: v for k, v in sent.items() if k not in keys}
        if sent:
            kept[SENT_TEXT] = sent
        else:
            del kept[SENT_TEXT]
    return kept, removed


def _anonymise_version(sv: SubmissionVersion, schema: FormSchema, lists: frozenset[str] | set[str],
                       report: RetentionReport, dry_run: bool) -> None:
    paths, keys = _sensitive(schema, lists)
    data, removed = _strip(sv.data or {}, keys)
    rows = []
    for row in sv.repeat_rows:
        kept, n = _strip(row.data or {}, keys)
        removed += n
        rows.append((row, kept))
    files = [a for a in sv.attachments if a.blob_key is not None]
    report.values_removed += removed
    report.files += len(files)
    report.records += 1
    if dry_run:
        return
    sv.data = data
    for row, kept in rows:
        row.data = kept
    sv.xml = _strip_xml(sv.xml, paths)
    sv.instance_name = None
    for a in files:
        report.blob_keys.add(a.blob_key)  # type: ignore[arg-type]
        a.blob_key, a.md5, a.size = None, None, None


def _strip_xml(xml: bytes, paths: set[str]) -> bytes:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.fromstring(xml, parser)

    def walk(el: Any, path: str) -> None:
        for child in el:
            if not isinstance(child.tag, str):
                continue
            cpath = f"{path}/{etree.QName(child).localname}"
            if cpath in paths:
                for sub in list(child):
                    child.remove(sub)
                child.text = None
            else:
                walk(child, cpath)

    walk(root, f"/{etree.QName(root).localname}")
    return bytes(etree.tostring(root, xml_declaration=False, encoding="utf-8"))


def delete_blobs(session: Session, store: BlobStore, report: RetentionReport) -> None:
    """After the commit: delete the removed files that no other row refers to (files are shared by hash), and
    the expired exports' files."""
    export_jobs.delete_files(session, store, report.export_keys)
    if not report.blob_keys:
        return
    still = set(session.scalars(select(SubmissionAttachment.blob_key).where(
        SubmissionAttachment.blob_key.in_(report.blob_keys))))
    still |= set(session.scalars(select(FormAttachment.blob_key).where(FormAttachment.blob_key.in_(report.blob_keys))))
    for key in sorted(report.blob_keys - still):
        store.delete(key)
        report.blobs_deleted += 1


__all__ = ["RetentionReport", "cutoff_for", "delete_blobs", "due_children", "run"]
