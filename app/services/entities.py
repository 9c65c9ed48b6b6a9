"""Entity lists (the `children` list of the care file) served to phones.

Placeholder-free minimal version for the spine: no entity has been created yet, so lists
are empty CSVs with the required columns. The care-file issue replaces this with the real store.
"""
from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from app.models import User

HEADER = "name,label,__version\r\n"


def list_csv(session: Session, project_id: int, dataset: str, user: User) -> tuple[bytes, str]:
    body = HEADER.encode()
    return body, hashlib.md5(body).hexdigest()


def list_hash(session: Session, project_id: int, dataset: str, user: User) -> str | None:
    return list_csv(session, project_id, dataset, user)[1]
