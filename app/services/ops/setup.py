"""Creating and upgrading an installation: schema, default project, shipped forms."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.migrate import upgrade
from app.models import Project
from app.services import forms as form_service
from app.services.children import directory as child_directory

if TYPE_CHECKING:  # the Runtime holder lives with the Flask glue; services only use its fields
    from app.runtime import Runtime

DEFAULT_PROJECT = 1


def init_schema(rt: Runtime) -> None:
    """Create or upgrade the schema and make sure the default project (id 1) exists; both under the
    migration lock, so servers starting together neither migrate twice nor add the project twice.
    Then children registered before the child directory existed get their rows (a one-time fill after the
    upgrade that added it; nothing to do on later starts)."""
    upgrade(rt.db.engine, then=_default_project, secret_key=rt.config["SECRET_KEY"])
    while True:
        with Session(rt.db.engine) as session, session.begin():
            if child_directory.fill_missing(session) < child_directory.FILL_BATCH:
                break


def _default_project(conn: Connection) -> None:
    if conn.execute(select(Project.id).where(Project.id == DEFAULT_PROJECT)).first() is None:
        conn.execute(insert(Project).values(id=DEFAULT_PROJECT, name="CareFile"))


@dataclass
class PublishOutcome:
    path: Path
    ok: bool
    message: str
    warnings: list[str]


def validate_setting(rt: Runtime) -> bool | None:
    mode = str(rt.config["ODK_VALIDATE"]).lower()
    return {"on": True, "off": False}.get(mode)


def publish_file(rt: Runtime, path: Path, project_id: int = DEFAULT_PROJECT) -> PublishOutcome:
    try:
        with rt.db.write() as session:
            res = form_service.publish_form(session, rt.store, project_id=project_id, data=path.read_bytes(),
                                            filename=path.name, validate=validate_setting(rt))
            what = "published" if res.created else "unchanged"
            if res.created and res.managed_encryption:
                what += (", encrypted with the project's managed key (its answers are read only with the "
                         "passphrase: carefile export)")
            msg = f"{res.form.xml_form_id} version {res.version.version}: {what} ({res.validation_note})"
            return PublishOutcome(path, True, msg, res.warnings)
    except Problem as problem:
        lines = [problem.message]
        for issue in problem.details.get("issues", []):
            where = " ".join(x for x in (issue.get("sheet") and f"sheet {issue['sheet']}",
                                         issue.get("row") and f"row {issue['row']}") if x)
            lines.append(f"  - {where + ': ' if where else ''}{issue['message']}")
        return PublishOutcome(path, False, "\n".join(lines), [])


def publish_directory(rt: Runtime, directory: Path) -> list[PublishOutcome]:
    files = sorted(p for p in directory.glob("*") if p.suffix.lower() in (".xlsx", ".xls", ".xml", ".md")
                   and not p.name.startswith(("~", ".")))
    return [publish_file(rt, p) for p in files]


def project_exists(rt: Runtime, project_id: int) -> bool:
    with rt.db.session() as session:
        return session.scalar(select(Project.id).where(Project.id == project_id)) is not None
