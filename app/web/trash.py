"""The trash on the website (issue 20): deleting a child's file or a submission, and restoring them.

Coordinators and admins delete from the child's file and from a submission's page (a checkbox confirms);
the trash page lists what was deleted in their regions, with the day it will be purged
(`carefile purge`, 30 days after deletion), and restores one or several at once. The rules are the
services' (app/services/children/trash.py, app/services/submissions/trash.py).
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from app import problems
from app.i18n import t
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime
from app.services.children import CHILDREN, get_child
from app.services.children import trash as entity_trash
from app.services.reports import dashboard as dash
from app.services.submissions import records
from app.services.submissions import trash as submission_trash

from . import bp, client_ip, db_user, register_nav, requires

register_nav(26, "web.trash", "Trash", COORDINATORS)


def _confirmed() -> bool:
    return request.form.get("confirm") == "yes"


@bp.get("/trash")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def trash() -> Any:
    user = db_user()
    with runtime().db.session() as s:
        children = entity_trash.trashed(s, user.project_id, user, CHILDREN)
        records = submission_trash.trashed(s, user.project_id, user)
        names = dash.region_names(s, user.project_id)
    return render_template("trash/index.html", children=children, records=records, names=names,
                           days=entity_trash.TRASH_DAYS)


@bp.post("/children/<uid>/delete")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def children_delete(uid: str) -> Any:
    user = db_user()
    if not _confirmed():
        with runtime().db.session() as s:
            get_child(s, user.project_id, user, uid)  # a child out of reach answers 404 before anything else
        flash(t("Tick the box to confirm that this child's file is to be deleted."))
        return redirect(url_for("web.children_view", uid=uid) + "#delete")
    with runtime().db.write() as s:
        entity_trash.delete_entities(s, user.project_id, user, CHILDREN, [uid], ip=client_ip())
    flash(t("The child's file was moved to the trash. It can be restored there for {days} days.",
            days=entity_trash.TRASH_DAYS))
    return redirect(url_for("web.trash"))


@bp.post("/children/delete")
@declare(COORDINATORS, scoped=True, note="children outside the caller's regions are skipped")
@requires(*COORDINATORS)
def children_bulk_delete() -> Any:
    """Delete the children ticked on the children list (one confirmation for all)."""
    uids = [u for u in request.form.getlist("uid") if u.strip()][:entity_trash.MAX_BULK]
    if not uids or not _confirmed():
        flash(t("Tick the children to delete, and the box to confirm."))
        return redirect(url_for("web.children"))
    user = db_user()
    with runtime().db.write() as s:
        done = entity_trash.delete_entities(s, user.project_id, user, CHILDREN, uids, ip=client_ip(), strict=False)
    if not done:
        raise problems.NO_SUCH_CHILD()
    flash(t("{n} child file(s) moved to the trash. They can be restored there for {days} days.", n=len(done),
            days=entity_trash.TRASH_DAYS))
    return redirect(url_for("web.trash"))


@bp.post("/trash/children/restore")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def trash_children_restore() -> Any:
    """Restore the ticked children, or only the one whose row's button was pressed."""
    only = request.form.get("only", "").strip()
    uids = [only] if only else [u for u in request.form.getlist("uid") if u.strip()][:entity_trash.MAX_BULK]
    if not uids:
        flash(t("Tick the children to restore."))
        return redirect(url_for("web.trash"))
    user = db_user()
    with runtime().db.write() as s:
        done = entity_trash.restore_entities(s, user.project_id, user, CHILDREN, uids, ip=client_ip(), strict=False)
    if not done:
        raise problems.NO_SUCH_CHILD_IN_TRASH()
    flash(t("{n} child file(s) restored.", n=len(done)))
    if len(done) == 1:
        return redirect(url_for("web.children_view", uid=done[0]))
    return redirect(url_for("web.trash"))


@bp.post("/submissions/<form_id>/<instance_id>/delete")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def submissions_delete(form_id: str, instance_id: str) -> Any:
    user = db_user()
    if not _confirmed():
        with runtime().db.session() as s:
            records.get_record(s, user.project_id, user, form_id, instance_id)  # 404 out of reach, first
        flash(t("Tick the box to confirm that this submission is to be deleted."))
        return redirect(url_for("web.submissions_view", form_id=form_id, instance_id=instance_id) + "#delete")
    with runtime().db.write() as s:
        submission_trash.delete_submission(s, user.project_id, user, form_id, instance_id, ip=client_ip())
    flash(t("The submission was moved to the trash. It can be restored there for {days} days.",
            days=entity_trash.TRASH_DAYS))
    return redirect(url_for("web.submissions_list", form_id=form_id))


@bp.post("/submissions/<form_id>/<instance_id>/restore")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def submissions_restore(form_id: str, instance_id: str) -> Any:
    user = db_user()
    with runtime().db.write() as s:
        submission_trash.restore_submission(s, user.project_id, user, form_id, instance_id, ip=client_ip())
    flash(t("The submission was restored."))
    return redirect(url_for("web.submissions_view", form_id=form_id, instance_id=instance_id))
