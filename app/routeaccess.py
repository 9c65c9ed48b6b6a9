"""Every route declares who may call it and whether it touches region-scoped records.

The declaration is metadata on the view function (like Central's `canOrReject` verbs, but
visible to tests): tests/app/access/test_access_matrix.py walks `app.url_map`, fails on any route that
declares nothing, and calls each route as every role, with records of the caller's own region
and of a foreign one. The checks themselves live in app.services.access; this only says what a
route is meant to allow, so the test can tell a leak from a rightful answer.

    @bp.get("/v1/projects/<int:project_id>/children/<uuid>")
    @declare(READERS, scoped=True)
    def child(...): ...
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ADMIN = ("admin",)
COORDINATORS = ("admin", "coordinator")
READERS = ("admin", "coordinator", "manager")  # web users who read care files
WEB_USERS = READERS
COLLECTORS = ("admin", "coordinator", "manager", "collector")  # OpenRosa: any account that may use Collect
PUBLIC: tuple[str, ...] = ()

ATTR = "carefile_access"


@dataclass(frozen=True)
class RouteAccess:
    roles: tuple[str, ...]  # roles that may call it; empty tuple = public (no sign-in)
    scoped: bool  # reads or writes records that belong to a region (foreign ids answer 404)
    note: str = ""

    @property
    def public(self) -> bool:
        return not self.roles


def declare(roles: Iterable[str], *, scoped: bool = False, note: str = "") -> Callable[[F], F]:
    """Attach the route's access declaration to the view (returns the same function)."""
    spec = RouteAccess(tuple(roles), scoped, note)

    def decorator(view: F) -> F:
        setattr(view, ATTR, spec)
        return view

    return decorator


def declared(view: Callable[..., Any]) -> RouteAccess | None:
    spec = getattr(view, ATTR, None)
    return spec if isinstance(spec, RouteAccess) else None
