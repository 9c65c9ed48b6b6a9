"""Form drafts and version comparison pages for coordinators.

A changed XLSForm for an existing form becomes its draft (app.services.forms): the draft page shows
its questions, warnings, files, the test QR code for ODK Collect and the test submissions received;
from there it is published (under the version asked for) or abandoned. The compare page lists what
changed between any two versions (published ones and the draft), in the UI language.
"""
from __future__ import annotations

from typing import Any

import segno
from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from app import problems
from app.errors import Problem
from app.i18n import form_label, t
from app.models import Form, FormDraft, FormVersion, User
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime
from app.services import audit
from app.services import forms as form_service
from app.services.forms.versions import DRAFT, find_version
from app.services.identity import collect
from forms.diff import Change, Detail, diff_xforms

from . import bp, client_ip, csp_nonce, db_user, requires
from .collectors import public_url

ROLES = COORDINATORS

ASPECTS = {
    "type": "Type",
    "label": "Label",
    "hint": "Hint",
    "constraint": "Constraint",
    "constraint_message": "Constraint message",
    "relevant": "Shown when",
    "required": "Required",
    "readonly": "Read-only",
    "calculate": "Calculation",
    "choice_file": "Choices file",
    "choice_added": "Choice added",
    "choice_removed": "Choice removed",
    "choice_label": "Choice relabelled",
    "sensitive": "Sensitive",
}
KIND_LABELS = {"added": "Added", "removed": "Removed", "moved": "Moved in the form", "changed": "Changed"}


def _form(s: Session, xml_form_id: str) -> Form:
    from .forms import _get_form

    return _get_form(s, xml_form_id)


def _changeable(s: Session, xml_form_id: str) -> Form:
    """The form, when the signed-in user may change it: its draft (whose page holds the test URL's secret)
    is for the same users as publishing (access.require_form_change)."""
    from .forms import _changeable_form

    return _changeable_form(s, xml_form_id)


def draft_test_url(draft: FormDraft, form: Form) -> str:
    from urllib.parse import quote

    rt = runtime()
    token = form_service.test_token(draft, rt.config["SECRET_KEY"])
    if token is None:  # sealed under another secret key (or before tokens were sealed): a new one
        with rt.db.write() as w:
            token = form_service.renew_test_token(w, w.get(FormDraft, draft.id), rt.config["SECRET_KEY"])
    return (f"{public_url()}/v1/test/{quote(token, safe='')}/projects/{form.project_id}/forms/"
            f"{quote(form.xml_form_id, safe='')}/draft")


# ---------------------------------------------------------------- the draft

@bp.get("/forms/<xml_form_id>/draft")
@declare(ROLES)
@requires(*ROLES)
def forms_draft(xml_form_id: str) -> Any:
    from .forms import questions, tr

    rt = runtime()
    with rt.db.session() as s:
        form = _changeable(s, xml_form_id)
        draft = form_service.require_draft(s, form)
        current = form.current_version
        tests = form_service.list_test_submissions(s, draft)
        test_rows = [{"instance_id": x.instance_id, "received_at": x.received_at,
                      "files": [(f.name, f.blob_key is not None) for f in x.files]} for x in tests[:50]]
        changes = diff_xforms(current.xml, draft.xml) if current is not None else []
        taken = form_service.version_used(s, form, draft.version)
        url = draft_test_url(draft, form)
        settings = collect.collect_settings(url, t("Test: {title}", title=draft.title))
        settings["general"]["form_update_mode"] = "manual"
        settings["general"]["autosend"] = "off"
        svg = segno.make(collect.encode_settings(settings), error="l").svg_inline(scale=4, border=2, omitsize=True)
        resp = render_template(
            "forms/draft.html", form=form, draft=draft, current=current, questions=questions(draft.xml),
            attachments=list(draft.attachments), tests=test_rows, test_count=len(tests), summary=_summary(changes),
            test_url=url, qr_svg=svg, version_taken=taken, tr=tr, max_mb=_max_mb(), vendored=web_forms_vendored(),
            check_config=_try_config(xml_form_id, url))
    # no-store: the page holds the test URL's secret. try_csp(): it opens the draft in the renderer (hidden)
    # to say whether the fill, try and edit pages can open it.
    return resp, 200, {"Cache-Control": "no-store", "Content-Security-Policy": try_csp()}


def _try_config(xml_form_id: str, test_url: str) -> dict[str, str]:
    """Where the renderer gets the draft: its XForm by the test URL's same-origin path (the page may be
    reached through another host name), its files through the signed-in user's scope."""
    from urllib.parse import urlsplit

    path = urlsplit(test_url).path
    attachments = url_for("web.forms_draft_try_attachment", xml_form_id=xml_form_id, filename="x")[:-1]
    return {"formUrl": path + ".xml", "attachmentBase": attachments, "submissionUrl": path + "/submission"}


def _max_mb() -> int:
    return int(runtime().config["MAX_UPLOAD_BYTES"]) // (1024 * 1024)


def _summary(changes: list[Change]) -> dict[str, int]:
    out = {k: 0 for k in KIND_LABELS}
    for c in changes:
        out[c.kind] += 1
    return out


@bp.post("/forms/<xml_form_id>/draft/publish")
@declare(ROLES)
@requires(*ROLES)
def forms_draft_publish(xml_form_id: str) -> Any:
    rt = runtime()
    wanted = request.form.get("version", "").strip() or None
    notes = request.form.get("notes", "")
    try:
        with rt.db.write() as s:
            form = _changeable(s, xml_form_id)
            user = s.get(User, db_user().id)
            fv, discarded = form_service.publish_draft(s, form, version=wanted, user=user, notes=notes)
            audit.record(s, db_user(), "form.publish", f"form:{xml_form_id}", client_ip(), version=fv.version,
                         filename=fv.source_filename, draft=True, test_submissions_discarded=discarded)
            version, missing = fv.version, form_service.missing_attachments(fv)
    except Problem as problem:
        # Back to the draft's page, its publish form at hand, saying what to change (not a bare error page).
        if problem.code == problems.VERSION_CONFLICT.code:
            flash(t("Version '{version}' of this form is already published. Type another version (for example a "
                    "higher number) and publish again.", version=wanted or ""))
        elif problem.code == problems.VERSION_NOT_ACCEPTABLE.code:
            flash(t("A version must be 1 to 250 characters on one line, for example 2026112901."))
        elif problem.code == problems.PUBLISH_NOTES_TOO_LONG.code:
            flash(t("Publish notes are at most 2,000 characters; shorten them and publish again."))
        else:
            raise
        return redirect(url_for("web.forms_draft", xml_form_id=xml_form_id) + "#publish")
    flash(t("Version {version} of {form_id} is published.", version=version, form_id=xml_form_id))
    if discarded:
        flash(t("{n} test submissions were discarded.", n=discarded))
    if missing:
        flash(t("Upload the files this form needs: {files}.", files=", ".join(missing)))
    return redirect(url_for("web.forms_detail", xml_form_id=xml_form_id))


@bp.post("/forms/<xml_form_id>/draft/abandon")
@declare(ROLES)
@requires(*ROLES)
def forms_draft_abandon(xml_form_id: str) -> Any:
    rt = runtime()
    with rt.db.write() as s:
        form = _changeable(s, xml_form_id)
        version = form_service.require_draft(s, form).version
        discarded = form_service.delete_draft(s, form, user=db_user())
        audit.record(s, db_user(), "form.draft.abandon", f"form:{xml_form_id}", client_ip(), version=version,
                     test_submissions_discarded=discarded)
    flash(t("The draft was abandoned; phones keep the published version."))
    return redirect(url_for("web.forms_detail", xml_form_id=xml_form_id))


@bp.post("/forms/<xml_form_id>/draft/files/<filename>")
@declare(ROLES)
@requires(*ROLES)
def forms_draft_attachment_upload(xml_form_id: str, filename: str) -> Any:
    rt = runtime()
    upload = request.files.get("file")
    with rt.db.write() as s:
        form = _changeable(s, xml_form_id)
        if upload is None or not upload.filename:
            raise problems.NO_FILE_CHOSEN()
        draft = form_service.require_draft(s, form)
        try:
            att = form_service.upload_draft_attachment(s, rt.store, draft, filename, upload.stream,
                                                       int(rt.config["MAX_UPLOAD_BYTES"]), user=db_user())
        except Problem as problem:
            if problem.code == problems.ATTACHMENT_TOO_LARGE.code:
                raise problems.UPLOAD_TOO_LARGE(name=filename, mb=_max_mb()) from problem
            raise
        audit.record(s, db_user(), "form.attachment", f"form:{xml_form_id}", client_ip(), filename=filename,
                     md5=att.md5, size=att.size, version=draft.version, draft=True)
    flash(t("{name} was uploaded.", name=filename))
    return redirect(url_for("web.forms_draft", xml_form_id=xml_form_id) + "#files")


@bp.get("/forms/<xml_form_id>/draft/files/<filename>")
@declare(ROLES)
@requires(*ROLES)
def forms_draft_attachment_download(xml_form_id: str, filename: str) -> Any:
    from app.blobhttp import blob_response

    rt = runtime()
    with rt.db.session() as s:
        draft = form_service.require_draft(s, _changeable(s, xml_form_id))
        att = next((a for a in draft.attachments if a.filename == filename and a.blob_key), None)
        if att is None or att.blob_key is None:
            raise problems.FILE_NOT_UPLOADED()
        key, md5, ctype = att.blob_key, att.md5 or att.blob_key, att.content_type or "application/octet-stream"
    return blob_response(rt, key, md5, filename, ctype)


# ---------------------------------------------------------------- compare two versions

def _label(item: FormVersion | FormDraft) -> str:
    return t("{version} (draft)", version=item.version) if isinstance(item, FormDraft) else item.version


@bp.get("/forms/<xml_form_id>/compare")
@declare(ROLES)
@requires(*ROLES)
def forms_compare(xml_form_id: str) -> Any:
    rt = runtime()
    with rt.db.session() as s:
        form = _form(s, xml_form_id)
        versions = [fv for fv, _ in form_service.list_versions(s, form)]
        draft = form_service.get_draft(s, form)
        options = ([(DRAFT, _label(draft))] if draft is not None else []) + [(str(v.id), v.version) for v in versions]
        newest = DRAFT if draft is not None else (str(versions[0].id) if versions else "")
        older = next((ref for ref, _ in options if ref != newest), newest)
        a, b = request.args.get("a") or older, request.args.get("b") or newest
        old, new = find_version(s, form, a), find_version(s, form, b)
        changes = diff_xforms(old.xml, new.xml)
        rows = [_row(c) for c in changes]
        resp = render_template("forms/compare.html", form=form, options=options, a=a, b=b, old_label=_label(old),
                               new_label=_label(new), rows=rows, summary=_summary(changes),
                               title=new.title)
    return resp


def _row(c: Change) -> dict[str, Any]:
    return {"kind": c.kind, "kind_label": t(KIND_LABELS[c.kind]), "name": c.name, "type": c.type,
            "label": form_label(c.labels), "path": c.path, "old_path": c.old_path, "moved": c.moved,
            "details": [_detail(d) for d in c.details]}


def _detail(d: Detail) -> dict[str, Any]:
    what = t(ASPECTS.get(d.aspect, d.aspect))
    if d.choice is not None:
        what = f"{what}: {d.choice}"
    if d.language:
        what = f"{what} ({d.language})"
    yes_no = {"yes": t("Yes"), "no": t("No")}
    old = yes_no.get(d.old or "", d.old) if d.aspect in ("required", "readonly", "sensitive") else d.old
    new = yes_no.get(d.new or "", d.new) if d.aspect in ("required", "readonly", "sensitive") else d.new
    return {"what": what, "old": old, "new": new, "aspect": d.aspect}


# ---------------------------------------------------------------- try the draft in the browser

# ODK Web Forms compiles its XPath parser from WebAssembly (inlined as a data: URL): the renderer's pages
# alone allow that. It shrinks photos and signatures (max-pixels) in a Web Worker it starts from a blob:
# URL, so worker-src allows blob: (without it an image question never gets its file). Everything still
# comes from this server (no CDN, no map tiles: no directive names another host).
# Inline scripts (the import map, the page's module) run by the request's nonce (csp_nonce), never
# 'unsafe-inline'.
def try_csp() -> str:
    return (f"default-src 'self'; script-src 'self' 'nonce-{csp_nonce()}' 'wasm-unsafe-eval'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' data: blob:; font-src 'self' data:; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'")


def web_forms_vendored() -> bool:
    from pathlib import Path

    static = Path(__file__).resolve().parents[1] / "static" / "vendor"
    return all((static / rel).is_file() for rel in ("web-forms/index.js", "vue/vue.runtime.esm-browser.prod.js"))


@bp.get("/forms/<xml_form_id>/draft/try")
@declare(ROLES)
@requires(*ROLES)
def forms_draft_try(xml_form_id: str) -> Any:
    rt = runtime()
    with rt.db.session() as s:
        form = _changeable(s, xml_form_id)
        draft = form_service.require_draft(s, form)
        url = draft_test_url(draft, form)
        title = draft.title
    html = render_template("forms/try.html", form=form, title=title, vendored=web_forms_vendored(),
                           config=_try_config(xml_form_id, url))
    return html, 200, {"Cache-Control": "no-store", "Content-Security-Policy": try_csp()}


@bp.get("/forms/<xml_form_id>/draft/try/files/<filename>")
@declare(ROLES, scoped=True, note="entity lists hold only the children of the signed-in user's regions")
@requires(*ROLES)
def forms_draft_try_attachment(xml_form_id: str, filename: str) -> Any:
    """A draft's file for the in-browser renderer; an entity list (children.csv) as the signed-in
    user's own phone would receive it: only the children of their regions."""
    from app.blobhttp import file_response
    from app.services.forms import files as form_files

    rt = runtime()
    with rt.db.session() as s:
        draft = form_service.require_draft(s, _form(s, xml_form_id))
        user = s.get(User, db_user().id)
        assert user is not None
        found = form_files.phone_file(s, draft.form.project_id, draft.attachments, filename, user, web=True)
    return file_response(rt, found, cache="private, no-store")
