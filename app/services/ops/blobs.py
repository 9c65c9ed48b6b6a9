"""Orphan blobs: files in the store that no row refers to (left by a crash before a commit)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, union

from app.db import Database
from app.models import (
    DraftSubmissionFile,
    ExportJob,
    FormAttachment,
    FormDraft,
    FormDraftAttachment,
    FormVersion,
    SubmissionAttachment,
    utcnow,
)
from storage import BlobStore


def referenced_keys_query() -> Any:
    """Every blob key a row refers to (one column `blob_key`; also run on backup snapshots)."""
    return union(
        select(SubmissionAttachment.blob_key).where(SubmissionAttachment.blob_key.is_not(None)),
        select(FormAttachment.blob_key).where(FormAttachment.blob_key.is_not(None)),
        select(FormVersion.source_blob_key).where(FormVersion.source_blob_key.is_not(None)),
        select(ExportJob.blob_key).where(ExportJob.blob_key.is_not(None)),
        select(FormDraft.source_blob_key).where(FormDraft.source_blob_key.is_not(None)),
        select(FormDraftAttachment.blob_key).where(FormDraftAttachment.blob_key.is_not(None)),
        select(DraftSubmissionFile.blob_key).where(DraftSubmissionFile.blob_key.is_not(None)),
    )


def referenced_keys(db: Database) -> set[str]:
    q = referenced_keys_query()
    with db.session() as session:
        return {k for (k,) in session.execute(q) if k}


def sweep_orphans(db: Database, store: BlobStore, grace_seconds: int = 3600, dry_run: bool = False) -> list[str]:
    """Delete unreferenced blobs older than the grace period (a submission may be arriving)."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    candidates = [key for key, modified in store.iter_keys() if modified < cutoff]
    if not candidates:
        return []
    keep = referenced_keys(db)
    removed = [k for k in candidates if k not in keep]
    if not dry_run:
        # Re-check just before deleting: a row may have started to refer to a blob meanwhile.
        keep = referenced_keys(db)
        removed = [k for k in removed if k not in keep]
        for key in removed:
            store.delete(key)
    return removed
