"""A form's files as a user's phone receives them — one rule for Collect, draft testing and the browser.

A form (published version or draft) lists the files it references. Three kinds:
- an entity list (`children.csv`, attachment.dataset set): made from the list, with only the children
  of the user's regions (app.services.children.lists); a draft's test phone, which carries no identity,
  gets the columns and no child;
- `regions.csv` (kind "regions"): made from the current division table with only the places of the
  user's regions and those above them (the cascade needs them) — whatever published the form, and after
  every `carefile regions load`; an administrator's phone gets every place;
- anything else: the file as uploaded (a blob).
The manifest's hash of a made file is the md5 of what this user gets, so a phone downloads it again
exactly when its content changes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app import problems
from app.models import FormAttachment, FormDraftAttachment, User
from app.services import access, regions
from app.services.children import lists
from app.services.children.store import get_dataset

Attachment = FormAttachment | FormDraftAttachment
CSV = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class FormFile:
    """A file to send: its bytes (made for the user) or the blob that holds it."""

    filename: str
    md5: str
    content_type: str
    data: bytes | None = None
    blob_key: str | None = None


@dataclass(frozen=True)
class ManifestEntry:
    filename: str
    md5: str
    dataset: str | None  # an entity list: the manifest marks it so (Collect's entity-list handling)


def _made(session: Session, project_id: int, att: Attachment, user: User | None, web: bool) -> FormFile | None:
    """The file made for the user (None: not a made file, or its entity list does not exist)."""
    if att.dataset is not None:
        if get_dataset(session, project_id, att.dataset) is None:
            return None
        # No user: a draft's test phone (no identity) gets the columns, no one's records.
        phone = user or User(role="collector", project_id=project_id, regions=[])
        reader = access.Redactor(session, user, project_id) if web and user is not None else None
        data, md5 = lists.list_csv(session, project_id, att.dataset, phone, reader)
        return FormFile(att.filename, md5, CSV, data=data)
    if att.kind == "regions":
        scope = access.phone_scope(user) if user is not None else None
        data, md5 = regions.scoped_form_csv(scope)
        return FormFile(att.filename, md5, CSV, data=data)
    return None


def phone_file(session: Session, project_id: int, attachments: Sequence[Attachment], filename: str,
               user: User | None, *, web: bool = False) -> FormFile:
    """The file `filename` of a form as `user`'s phone receives it (404 when the form has no such file, or
    it has not been uploaded yet). `web`: for the browser's renderer, read by a person at a desk: labels and
    properties redacted as on every page (app.services.children.lists.list_csv)."""
    att = next((a for a in attachments if a.filename == filename), None)
    if att is None or not att.present:
        raise problems.FORM_NO_FILE(filename=filename)
    made = _made(session, project_id, att, user, web) if att.generated else None
    if made is not None:
        return made
    if att.blob_key is None or att.md5 is None:
        raise problems.FORM_NO_FILE(filename=filename)
    return FormFile(att.filename, att.md5, att.content_type or "application/octet-stream", blob_key=att.blob_key)


def manifest(session: Session, project_id: int, attachments: Sequence[Attachment],
             user: User | None) -> list[ManifestEntry]:
    """The files a phone should hold, with the hash of what this user gets (files not uploaded yet left out)."""
    out = []
    for att in attachments:
        if att.generated:
            made = _made(session, project_id, att, user, False)
            if made is not None:
                out.append(ManifestEntry(att.filename, made.md5, att.dataset))
        elif att.blob_key and att.md5:
            out.append(ManifestEntry(att.filename, att.md5, None))
    return out


__all__ = ["FormFile", "ManifestEntry", "manifest", "phone_file"]
