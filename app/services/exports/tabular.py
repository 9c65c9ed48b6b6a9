"""Rows → tables: the export plan (tables, headers, KEY/PARENT_KEY) and one pass over the rows.

Layout follows ODK Central's / Briefcase's CSV export (docs/odk-protocol.md, *The CSV export*): the main table has
`SubmissionDate`, the questions (group paths joined with `-`), then `KEY`, `SubmitterID`,
`SubmitterName`, `AttachmentsPresent`, `AttachmentsExpected`, `Status`, `ReviewState`,
`DeviceID`, `Edits`, `FormVersion` (and CareFile's `RegionCode`); one table per repeat ends with
`PARENT_KEY`, `KEY`. A repeat row's KEY is its parent's KEY + `/<repeat name>[<ordinal>]`, so
nested repeats link to their parent row and, through it, to the submission.

The columns are the union of every form version's questions (newest version's order and labels
first); a question marked sensitive in any version is masked unless the user may and asks.
Submissions are read in keyset batches (id > last ORDER BY id LIMIT n) with their repeat rows and
attachments fetched per batch, so memory does not grow with the number of rows.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app import problems
from app.models import Form, FormVersion, Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion, User
from app.models.base import UTCDateTime
from app.services import access, regions
from app.services.exports.options import ExportOptions
from app.services.exports.rowcode import CHECK_FIRST, build_row, compile_row, neutralise
from app.services.schemas import schema_of
from forms import Field, FormSchema
from forms.sensitivity import sensitive_paths
from forms.submission import SENT_TEXT

MASK = "***"
SKIP_TYPES = ("group", "repeat")
MAIN_HEAD = ("SubmissionDate",)
MAIN_TAIL = ("KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status",
             "ReviewState", "DeviceID", "Edits", "FormVersion", "RegionCode")
REPEAT_TAIL = ("PARENT_KEY", "KEY")
GEO_PARTS = {"codes": ("Latitude", "Longitude", "Altitude", "Accuracy"),
             "en": ("Latitude", "Longitude", "Altitude", "Accuracy"), "zh": ("纬度", "经度", "海拔", "精度")}
BATCH = 1000
COUNTY_DIGITS = 6  # a region code's county: ix_submission_form_county_created_id (migration 0027)
# Encrypted submissions the export cannot read (ODK form encryption): __system/status as Central's
# OData and JSON give it, and the CSV/XLSX `Status` text of Central's CSV export (lib/data/briefcase.js).
NOT_DECRYPTED, MISSING_ENCRYPTED = "notDecrypted", "missingEncryptedFormData"
STATUS_TEXT = {NOT_DECRYPTED: "not decrypted", MISSING_ENCRYPTED: "missing encrypted form data"}
_CENTRAL_REVIEW = {"received": "", "has_issues": "hasIssues"}  # Central's CSV: empty for received

Spec = tuple[str, int, Any, int]  # (data key, kind (see build_row), dict or function, width)


def pick_label(labels: dict[str, str], lang: str) -> str:
    """The label in language `lang` ("zh"/"en") among itext languages like '中文 (zh)'; else any."""
    if not labels:
        return ""
    for key, text in labels.items():
        low = key.lower()
        if f"({lang})" in low or low == lang:
            return text
    for key, text in labels.items():
        low = key.lower()
        if (lang == "zh" and ("中文" in key or "chinese" in low)) or (lang == "en" and "english" in low):
            return text
    return labels.get("") or labels.get("default") or next(iter(labels.values()))


@dataclass
class Table:
    """One output table: the main table (repeat None) or one repeat."""

    repeat: str | None
    name: str            # file / sheet name stem
    node: str            # the repeat's node name (KEY segment); "" for the main table
    fields: list[tuple[Field, str, str]] = field(default_factory=list)  # (field, data key, header)
    headers: list[str] = field(default_factory=list)
    specs: list[Spec] = field(default_factory=list)
    binary_keys: list[str] = field(default_factory=list)  # unmasked photo/signature keys (media)
    cells: Callable[[dict[str, Any]], list[Any]] | None = None  # build_row compiled for specs (rowcode.py)


@dataclass(slots=True)
class RepeatRecord:
    table: int
    key: str
    parent_key: str
    data: dict[str, Any]


@dataclass(slots=True)
class Record:
    """One submission (its current version) with its repeat rows and, if asked, its media files.
    (Slots: an export makes one per record and repeat row — faster to make, smaller.)"""

    key: str
    meta: tuple[Any, ...]  # values of MAIN_TAIL after KEY, and SubmissionDate first
    data: dict[str, Any]
    repeats: list[RepeatRecord]
    media: list[tuple[str, str]]  # (file name, blob key)


class Plan:
    """Everything one export needs: the form, the user's scope, the tables and the row query."""

    def __init__(self, session: Session, form: Form, user: User, options: ExportOptions) -> None:
        access.require_reader(user)
        options.check_allowed(user)
        self.form, self.user, self.options = form, user, options
        self._lists = access.sensitive_label_lists(session, form.project_id)
        versions = list(session.scalars(select(FormVersion).where(FormVersion.form_id == form.id)
                                        .order_by(FormVersion.id.desc())))
        if options.form_version:
            versions = [v for v in versions if v.version == options.form_version]
            if not versions:
                raise problems.EXPORT_FORM_VERSION_NOT_FOUND(xml_form_id=form.xml_form_id,
                                                             form_version=options.form_version)
        if not versions:
            raise problems.EXPORT_FORM_NOT_PUBLISHED(xml_form_id=form.xml_form_id)
        self.version_ids = [v.id for v in versions]
        schemas = [schema_of(v) for v in versions]
        self.schemas = dict(zip(self.version_ids, schemas, strict=True))
        # Set by app.services.encryption to decrypt encrypted submissions on the fly (managed or supplied key).
        self.decryptor: Callable[[Any, int, Record], Record | None] | None = None
        self.schema = schemas[0]
        self.title = versions[0].title
        # deleted_fields off (Central's default for its CSV URLs): only the newest version's questions
        self.tables = self._layout(schemas if options.deleted_fields else schemas[:1])
        self.table_of = {t.repeat: i for i, t in enumerate(self.tables)}
        self._nodes = {t.repeat: t.node for t in self.tables if t.repeat}
        self._cells = [t.cells or compile_row(t.specs) for t in self.tables]
        self._main_cells = self._cells[0]
        # codes (Central's CSV): a select-multiple sent as other than its choices joined by one space (" a  b")
        # is written as sent, as Central does; labels join the choices' labels
        self._as_sent = options.labels == "codes"
        # Central's conventions, set by the Central-compatible CSV endpoints (api/exports.py):
        # rows newest first, ReviewState empty for a received submission and in Central's names.
        self.newest_first = False
        self.central_review = False
        self.extra_where: list[Any] = []  # further SQL conditions (e.g. an OData $filter)

    # ---- layout -------------------------------------------------------------------------------
    def _layout(self, schemas: list[FormSchema]) -> list[Table]:
        fields: dict[str, Field] = {}
        sensitive: set[str] = set()
        repeats: list[str] = []
        for schema in schemas:
            sensitive |= sensitive_paths(schema, self._lists)
            for f in schema.fields:
                fields.setdefault(f.path, f)
            for r in schema.repeats:
                if r not in repeats:
                    repeats.append(r)
        self.sensitive_paths = sensitive
        root = "/" + self.schema.root
        form_id = self.form.xml_form_id
        tables = [Table(None, form_id, "")]
        names: set[str] = {form_id}
        for rep in repeats:
            node = rep.rsplit("/", 1)[-1]
            name, n = f"{form_id}-{node}", 1
            while name in names:
                n += 1
                name = f"{form_id}-{node}~{n}"
            names.add(name)
            tables.append(Table(rep, name, node))
        by_repeat = {t.repeat: t for t in tables}
        for f in fields.values():
            if f.type in SKIP_TYPES:
                continue
            table = by_repeat.get(f.repeat)
            if table is None:
                continue
            base = table.repeat or root
            key = f.path[len(base) + 1:]
            table.fields.append((f, key, self._header(f, key, base, fields)))
        for t in tables:
            self._compile(t)
        return tables

    def _header(self, f: Field, key: str, base: str, fields: dict[str, Field]) -> str:
        mode, grouped = self.options.labels, self.options.group_paths
        parts = key.split("/") if grouped else [key.rsplit("/", 1)[-1]]
        if mode == "codes":
            return "-".join(parts)
        if not grouped:
            return (pick_label(f.labels, mode) or f.name).strip()
        out = []
        for i, part in enumerate(parts):
            node = fields.get(f"{base}/{'/'.join(parts[:i + 1])}")
            out.append((pick_label(node.labels, mode) if node is not None else "").strip() or part)
        return " - ".join(out)

    def _compile(self, t: Table) -> None:
        opts = self.options
        headers: list[str] = list(MAIN_HEAD) if t.repeat is None else []
        for f, key, header in t.fields:
            masked = f.path in self.sensitive_paths and not opts.sensitive
            labels = {c.value: pick_label(c.labels, opts.labels) or c.value for c in f.choices} \
                if opts.labels != "codes" else None
            if labels is not None and not labels and f.itemset_file == regions.FORM_CSV:
                labels = regions.table().names  # places picked from regions.csv: their names
            if f.type == "binary" and not masked:
                t.binary_keys.append(key)
            if f.type == "geopoint":
                parts = GEO_PARTS[opts.labels]
                cols = [f"{header}-{p}" for p in parts]
                spec: Spec = (key, 3, _geopoint, 4)
            elif f.type == "select":
                cols = [header]
                spec = (key, 2, _join_labels(labels) if labels else _join_codes, 1)
                if opts.split_select and f.choices:
                    values = [c.value for c in f.choices]
                    cols += [f"{header}/{(labels or {}).get(v, v)}" for v in values]
                    spec = (key, 3, _split(values, labels), 1 + len(values))
            elif f.type == "select1" and labels:
                cols, spec = [header], (key, 1, labels, 1)
            elif f.type in ("geotrace", "geoshape"):
                cols, spec = [header], (key, 2, _geo_text, 1)
            elif f.type == "boolean":
                cols, spec = [header], (key, 2, _bool, 1)
            else:
                cols, spec = [header], (key, 0, None, 1)
            if masked:
                spec = (key, 3, _masker(spec[3]), spec[3])
            headers += cols
            t.specs.append(spec)
        headers += list(MAIN_TAIL if t.repeat is None else REPEAT_TAIL)
        t.headers = [_safe(h) for h in _unique(headers)]  # labels come from the XLSForm
        t.cells = compile_row(t.specs)

    # ---- rows ---------------------------------------------------------------------------------
    def _where(self) -> list[Any]:
        o = self.options
        S = Submission
        cond: list[Any] = [S.form_id == self.form.id, S.deleted_at.is_(None),
                           access.submission_filter(self.user, self.form.project_id)]
        if o.region:
            cond.append(S.region_code.startswith(o.region, autoescape=True))
            if len(o.region) >= COUNTY_DIGITS:
                # implied by the prefix: lets the (form, county, created_at, id) index walk only the county
                cond.append(county_of(S.region_code) == o.region[:COUNTY_DIGITS])
        if o.review_states:
            cond.append(S.review_state.in_(o.review_states))
        if o.date_from:
            cond.append(S.created_at >= datetime(o.date_from.year, o.date_from.month, o.date_from.day,
                                                 tzinfo=UTC))
        if o.date_to:
            end = datetime(o.date_to.year, o.date_to.month, o.date_to.day, tzinfo=UTC) + timedelta(days=1)
            cond.append(S.created_at < end)
        if o.form_version:
            cond.append(SubmissionVersion.form_version_id.in_(self.version_ids))
        return cond + list(self.extra_where)

    def count(self, session: Session) -> int:
        q = (select(func.count()).select_from(Submission)
             .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id).where(*self._where()))
        return int(session.scalar(q) or 0)

    def fingerprint(self, session: Session) -> tuple[Any, ...]:
        """What any change of the exported rows alters (ETags): count, sum of ids, newest change and version."""
        q = (select(func.count(), func.sum(Submission.id), func.max(Submission.updated_at),
                    func.max(SubmissionVersion.id))
             .select_from(Submission).join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
             .where(*self._where()))
        return tuple(session.execute(q).one())

    def positions(self) -> Any:
        """(created_at, id) of every matching submission in the order received, as the pages walk them (one walk
        per `_county_branches`, merged): parallel.py cuts its chunks along it."""
        S, V = Submission, SubmissionVersion
        where = self._where()
        walk = (select(S.created_at, S.id).join(V, V.id == S.current_version_id) if self._version_read()
                else select(S.created_at, S.id).where(S.current_version_id.is_not(None))).where(*where)
        walks = [walk.where(branch) for branch in self._county_branches()]
        if not walks:
            return walk.order_by(S.created_at, S.id)
        merged = walks[0].union_all(*walks[1:]).subquery()
        return select(merged.c.created_at, merged.c.id).order_by(merged.c.created_at, merged.c.id)

    def records(self, session: Session, batch: int = BATCH, progress: Callable[[int], None] | None = None,
                after: tuple[Any, int] | None = None, upto: tuple[Any, int] | None = None) -> Iterator[Record]:
        """Every matching submission in order received, read batch by batch: keyset pagination on
        (created_at, id), which the index (form_id, created_at, id) serves without sorting — or, for one
        county, (form_id, county, created_at, id) (`_where`, `_county_branches`).
        Executed as Core statements on the session's connection (no ORM row loading).
        `after`/`upto` limit the rows to the (created_at, id) range (after, upto] (parallel.py)."""
        S, V, A = Submission, SubmissionVersion, SubmissionAttachment
        edits = select(func.count()).where(V.submission_id == S.id).correlate(S).scalar_subquery()
        expected = select(func.count()).where(A.version_id == V.id).correlate(V).scalar_subquery()
        present = (select(func.count()).where(A.version_id == V.id, A.blob_key.is_not(None))
                   .correlate(V).scalar_subquery())
        enc_data = exists().where(and_(A.version_id == V.id, A.name == V.encrypted_file,
                                       A.blob_key.is_not(None))).correlate(V)
        status = case((V.encrypted_file.is_(None), literal("")), (enc_data, literal(NOT_DECRYPTED)),
                      else_=literal(MISSING_ENCRYPTED))
        order = (S.created_at.desc(), S.id.desc()) if self.newest_first else (S.created_at, S.id)
        # PostgreSQL gives the time received as UTC without a time zone: the driver makes the datetime in C, and
        # neither the column type's conversion (a Python call per row) nor an aware isoformat runs (_stamp).
        received = (type_coerce(func.timezone(literal_column("'UTC'"), S.created_at), DateTime())
                    if session.get_bind().dialect.name == "postgresql" else S.created_at)
        rows = (select(S.id, S.instance_id, received, S.submitter_id, User.username, S.device_id,
                       S.review_state, S.region_code, V.id, V.data, FormVersion.version, edits, expected, present,
                       status)
                .join(V, V.id == S.current_version_id).join(FormVersion, FormVersion.id == V.form_version_id)
                .outerjoin(User, User.id == S.submitter_id).order_by(*order).limit(batch))
        where = self._where()
        branches = self._county_branches()
        # a walk joins the version only when a condition reads it (`_version_read`)
        walk = (select(S.id).join(V, V.id == S.current_version_id) if self._version_read()
                else select(S.id).where(S.current_version_id.is_not(None)))
        low = [_position() > _key(after)] if after is not None else []
        high = [_position() <= _key(upto)] if upto is not None else []

        def page(last: Any = None) -> Any:
            # The page's bounds: after the previous page's last row, that position replaces the range's own
            # bound on that side (it lies inside the range). Two lower bounds made PostgreSQL multiply their
            # selectivities and read a whole part's rows through a bitmap and sort them, for every page
            # (bench/scale: 0.86 s a page in the second process of a parallel export).
            if last is None:
                keyset = low + high
            elif self.newest_first:
                keyset = [*low, _position() < last]
            else:
                keyset = [_position() > last, *high]
            if not branches:
                return rows.where(*where, *keyset)
            # One ordered walk of the county index per branch, each a page long; the page is the first `batch`
            # of their union (a sort of at most len(branches) * batch ids).
            walks = [walk.where(*where, branch, *keyset).order_by(*order).limit(batch).subquery()
                     for branch in branches]
            ids = [select(w.c.id) for w in walks]
            return rows.where(S.id.in_(ids[0].union_all(*ids[1:])))
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            # An export already keeps the CPUs busy (parallel.py splits a large one over processes): parallel
            # workers started for each page of 1,000 only add their start-up (bench/scale: up to 2x slower).
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
            # Nor JIT compilation: a page whose region the planner thinks large (a county manager's, through the
            # form's index) is costed above jit_above_cost, and compiling took 25 ms of a 35 ms page.
            conn.exec_driver_sql("SET LOCAL jit = off")
        with _fewer_collections():
            # One generator between the pages and the caller (this one): each record passes one frame.
            done, query = 0, page()
            while True:
                found = conn.execute(query).all()
                if not found:
                    break
                last = _key((_aware(found[-1][2]), found[-1][0]))
                query = page(last)
                yield from self._batch(conn, found)
                done += len(found)
                if progress is not None:
                    progress(done)
                if len(found) < batch:
                    break

    def _version_read(self) -> bool:
        """Whether a condition reads the record's version (a form version, an OData $filter): else a walk reads
        "has a current version" (what the join checks, by its foreign key) from the record itself."""
        return bool(self.options.form_version or self.extra_where)

    def _county_branches(self) -> list[Any]:
        """For a user whose scope is one or more counties (or places inside them) and who asked for no county:
        the page is read as one walk of the county index per county, plus one over the records without a
        region code (the scope admits those of the user's children). Each condition is implied by the
        user's scope (access.submission_filter), so the rows are the same; one OR of them would make
        PostgreSQL read every record of the form. Empty: the plain query serves (an admin; a county filter,
        which `_where` adds; a scope wider than a county)."""
        o = self.options
        if access.unscoped(self.user) or (o.region and len(o.region) >= COUNTY_DIGITS):
            return []
        codes = self.user.region_codes
        if not codes or any(len(c) < COUNTY_DIGITS for c in codes):
            return []
        county = county_of(Submission.region_code)
        branches = [county == c for c in sorted({c[:COUNTY_DIGITS] for c in codes})]
        if not o.region:  # a region filter admits no record without a region code
            branches.append(county == literal_column("''"))
        return branches

    def _batch(self, conn: Any, rows: list[Any]) -> list[Record]:
        """The records of one page of rows (a list: iterated by `records` without another generator frame)."""
        vids = [r[8] for r in rows]
        A, R = SubmissionAttachment, SubmissionRepeatRow
        media = self.options.media
        atts: dict[int, list[tuple[str, str]]] = {}
        if media:
            for vid, name, key in conn.execute(select(A.version_id, A.name, A.blob_key).where(
                    _among(conn, A.version_id, vids), A.blob_key.is_not(None))):
                atts.setdefault(vid, []).append((name, key))
        reps: dict[int, list[Any]] = {}
        if len(self.tables) > 1:
            q = select(R.id, R.version_id, R.repeat, R.ordinal, R.parent_id, R.data).where(
                _among(conn, R.version_id, vids)).order_by(R.id)
            for rr in conn.execute(q).all():
                reps.setdefault(rr[1], []).append(rr)
        table_of, nodes = self.table_of, self._nodes
        no_reps: tuple[Any, ...] = ()
        decryptor = self.decryptor
        central = self.central_review
        records: list[Record] = []
        put = records.append
        for (_sid, iid, created, submitter, uname, device, review, region, vid, data, version, edits, expected,
             present, status) in rows:
            if central:
                review = _CENTRAL_REVIEW.get(review, review)
            meta = (_stamp(created), submitter, uname or "", present,
                    expected, status or "", review, device or "", edits - 1, version, region or "")
            if status:
                rec: Record | None = Record(iid, meta, {}, [], [])
                if decryptor is not None and status == NOT_DECRYPTED:
                    rec = decryptor(conn, vid, rec)  # type: ignore[arg-type]
                if rec is not None:
                    put(rec)
                continue
            out: list[RepeatRecord] = []
            keys: dict[int, str] = {}
            for rid, _v, repeat, ordinal, parent, rdata in reps.get(vid, no_reps):
                pkey = keys.get(parent, iid) if parent else iid
                key = keys[rid] = f"{pkey}/{nodes.get(repeat) or repeat.rsplit('/', 1)[-1]}[{ordinal}]"
                t = table_of.get(repeat)
                if t is not None:
                    out.append(RepeatRecord(t, key, pkey, rdata or {}))
            wanted: list[tuple[str, str]] = []
            files = atts.get(vid)
            if files:
                names = self._media_names(data or {}, out)
                wanted = [(n, k) for n, k in files if n in names]
            put(Record(iid, meta, data or {}, out, wanted))
        return records

    def _media_names(self, data: dict[str, Any], reps: list[RepeatRecord]) -> set[str]:
        names = {data.get(k) for k in self.tables[0].binary_keys}
        for r in reps:
            names.update(r.data.get(k) for k in self.tables[r.table].binary_keys)
        return {n for n in names if isinstance(n, str)}

    def decrypted_record(self, rec: Record, values: dict[str, Any], repeat_rows: list[Any],
                         media: list[tuple[str, str]]) -> Record:
        """A decrypted submission as a Record: its values, its repeat rows (forms.RepeatRow, KEYs
        as for stored rows) and its media files; the Status becomes empty."""
        out: list[RepeatRecord] = []
        keys: dict[int, str] = {}
        for row in repeat_rows:
            pkey = keys.get(row.parent_index, rec.key) if row.parent_index is not None else rec.key
            key = keys[row.index] = f"{pkey}/{self._nodes.get(row.repeat) or row.repeat.rsplit('/', 1)[-1]}" \
                                    f"[{row.ordinal}]"
            t = self.table_of.get(row.repeat)
            if t is not None:
                out.append(RepeatRecord(t, key, pkey, dict(row.values)))
        meta = rec.meta[:5] + ("",) + rec.meta[6:]
        wanted: list[tuple[str, str]] = []
        if media:
            names = self._media_names(values, out)
            wanted = [(n, k) for n, k in media if n in names]
        return Record(rec.key, meta, values, out, wanted)

    # ---- cells --------------------------------------------------------------------------------
    def main_row(self, rec: Record) -> list[Any]:
        """Cells of the main table for CSV/XLSX (formula-like strings neutralised)."""
        meta = rec.meta
        row = [meta[0]]
        data = rec.data
        row += self._main_cells(_as_sent(data) if self._as_sent and SENT_TEXT in data else data)
        row.append(_safe(rec.key))
        row += meta[1:]
        if meta[5]:
            row[-6] = STATUS_TEXT.get(meta[5], meta[5])  # Status
        row[-9], row[-4] = _safe(row[-9]), _safe(row[-4])  # SubmitterName, DeviceID
        return row

    def repeat_row(self, rep: RepeatRecord) -> list[Any]:
        data = rep.data
        row = self._cells[rep.table](_as_sent(data) if self._as_sent and SENT_TEXT in data else data)
        row.append(_safe(rep.parent_key))
        row.append(_safe(rep.key))
        return row


def county_of(column: Any) -> Any:
    """The region code's county (first six digits; '' for none) exactly as ix_submission_form_county_created_id
    holds it: constants as SQL text, since SQLite uses an expression index only for the same expression text.
    '' rather than NULL: `= ''` walks the records without a region in order, `IS NULL` would sort them."""
    return func.coalesce(func.substr(column, literal_column("1"), literal_column(str(COUNTY_DIGITS))),
                         literal_column("''"))


def _among(conn: Any, column: Any, ids: list[int]) -> Any:
    """column IN ids; on PostgreSQL `= ANY(CAST(text AS integer[]))`: one parameter instead of a thousand, sent
    as the array's text (made in C by str.join; the driver's dumper of a list of ints checked each in Python,
    1.7 ms per page of 1,000)."""
    if conn.dialect.name == "postgresql":
        return column == any_(cast(bindparam(None, "{" + ",".join(map(str, ids)) + "}", type_=Text()),
                                   ARRAY(Integer)))
    return column.in_(ids)


def _stamp(t: datetime) -> str:
    """The time received as Central's CSV writes it (UTC, milliseconds): 2026-03-01T08:15:00.250Z. `t` is in UTC,
    naive (PostgreSQL, see `records`) or aware (SQLite)."""
    text = (t.replace(tzinfo=None) if t.tzinfo is not None else t).isoformat()
    return (text[:23] if len(text) > 19 else text + ".000") + "Z"


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _position() -> Any:
    return tuple_(Submission.created_at, Submission.id)


def _key(key: tuple[Any, int]) -> Any:
    return tuple_(literal(key[0], UTCDateTime()), literal(key[1], Integer()))


_gc_lock = threading.Lock()
_gc_state: dict[str, Any] = {"users": 0, "saved": None}


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Exports allocate millions of short-lived, acyclic dicts and lists; the default gen-0
    threshold (700) makes the cycle collector run thousands of times (≈40% of an export's time).
    Raise it while any export runs in this process, then restore it."""
    with _gc_lock:
        if _gc_state["users"] == 0:
            saved = _gc_state["saved"] = gc.get_threshold()
            gc.set_threshold(max(saved[0], 50_000), *saved[1:])
        _gc_state["users"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["users"] -= 1
            if _gc_state["users"] == 0 and _gc_state["saved"]:
                gc.set_threshold(*_gc_state["saved"])


def _safe(v: Any) -> Any:
    return neutralise(v) if v.__class__ is str and v and v[0] in CHECK_FIRST else v


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        n = seen.get(h, 0) + 1
        seen[h] = n
        out.append(h if n == 1 else f"{h}~{n}")
    return out


def _as_sent(data: dict[str, Any]) -> dict[str, Any]:
    """The values with each select-multiple kept as submitted (forms.submission.SENT_TEXT) in place of its list:
    the codes cell (`_join_codes`, the first cell of `_split`) writes that text, made spreadsheet-safe."""
    sent = data.get(SENT_TEXT)
    if not isinstance(sent, dict):
        return data
    return {**data, **{k: v for k, v in sent.items() if isinstance(v, str) and isinstance(data.get(k), list)}}


def _join_codes(v: Any) -> Any:
    return " ".join(map(str, v)) if isinstance(v, list) else v


def _join_labels(labels: dict[str, str]) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        return ", ".join(str(labels.get(c, c)) for c in v) if isinstance(v, list) else labels.get(v, v)
    return fn


def _split(values: list[str], labels: dict[str, str] | None) -> Callable[[Any], list[Any]]:
    head = _join_labels(labels) if labels else _join_codes

    def fn(v: Any) -> list[Any]:
        chosen = set(v) if isinstance(v, list) else set(str(v).split())
        return [_safe(head(v)), *[1 if c in chosen else 0 for c in values]]
    return fn


def _masker(width: int) -> Callable[[Any], list[str]]:
    cells = [MASK] * width
    return lambda v: cells


def _geopoint(v: Any) -> list[Any]:
    """Latitude, longitude, altitude, accuracy: each piece as submitted (kept since ingest, as Central's
    CSV), else from the GeoJSON."""
    raw = (v.get("properties") or {}).get("odk") if isinstance(v, dict) else None
    if isinstance(raw, str):
        pieces = raw.split()  # numbers (checked at ingest): `-121.3` is no formula
        return pieces[:4] + [""] * (4 - min(len(pieces), 4))
    if isinstance(v, dict):
        c = v.get("coordinates") or []
        acc = (v.get("properties") or {}).get("accuracy", "")
        return [c[1] if len(c) > 1 else "", c[0] if c else "", c[2] if len(c) > 2 else "", acc]
    return [_safe(v), "", "", ""]


def _geo_text(v: Any) -> Any:
    """A geotrace/geoshape as submitted (kept since ingest), else rebuilt from the GeoJSON as "lat lon alt;…"."""
    if not isinstance(v, dict):
        return v
    raw = (v.get("properties") or {}).get("odk")
    if isinstance(raw, str):
        return _safe(raw)
    coords = v.get("coordinates") or []
    if v.get("type") == "Polygon":
        coords = coords[0] if coords else []
    return ";".join(" ".join(str(x) for x in [p[1], p[0], *p[2:]]) for p in coords)


def _bool(v: Any) -> Any:
    return ("true" if v else "false") if isinstance(v, bool) else v


def plan_for(session: Session, project_id: int, xml_form_id: str, user: User, options: ExportOptions) -> Plan:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None:
        raise problems.EXPORT_NO_SUCH_FORM(xml_form_id=xml_form_id)
    return Plan(session, form, user, options)


__all__ = ["MASK", "Plan", "Record", "RepeatRecord", "Table", "build_row", "pick_label", "plan_for"]
