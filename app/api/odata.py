"""OData feeds of submissions (Central's .svc endpoints), streamed page by page."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, request, stream_with_context
from sqlalchemy import and_, func, or_, select

from app import params, problems
from app.central import odata
from app.central import shapes as central
from app.central.odata_filter import parse_filter
from app.models import Submission, SubmissionRepeatRow, SubmissionVersion
from app.routeaccess import READERS
from app.runtime import runtime
from app.services import access
from app.services.forms import encryption
from app.services.schemas import schema_of

from . import Call, endpoint, etags

ALLOWED = {"$format", "$count", "$skip", "$top", "$filter", "$wkt", "$expand", "$select", "$skiptoken",
           "$orderby", "$search"}
MAX_PAGE = 5000
FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"


def odata_response(body: Any, content_type: str = "application/json; charset=utf-8") -> Response:
    resp = Response(body, content_type=content_type)
    resp.headers["OData-Version"] = "4.0"
    return resp


def check_params() -> None:
    unknown = [k for k in request.args if k not in ALLOWED]
    if unknown:
        raise problems.ODATA_PARAMETER_NOT_SUPPORTED(unknown=unknown[0])
    if request.args.get("$expand", "").strip() not in ("", "*"):  # an empty $expand= is ignored, as Central
        raise problems.ODATA_EXPAND_UNSUPPORTED()


URI_COMPONENT_SAFE = "!*'()"  # with quote's own "-._~": what encodeURIComponent leaves as it is


def flag(name: str) -> bool:
    return request.args.get(name, "").lower() == "true"


def _base(project_id: int, xml_form_id: str) -> str:
    origin = (runtime().config["PUBLIC_URL"] or request.host_url).rstrip("/")
    # encoded as Central's encodeURIComponent: a form id may hold `/`, `%`, spaces
    return f"{origin}/v1/projects/{project_id}/forms/{quote(xml_form_id, safe=URI_COMPONENT_SAFE)}.svc"


@endpoint(f"{FORM}.svc", roles=READERS, scoped=True)
def odata_service(call: Call, project_id: int, xml_form_id: str) -> Any:
    form = central.get_form(call.session, call.user, project_id, xml_form_id)
    schema = schema_of(form.current_version)  # type: ignore[arg-type]
    base = _base(project_id, xml_form_id)
    return odata_response(json.dumps({
        "@odata.context": f"{base}/$metadata",
        "value": [{"name": t.name, "kind": "EntitySet", "url": t.name} for t in odata.tables(schema)]}))


@endpoint(f"{FORM}.svc/$metadata", roles=READERS, scoped=True)
def odata_metadata(call: Call, project_id: int, xml_form_id: str) -> Any:
    form = central.get_form(call.session, call.user, project_id, xml_form_id)
    schema = schema_of(form.current_version)  # type: ignore[arg-type]
    return odata_response(odata.metadata_xml(schema), "application/xml; charset=utf-8")


def feed_tail(url: str, next_token: str | None, count: int | None) -> dict[str, Any]:
    """@odata.nextLink (this request's parameters with the next $skiptoken) and @odata.count."""
    tail: dict[str, Any] = {}
    if next_token is not None:
        args = {k: v for k, v in request.args.items() if k not in ("$skip", "$skiptoken")}
        args["$skiptoken"] = next_token
        tail["@odata.nextLink"] = f"{url}?{urlencode(args)}"
    if count is not None:
        tail["@odata.count"] = count
    return tail


def int_arg(name: str, default: int | None) -> int | None:
    """$top / $skip: a whole number from 0 to 2^63-1 (400.11 / 400.22 otherwise)."""
    return params.integer(request.args.get(name), name, default=default)


def select_arg() -> list[str] | None:
    """$select: comma-separated property paths."""
    raw = params.text(request.args.get("$select"), "$select")
    return [p.strip() for p in raw.split(",") if p.strip()] or None


def _submission_filter_fields() -> dict[str, Any]:
    return {"__id": Submission.instance_id, "__system/submissionDate": Submission.created_at,
            "__system/updatedAt": Submission.updated_at, "__system/submitterId": Submission.submitter_id,
            "__system/reviewState": central.review_column(), "__system/deletedAt": Submission.deleted_at}


@endpoint(f"{FORM}.svc/<table>", roles=READERS, scoped=True, tx="none")
def odata_table(call: Call, project_id: int, xml_form_id: str, table: str) -> Any:
    check_params()
    user, rt = call.user, call.rt
    s = rt.db.bulk_session()  # the read replica when there is one
    try:
        form = central.get_form(s, user, project_id, xml_form_id)
        schema = schema_of(form.current_version)  # type: ignore[arg-type]
        tbl = odata.table_by_name(schema, table)
        if tbl is None:
            raise problems.FORM_NO_TABLE(table=table)
        top = int_arg("$top", None)
        skip = int_arg("$skip", 0) or 0
        spec: dict[str, type] = {"at": datetime, "id": int} if tbl.repeat is None else {"row": int}
        token = params.decode_skiptoken(request.args.get("$skiptoken"), spec)
        page = min(top, MAX_PAGE) if top is not None else None
        wkt = flag("$wkt")
        select_ = select_arg()
        odata.check_select(schema, tbl, select_)
        red = access.Redactor(s, user, project_id)
        # As Central: deleted submissions only appear when the filter asks about __system/deletedAt.
        q = central.submissions_query(user, form, deleted=None if "__system/deletedAt" in
                                      (request.args.get("$filter") or "") else False)
        if request.args.get("$filter"):
            hidden = set() if red.show else set(red.paths(schema))
            where = {**odata.form_filter_fields(schema, SubmissionVersion.data, hidden), **_submission_filter_fields()}
            q = q.where(parse_filter(request.args["$filter"], where))
        tag = etags.etag_for(user, [form.current_version_id, etags.submissions_fingerprint(s, q)])
        if (unchanged := etags.not_modified(tag)) is not None:
            s.close()
            return unchanged
        count = s.scalar(select(func.count()).select_from(q.subquery())) if flag("$count") else None
        base = _base(project_id, xml_form_id)
        head = {"@odata.context": f"{base}/$metadata#{table}"}
        if tbl.repeat is None:
            rows, next_token = _root_rows(s, schema, q, page, skip, token, wkt, select_, red)
        else:
            rows, next_token = _repeat_rows(s, schema, tbl, q, page, skip, token, wkt, select_, red)
        tail = feed_tail(f"{base}/{table}", next_token, count)
        access.audit_unmasked(rt.db, user, red, "odata.read", f"form:{xml_form_id}", call.ip, table=table,
                              rows=len(rows))
    except BaseException:
        s.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from odata.stream_json(head, iter(rows), tail)
        finally:
            s.close()

    return etags.tagged(odata_response(stream_with_context(body())), tag)


def _root_rows(s: Any, schema: Any, q: Any, page: int | None, skip: int, token: dict[str, Any], wkt: bool,
               select_: list[str] | None, red: access.Redactor) -> tuple[list[dict[str, Any]], str | None]:
    q = q.order_by(Submission.created_at.desc(), Submission.id.desc())
    after = None
    if token:
        last_at = token["at"]
        after = or_(Submission.created_at < last_at,
                    and_(Submission.created_at == last_at, Submission.id < token["id"]))
    result, more = odata.fetch_page(s, q, page, skip, after)
    counts = central.attachment_counts(s, [sv.id for _, sv, *_ in result])
    edits = central.edits_count(s, [sub.id for sub, *_ in result])
    status = encryption.statuses(s, [sv for _, sv, *_ in result])
    rows = []
    for sub, sv, version, display_name, username in result:
        present, expected = counts.get(sv.id, (0, 0))
        row: dict[str, Any] = {"__id": sub.instance_id}
        if not sv.encrypted_file:  # encrypted: no readable answers, only __system (as Central)
            values = red.values(schema, sv.data)
            row.update(odata.shape_values(schema, None, values, wkt, odata.nav_key(sub.instance_id)))
        row["__system"] = {
            "submissionDate": central.iso(sub.created_at), "updatedAt": central.iso(sub.updated_at),
            "submitterId": str(sub.submitter_id) if sub.submitter_id else None,
            "submitterName": display_name or username, "attachmentsPresent": present,
            "attachmentsExpected": expected, "status": status.get(sv.id),
            "reviewState": odata.REVIEW_TO_CENTRAL.get(sub.review_state, sub.review_state),
            "deviceId": sub.device_id, "edits": edits.get(sub.id, 0), "formVersion": version,
            "deletedAt": central.iso(sub.deleted_at),
        }
        rows.append(odata.select_fields(row, select_))
    next_token = None
    if more and result:
        last = result[-1][0]
        next_token = odata.skiptoken({"at": last.created_at.isoformat(), "id": last.id})
    return rows, next_token


def _repeat_rows(s: Any, schema: Any, tbl: odata.Table, q: Any, page: int | None, skip: int,
                 token: dict[str, Any], wkt: bool, select_: list[str] | None,
                 red: access.Redactor) -> tuple[list[dict[str, Any]], str | None]:
    subs = q.with_only_columns(Submission.current_version_id, Submission.instance_id).subquery()
    rq = (select(SubmissionRepeatRow, subs.c.instance_id)
          .join(subs, subs.c.current_version_id == SubmissionRepeatRow.version_id)
          .where(SubmissionRepeatRow.repeat == tbl.repeat).order_by(SubmissionRepeatRow.id))
    after = SubmissionRepeatRow.id > token["row"] if token else None
    result, more = odata.fetch_page(s, rq, page, skip, after)
    parent_ids = {r.parent_id for r, _ in result if r.parent_id}
    parents = {p.id: p for p in s.scalars(select(SubmissionRepeatRow).where(SubmissionRepeatRow.id.in_(parent_ids)))} \
        if parent_ids else {}
    parent_key = "__" + (tbl.parent or "Submissions").replace(".", "-") + "-id"
    rows = []
    for r, instance_id in result:
        rid = odata.row_id(instance_id, r.repeat, r.id)
        row: dict[str, Any] = {"__id": rid}
        row.update(odata.shape_values(schema, tbl.repeat, red.values(schema, r.data, r.repeat), wkt,
                                      f"{tbl.name}('{rid}')"))
        parent = parents.get(r.parent_id) if r.parent_id else None
        row[parent_key] = odata.row_id(instance_id, parent.repeat, parent.id) if parent else instance_id
        rows.append(odata.select_fields(row, select_))
    next_token = odata.skiptoken({"row": result[-1][0].id}) if more and result else None
    return rows, next_token


