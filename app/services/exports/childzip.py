"""One child's complete file as a ZIP for the paper archive (一人一档).

    summary.html             printable summary (UTF-8, print CSS): the child, every record in time
                             order with question and choice labels, photos shown inline
    files/<n>-<form>/<name>  the photos and signatures of record n, as received

The values come from services.childfile.child_file (the relational rows, region-scoped); labels
from each record's form version. Fields marked sensitive are masked, and their files left out,
unless the user may see them (admin, coordinator). The HTML is rendered by the web layer (it has
the translations) from `ChildArchive.context`.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Form, FormVersion, Submission, SubmissionAttachment, SubmissionVersion, User
from app.services.children.childfile import child_file
from app.services.exports.csvzip import CHUNK, Pipe
from app.services.exports.options import may_see_sensitive
from app.services.exports.tabular import MASK, pick_label
from app.services.schemas import schema_of
from forms import Field, FormSchema
from storage import BlobNotFound, BlobStore

YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}


@dataclass
class ChildArchive:
    uid: str
    context: dict[str, Any]
    files: list[tuple[str, str]] = field(default_factory=list)  # (path in the zip, blob key)

    @property
    def filename(self) -> str:
        label = "".join(c for c in str(self.context["child"].label) if c not in '/\\:*?"<>|').strip()
        return f"{label or 'child'}-{self.uid[:8]}.zip"


def _display(f: Field | None, v: Any, lang: str) -> str:
    if v is None or v == "":
        return ""
    if f is not None and f.choices:
        labels = {c.value: pick_label(c.labels, lang) or c.value for c in f.choices}
        if isinstance(v, list):
            return ("、" if lang == "zh" else ", ").join(str(labels.get(c, c)) for c in v)
        return labels.get(v, str(v))
    if isinstance(v, bool):
        return YES_NO[lang][0 if v else 1]
    if isinstance(v, dict) and v.get("type") == "Point":
        c = v.get("coordinates") or []
        return f"{c[1]}, {c[0]}" if len(c) > 1 else ""
    if isinstance(v, list):
        return " ".join(map(str, v))
    return str(v)


def _items(schema: FormSchema | None, base: str, values: dict[str, Any], lang: str, show_sensitive: bool,
           files: dict[str, str], hidden: set[str]) -> list[dict[str, Any]]:
    out = []
    for key, v in values.items():
        f = schema.field(f"{base}/{key}") if schema is not None else None
        if f is None or f.meta or not f.labels or v is None or v == "":
            continue  # hidden calculations, meta, notes without an answer
        masked = f.sensitive and not show_sensitive
        item = {"label": pick_label(f.labels, lang) or f.name, "value": MASK if masked else _display(f, v, lang),
                "file": None, "image": False}
        if f.type == "binary" and isinstance(v, str):
            if masked:
                hidden.add(v)
            elif v in files:
                item["file"], item["image"] = files[v], (f.mediatype or "").startswith("image")
        out.append(item)
    return out


def child_archive(session: Session, project_id: int, user: User, uid: str, lang: str = "zh") -> ChildArchive:
    """Everything the summary and the ZIP need; 404 outside the user's regions (child_file)."""
    lang = lang if lang in YES_NO else "zh"
    cf = child_file(session, project_id, user, uid)
    show = may_see_sensitive(user)
    uid = cf.child.uuid
    versions: dict[tuple[str, str], FormVersion] = {}
    for fv, xml_form_id in session.execute(
            select(FormVersion, Form.xml_form_id).join(Form, Form.id == FormVersion.form_id)
            .where(Form.project_id == project_id)):
        versions[(xml_form_id, fv.version)] = fv
    blobs: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    # The files of the file's records (the child's own, and a household's that registered it among others).
    wanted = {(rec.form_id, rec.instance_id) for rec in cf.records}
    rows = session.execute(
        select(Form.xml_form_id, Submission.instance_id, SubmissionAttachment.name, SubmissionAttachment.blob_key,
               SubmissionAttachment.content_type)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .join(SubmissionAttachment, SubmissionAttachment.version_id == SubmissionVersion.id)
        .join(Form, Form.id == Submission.form_id)
        .where(Form.project_id == project_id, Submission.instance_id.in_(sorted({i for _, i in wanted})),
               Submission.deleted_at.is_(None), SubmissionAttachment.blob_key.is_not(None)))
    for xml_form_id, iid, name, key, ctype in rows:
        if (xml_form_id, iid) in wanted:
            blobs.setdefault(iid, {})[name] = (key, ctype)
    archive = ChildArchive(uid, {})
    records = []
    for n, rec in enumerate(cf.records, start=1):
        found = versions.get((rec.form_id, rec.form_version))
        schema = schema_of(found) if found is not None else None
        base = f"/{schema.root}" if schema is not None else ""
        paths = {name: f"files/{n:02d}-{rec.form_id}/{name}" for name in blobs.get(rec.instance_id, {})}
        # child_file lists only the files this user may open (sensitive ones withheld by the access policy)
        allowed = {a["name"] for a in rec.attachments}
        hidden: set[str] = {name for name in paths if name not in allowed}
        items = _items(schema, base, rec.values, lang, show, paths, hidden)
        repeats = []
        for r in rec.repeats:
            rf = schema.field(r["repeat"]) if schema is not None else None
            rlabel = pick_label(rf.labels, lang) if rf and rf.labels else r["repeat"].rsplit("/", 1)[-1]
            repeats.append({"label": rlabel, "ordinal": r["ordinal"],
                            "items": _items(schema, r["repeat"], r["values"], lang, show, paths, hidden)})
        for name, (key, _ctype) in blobs.get(rec.instance_id, {}).items():
            if name not in hidden and key:
                archive.files.append((paths[name], key))
        records.append({"form_id": rec.form_id, "date": rec.date, "received_at": rec.received_at,
                        "review_state": rec.review_state, "edited": rec.edited,
                        "title": rec.form_title, "items": items, "repeats": repeats,
                        "files": [{"name": nm, "path": paths[nm]} for nm in blobs.get(rec.instance_id, {})
                                  if nm not in hidden]})
    archive.context = {"child": cf.child, "properties": cf.properties, "records": records, "lang": lang,
                       "masked": not show, "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                       "history": cf.history, "words": cf.words}
    return archive


def childzip_steps(archive: ChildArchive, html: str, out: Any, store: BlobStore) -> Iterator[None]:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("summary.html", html.encode("utf-8"))
        yield None
        for path, key in archive.files:
            try:
                size = store.size(key)
                src = store.open(key)
            except BlobNotFound:
                continue
            info = zipfile.ZipInfo(path, date_time=datetime.now().timetuple()[:6])
            info.file_size = size  # photos are compressed already: stored as they are
            with src, zf.open(info, "w") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    yield None


def stream_child_zip(archive: ChildArchive, html: str, store: BlobStore) -> Iterator[bytes]:
    pipe = Pipe()
    for _ in childzip_steps(archive, html, pipe, store):
        if chunk := pipe.take():
            yield chunk
    if tail := pipe.take():
        yield tail
