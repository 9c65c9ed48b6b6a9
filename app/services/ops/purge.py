"""Purging the trash: entities and submissions deleted more than 30 days ago leave for good (`carefile purge`).

As Central's purge task (run daily from cron; `--force` purges everything in the trash at once). Entities:
app/services/children/trash.py; submissions: app/services/submissions/trash.py. run() works inside the
caller's transaction; delete_blobs() runs after the commit and deletes the purged records' stored files
that no other row refers to (files are shared by hash), so a failed commit never loses a file still in use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.services.children import trash as entity_trash
from app.services.ops.blobs import referenced_keys_query
from app.services.submissions import trash as submission_trash
from storage import BlobStore

MODES = ("all", "entities", "submissions")


@dataclass
class PurgeReport:
    entities: int = 0
    submissions: int = 0
    blob_keys: set[str] = field(default_factory=set)
    blobs_deleted: int = 0

    def line(self) -> str:
        return (f"Entities purged: {self.entities}, Submissions purged: {self.submissions}, "
                f"stored files deleted: {self.blobs_deleted}")


def run(session: Session, *, now: datetime | None = None, force: bool = False, mode: str = "all",
        project_id: int | None = None, dataset: str | None = None, entity_uuid: str | None = None,
        xml_form_id: str | None = None, instance_id: str | None = None) -> PurgeReport:
    if mode not in MODES:
        raise problems.PURGE_MODE_UNKNOWN(mode=mode, modes=", ".join(MODES))
    if entity_uuid and not (project_id and dataset):
        raise problems.PURGE_ENTITY_NEEDS_LIST()
    if dataset and not project_id:
        raise problems.PURGE_LIST_NEEDS_PROJECT()
    if instance_id and not (project_id and xml_form_id):
        raise problems.PURGE_SUBMISSION_NEEDS_FORM()
    if xml_form_id and not project_id:
        raise problems.PURGE_FORM_NEEDS_PROJECT()
    report = PurgeReport()
    if mode in ("all", "submissions") and not (dataset or entity_uuid):
        report.submissions, report.blob_keys = submission_trash.purge(
            session, now=now, force=force, project_id=project_id, xml_form_id=xml_form_id, instance_id=instance_id)
    if mode in ("all", "entities") and not (xml_form_id or instance_id):
        report.entities = entity_trash.purge(session, now=now, force=force, project_id=project_id, dataset=dataset,
                                             uuids=[entity_uuid] if entity_uuid else None)
    return report


def delete_blobs(session: Session, store: BlobStore, report: PurgeReport) -> None:
    """After the commit: delete the purged records' files that no row refers to any more."""
    if not report.blob_keys:
        return
    refs = referenced_keys_query().subquery()
    still = set(session.scalars(select(refs.c.blob_key).where(refs.c.blob_key.in_(sorted(report.blob_keys)))))
    for key in sorted(report.blob_keys - still):
        store.delete(key)
        report.blobs_deleted += 1
