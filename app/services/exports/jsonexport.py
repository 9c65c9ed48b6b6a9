"""JSON: one object per submission, repeats nested under their parent, streamed as written.

    {"form": "household", "title": "…", "exported_at": "…", "submissions": [
      {"__id": "uuid:…", "__system": {"submissionDate": "…", "reviewState": "received", …},
       "child_name": "…", "needs": ["food", "health"], "location": {"type": "Point", …},
       "members": [{"__id": "uuid:…/members[1]", "member_role": "mother", …}, …]}, …]}

Keys are the same headers as the CSV/XLSX columns (names or labels, with or without group
paths); values keep their JSON types (numbers, lists for select_multiple, GeoJSON for geo);
with labels, choices become their labels; sensitive fields are masked as in the other formats.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.services.exports.tabular import MASK, Plan, pick_label

Spec = tuple[str, str, Callable[[Any], Any] | None]


def _specs(plan: Plan) -> list[list[Spec]]:
    out: list[list[Spec]] = []
    mode = plan.options.labels
    for t in plan.tables:
        specs: list[Spec] = []
        for f, key, header in t.fields:
            fn: Callable[[Any], Any] | None = None
            if f.path in plan.sensitive_paths and not plan.options.sensitive:
                fn = _mask
            elif mode != "codes" and f.choices:
                labels = {c.value: pick_label(c.labels, mode) or c.value for c in f.choices}
                fn = _labeller(labels)
            specs.append((header, key, fn))
        out.append(specs)
    return out


def _mask(v: Any) -> Any:
    return MASK if v not in (None, "") else v


def _labeller(labels: dict[str, str]) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if isinstance(v, list):
            return [labels.get(c, c) for c in v]
        return labels.get(v, v)
    return fn


def _obj(data: dict[str, Any], specs: list[Spec], key: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"__id": key}
    get = data.get
    for header, k, fn in specs:
        v = get(k)
        obj[header] = fn(v) if fn is not None and v is not None else v
    return obj


def write_json(plan: Plan, session: Session, out: Any, progress: Callable[[int], None] | None = None) -> None:
    """Write the JSON document to out (a binary file), one submission at a time."""
    specs = _specs(plan)
    head = {"form": plan.form.xml_form_id, "title": plan.title,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    out.write(json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "submissions": [\n')
    first = True
    for rec in plan.records(session, progress=progress):
        m = rec.meta
        obj = _obj(rec.data, specs[0], rec.key)
        obj["__system"] = {"submissionDate": m[0], "submitterId": m[1], "submitterName": m[2],
                           "attachmentsPresent": m[3], "attachmentsExpected": m[4], "status": m[5] or None,
                           "reviewState": m[6],
                           "deviceId": m[7], "edits": m[8], "formVersion": m[9], "regionCode": m[10]}
        nodes = {rec.key: obj}
        for rep in rec.repeats:
            child = nodes[rep.key] = _obj(rep.data, specs[rep.table], rep.key)
            parent = nodes.get(rep.parent_key, obj)
            parent.setdefault(plan.tables[rep.table].node, []).append(child)
        out.write((b"" if first else b",\n") + json.dumps(obj, ensure_ascii=False).encode())
        first = False
    out.write(b"\n]}\n")
