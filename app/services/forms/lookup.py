"""Finding forms and their published versions (reads every area may use)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.models import Form, FormVersion


def get_form(session: Session, project_id: int, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None or form.current_version is None:
        raise problems.FORM_NOT_ON_SERVER(xml_form_id=xml_form_id)
    return form


def get_version(session: Session, form: Form, version: str) -> FormVersion:
    fv = session.scalar(select(FormVersion).where(FormVersion.form_id == form.id, FormVersion.version == version))
    if fv is None:
        raise problems.FORM_VERSION_UNKNOWN(version=version, xml_form_id=form.xml_form_id)
    return fv


def list_forms(session: Session, project_id: int) -> list[Form]:
    return list(session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id)))
