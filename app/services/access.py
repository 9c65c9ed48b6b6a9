"""Who may see what: roles and regions, enforced in the services (not only in templates)."""
from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, true

from app.errors import Problem
from app.models import User

READ_ROLES = ("admin", "coordinator", "manager")


def require_reader(user: User) -> None:
    if user.role not in READ_ROLES or not user.active:
        raise Problem(403, "403.4", "Your account may not read care files. Ask an administrator.")


def region_filter(user: User, column: ColumnElement[str | None]) -> ColumnElement[bool]:
    """SQL condition: the row's region code lies inside one of the user's regions."""
    if user.role == "admin":
        return true()
    codes = user.region_codes
    if not codes:
        return false()
    return or_(*[column.startswith(code, autoescape=True) for code in codes])


def sees_region(user: User, code: str | None) -> bool:
    if user.role == "admin":
        return True
    return code is not None and any(code.startswith(c) for c in user.region_codes)
