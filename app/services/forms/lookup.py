"""Finding forms and their published versions (reads every area may use)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import Form, FormVersion


def get_form(session: Session, project_id: int, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None or form.current_version is None:
        raise Problem(404, "404.1", f"There is no form '{xml_form_id}' on this server. Ask your "
                      "coordinator whether it was published, then update your forms (Get Blank Form).")
    return form


def get_version(session: Session, form: Form, version: str) -> FormVersion:
    fv = session.scalar(select(FormVersion).where(FormVersion.form_id == form.id, FormVersion.version == version))
    if fv is None:
        raise Problem(404, "404.6", f"The form version specified in this submission '{version}' does not "
                      f"exist for form '{form.xml_form_id}'. Update your blank forms (Get Blank Form), "
                      "then fill the form again.")
    return fv


def list_forms(session: Session, project_id: int) -> list[Form]:
    return list(session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id)))
