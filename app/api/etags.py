"""ETags and `If-None-Match` on CSV and OData answers (Central's `withEtag`): a client that asks again for
the same data gets 304 Not Modified instead of the rows (Power BI refreshes, centralpy's pullcsv, scripts).

The tag is a digest of everything the answer depends on: the server's version, the caller (id, role,
regions, whether identifying details are shown), the URL with its query, and a fingerprint of the rows
the answer is made of that any change alters (for submissions: how many, the sum of their ids, the
newest change and the newest version; for an entity list: its revision). Computing it is one aggregate
query; the rows are read only when the tag differs.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from flask import Response, request
from sqlalchemy import func
from sqlalchemy.orm import Session

from app.models import Submission, SubmissionVersion, User
from app.services import access

from .misc import _version


def submissions_fingerprint(session: Session, query: Any) -> tuple[Any, ...]:
    """One aggregate over a submissions query (joined with the current versions) that changes with any
    row it selects: count, sum of ids, newest update, newest version id."""
    q = query.with_only_columns(func.count(Submission.id), func.sum(Submission.id),
                                func.max(Submission.updated_at), func.max(SubmissionVersion.id)).order_by(None)
    return tuple(session.execute(q).one())


def etag_for(user: User, parts: Iterable[Any]) -> str:
    scope = [user.id, user.role, sorted(user.region_codes or []), access.sees_sensitive(user)]
    query = sorted(request.args.items(multi=True))
    digest = hashlib.sha256(json.dumps([_version(), scope, request.path, query, *parts], default=str,
                                       ensure_ascii=False).encode()).hexdigest()
    return f'"{digest[:40]}"'


def not_modified(tag: str) -> Response | None:
    """304 when the request's `If-None-Match` names this tag (or `*`), else None."""
    header = request.headers.get("If-None-Match")
    if not header:
        return None
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    if tag in wanted or "*" in wanted:
        resp = Response(status=304)
        resp.headers["ETag"] = tag
        return resp
    return None


def tagged(resp: Response, tag: str) -> Response:
    """The answer with its ETag. It stays `Cache-Control: no-store` as every answer (app.create_app): no
    browser or proxy keeps the data; the client (Power BI, a script) keeps the tag and asks with it."""
    resp.headers["ETag"] = tag
    return resp
