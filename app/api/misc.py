"""Small things Central's clients check: /version.txt (centralpy `check`) and the roles list."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from flask import Response, jsonify

from app.central import shapes as central
from app.errors import Problem
from app.routeaccess import COLLECTORS, PUBLIC, declare

from . import bp
from .auth import api_user


def _version() -> str:
    try:
        return package_version("carefile")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0"


@bp.get("/version.txt")
@declare(PUBLIC)
def version_txt() -> Response:
    return Response(central.version_text(_version()), content_type="text/plain; charset=utf-8")


@bp.get("/v1/roles")
@declare(COLLECTORS)
def roles() -> Response:
    api_user()
    return jsonify(central.roles_json())


@bp.get("/v1/roles/<role_id>")
@declare(COLLECTORS)
def role(role_id: str) -> Response:
    api_user()
    found = central.role_of(role_id)
    if found is None:
        raise Problem(404, "404.1", f"There is no role '{role_id}'. The roles are listed at /v1/roles.")
    return jsonify(next(r for r in central.roles_json() if r["id"] == found[0]))
