"""Small things Central's clients check: /version.txt (centralpy `check`) and the roles list."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from flask import Response

from app import problems
from app.central import shapes as central
from app.routeaccess import COLLECTORS, PUBLIC

from . import Call, endpoint


def _version() -> str:
    try:
        return package_version("carefile")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0"


@endpoint("/version.txt", roles=PUBLIC, tx="none")
def version_txt(call: Call) -> Response:
    return Response(central.version_text(_version()), content_type="text/plain; charset=utf-8")


@endpoint("/v1/roles", roles=COLLECTORS, tx="none")
def roles(call: Call) -> Any:
    return central.roles_json()


@endpoint("/v1/roles/<role_id>", roles=COLLECTORS, tx="none")
def role(call: Call, role_id: str) -> Any:
    found = central.role_of(role_id)
    if found is None:
        raise problems.NO_SUCH_ROLE(role_id=role_id)
    return next(r for r in central.roles_json() if r["id"] == found[0])
