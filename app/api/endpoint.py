"""One wrapper for every route of the JSON API (in the manner of ODK Central's lib/http/endpoint.js).

    @endpoint("/v1/projects/<int:project_id>/children/<uid>", roles=READERS, scoped=True)
    def child(call: Call, project_id: int, uid: str) -> dict[str, Any]:
        return childfile.child_file(call.session, project_id, call.user, uid).json()

The wrapper
- declares who may call the route (app/routeaccess.py: the access matrix test reads it) and refuses any
  other role with 403 before the view runs — services still check their own rules (regions, records);
- signs the caller in (a bearer session token, or Basic over HTTPS: app/api/auth.py);
- opens the transaction the view asked for: `tx="read"` (a session, nothing committed), `tx="write"` (one
  transaction committed when the view returns, rolled back when it raises), or `tx="none"` (the view
  manages its own, e.g. a streamed download that reads while the response is sent);
- renders what the view returns: a dict or list as JSON, None as Central's `{"success": true}`, a
  `(body, status[, headers])` tuple, or a ready `Response` as it is. Problems are rendered by the
  blueprint's error handler (app/api/__init__.py) as `{"code": …, "message": …}`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from app import problems
from app.db import retrying
from app.models import User
from app.routeaccess import declare
from app.runtime import Runtime, runtime

from .auth import api_user, client_ip

Tx = Literal["read", "write", "none"]


@dataclass
class Call:
    """What a view gets: the signed-in user, the runtime, the transaction's session and the caller's address."""

    _user: User | None
    rt: Runtime
    _session: Session | None
    ip: str

    @property
    def user(self) -> User:
        if self._user is None:
            raise RuntimeError("a public endpoint has no signed-in user")
        return self._user

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("this endpoint was declared with tx='none': open a session yourself")
        return self._session

    @property
    def extended(self) -> bool:
        """Central's `X-Extended-Metadata: true` header."""
        return request.headers.get("X-Extended-Metadata", "").strip().lower() == "true"


ROLE_NAMES = {"admin": "administrators", "coordinator": "coordinators", "manager": "managers",
              "collector": "collectors"}


def refusal(roles: tuple[str, ...]) -> str:
    """Why a role the route does not admit is refused, naming who may (Central's 403.1 code)."""
    names = [ROLE_NAMES.get(r, r) for r in roles]
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Only {who} may do this. Ask your coordinator or an administrator if you need it."


def render(result: Any) -> Any:
    if isinstance(result, Response):
        return result
    if result is None:
        return jsonify({"success": True})
    if isinstance(result, tuple):
        body, *rest = result
        return (body if isinstance(body, Response) else jsonify(body), *rest)
    return jsonify(result)


def _replayable() -> bool:
    """Whether the view can be run again on the same request: its body (none, JSON or a form) is kept by Flask;
    a raw upload read from the stream is not."""
    if request.is_json or request.mimetype == "application/x-www-form-urlencoded":
        return True
    return not request.content_length and "Transfer-Encoding" not in request.headers


def make_endpoint(bp: Blueprint) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    def endpoint(rule: str, *, roles: Iterable[str], methods: Iterable[str] = ("GET",), scoped: bool = False,
                 note: str = "", tx: Tx = "read") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        allowed = tuple(roles)

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def wrapper(**kwargs: Any) -> Any:
                user = None
                if allowed:  # PUBLIC routes (no roles) need no sign-in
                    user = api_user()
                    if user.role not in allowed:
                        raise problems.ROLE_MAY_NOT(detail=refusal(allowed))
                rt = runtime()
                if tx == "none":
                    return render(view(Call(user, rt, None, client_ip()), **kwargs))

                def run() -> Any:
                    with rt.db.write() if tx == "write" else rt.db.session() as session:
                        result = view(Call(user, rt, session, client_ip()), **kwargs)
                        if tx == "read":
                            return render(result)
                    return render(result)

                if tx == "write" and _replayable():
                    # A lost race (deadlock, serialization failure) runs the whole transaction again
                    # (docs/architecture.md, *Locks*): never a 5xx for the caller.
                    return retrying(run, f"{request.method} {rule}")
                return run()

            declare(allowed, scoped=scoped, note=note)(wrapper)
            bp.add_url_rule(rule, view.__name__, wrapper, methods=list(methods))
            return wrapper

        return decorator

    return endpoint
