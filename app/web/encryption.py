"""Encryption page: which forms are encrypted, turn on managed encryption (a form or the whole project),
and download a form's CSV zip decrypted with the passphrase (streamed; nothing decrypted is stored)."""
from __future__ import annotations

from typing import Any

from flask import Response, render_template, request, stream_with_context

from app import problems
from app.errors import Problem
from app.i18n import t
from app.routeaccess import COORDINATORS, READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services import forms as form_service
from app.services.exports import ExportOptions, decrypt
from app.services.exports.tabular import plan_for
from app.services.forms import encryption, keys
from storage import content_disposition

from . import bp, client_ip, db_user, register_nav, requires

register_nav(45, "web.encryption_page", "Encryption", READERS)
STATE_NAMES = {"none": "Not encrypted", "managed": "Encrypted (key kept on this server)",
               "own": "Encrypted (your own key)", "entities": "Cannot be encrypted (uses the children list)"}


def _page(error: str | None = None, notice: str | None = None, status: int = 200) -> Any:
    user = db_user()
    with runtime().db.session() as s:
        forms, project = encryption.overview(s, user.project_id)
    return render_template("encryption/index.html", forms=forms, project_key=project, error=error, notice=notice,
                           state_names={k: t(v) for k, v in STATE_NAMES.items()},
                           may_enable=user.role in COORDINATORS,
                           min_length=keys.MIN_PASSPHRASE), status


@bp.get("/encryption")
@declare(READERS)
@requires(*READERS)
def encryption_page() -> Any:
    return _page()


@bp.post("/encryption/enable")
@declare(COORDINATORS)
@requires(*COORDINATORS)
def encryption_enable() -> Any:
    user = db_user()
    target = request.form.get("form", "")
    passphrase = request.form.get("passphrase", "")
    if passphrase != request.form.get("passphrase2", ""):
        return _page(t("The two passphrases differ."), status=400)
    rt = runtime()
    try:
        with rt.db.write() as s:
            form = form_service.get_form(s, user.project_id, target) if target else None
            result = encryption.enable(s, rt.store, project_id=user.project_id, user=user, passphrase=passphrase,
                                       hint=request.form.get("hint", ""), form=form)
            audit.record(s, user, "form.encrypt", target=f"form:{target}" if target else "project",
                         ip=client_ip(), key_id=result.key.id, forms=result.encrypted)
    except Problem as problem:
        return _page(_message(problem), status=problem.status)
    return _page(notice=t("Encryption is on. New versions were published: {forms}. Phones get them on their next "
                          "form update.", forms=", ".join(result.encrypted) or "-"))


def _message(problem: Problem) -> str:
    """The refusal in the page's words (shorter than the API's, which name the command line)."""
    known = {
        problems.PASSPHRASE_WRONG: t("The passphrase is not correct for this form's encryption key."),
        problems.PASSPHRASE_TOO_SHORT: t("The passphrase must be at least {n} characters long.",
                                         n=keys.MIN_PASSPHRASE),
        problems.ENTITY_FORM_NOT_ENCRYPTABLE: t("This form creates or updates entities (the children list); the "
                                                "server must read its answers, so it cannot be encrypted."),
        problems.FORM_ENCRYPTED_ALREADY: t("This form is encrypted already."),
        problems.PROJECT_ENCRYPTED_ALREADY: t("Encryption is on for this project already."),
        problems.NOTHING_TO_ENCRYPT: t("No form of this project can be encrypted (forms that keep the children's "
                                       "files cannot be), so no key was made and nothing changed."),
        problems.FORM_NO_MANAGED_ENCRYPTION_KEY: t("This form has no encryption key kept on this server; decrypt it "
                                                   "with your own private key (carefile export --private-key)."),
    }
    return next((text for kind, text in known.items() if kind.template == problem.template), None) \
        or problem.translated(t)


@bp.post("/encryption/export")
@declare(READERS, scoped=True)
@requires(*READERS)
def encryption_export() -> Any:
    """The form's CSV zip (with media) decrypted on the fly with the passphrase, limited to the user's regions."""
    user = db_user()
    xml_form_id = request.form.get("form", "")
    rt = runtime()
    try:
        options = ExportOptions.parse({"format": "csvzip", "media": "media" in request.form,
                                       "labels": request.form.get("labels") or "codes",
                                       "sensitive": "sensitive" in request.form})
        with rt.db.session() as s:
            plan = plan_for(s, user.project_id, xml_form_id, user, options)
        private_key = keys.private_key_for_export(rt.db, plan.form, request.form.get("passphrase", ""),
                                                  f"user:{user.id}")
        with rt.db.write() as s:
            audit.record(s, user, "export.download", target=f"form:{xml_form_id}", ip=client_ip(),
                         format="csvzip", decrypted=True, options=options.to_dict())
    except Problem as problem:
        return _page(_message(problem), status=problem.status)

    def body() -> Any:
        with rt.db.session() as s:
            yield from decrypt.stream_decrypted_csvzip(s, rt.store, plan, private_key)

    return Response(stream_with_context(body()), content_type="application/zip",
                    headers={"Content-Disposition": content_disposition(f"{xml_form_id}.zip"),
                             "Cache-Control": "private, no-store"})
