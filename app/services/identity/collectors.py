"""Collectors (the village directors using ODK Collect): rosters, regions, form assignments, tokens.

A roster is a spreadsheet (XLSX) or CSV with the columns username, display_name, password,
regions and forms. Every row is checked before anyone is created, so an import either creates
every collector of the file or none (the web page shows all row errors at once).

Error messages are English templates with ``{placeholders}`` and their values kept apart, so the
web layer can show them in the user's language.
"""
from __future__ import annotations

import csv
import io
import re
import secrets
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import problems
from app.errors import Problem
from app.models import CollectorToken, Form, FormAssignment, User
from app.services import access
from app.services.identity import users as user_service
from app.services.regions import code_error

MAX_ROWS = 5000
MAX_EXPANDED_BYTES = 32 * 1024 * 1024
_SPLIT = re.compile(r"[\s,;，；、]+")
# Header names accepted for each column (lower case); the Chinese ones are what people type.
COLUMNS: dict[str, tuple[str, ...]] = {
    "username": ("username", "user name", "user", "name", "用户名", "账号", "帐号"),
    "display_name": ("display_name", "display name", "full name", "显示名称", "姓名", "名称"),
    "password": ("password", "密码"),
    "regions": ("regions", "region", "region codes", "地区", "区域", "地区代码", "区划代码"),
    "forms": ("forms", "form", "form ids", "表单"),
}


@dataclass
class RowError:
    """A problem in one roster row (row 0: the file as a whole); message is an English template."""

    row: int
    column: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectorRow:
    row: int
    username: str
    display_name: str = ""
    password: str = ""
    regions: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)


@dataclass
class TokenStatus:
    state: str  # "active" | "revoked" | "none"
    since: datetime | None = None
    token: str | None = None


def split_list(text: str | None) -> list[str]:
    """Codes or form ids separated by spaces, commas or semicolons (also the Chinese ones)."""
    return [part for part in _SPLIT.split(str(text or "").strip()) if part]


# ---------------------------------------------------------------- reading a roster file

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 540102 typed as a number as 540102.0
    return str(value).strip()


def _xlsx_rows(data: bytes) -> list[list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise problems.COLLECTORS_XLSX_DAMAGED() from err
    if len(infos) > 1000 or sum(i.file_size for i in infos) > MAX_EXPANDED_BYTES:
        raise problems.COLLECTORS_XLSX_TOO_LARGE()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it ignores
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                sheet = wb.worksheets[0]
                rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            finally:
                wb.close()
    except Problem:
        raise
    except Exception as err:  # noqa: BLE001 - openpyxl raises anything on crafted files
        raise problems.COLLECTORS_XLSX_DAMAGED() from err
    return rows


def _csv_rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in Chinese saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes nearly anything
        raise problems.COLLECTORS_CSV_NOT_TEXT()
    if "\x00" in text:
        raise problems.COLLECTORS_CSV_NOT_TEXT()
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text), dialect)]


def read_roster(data: bytes, filename: str) -> tuple[list[CollectorRow], list[RowError]]:
    """Rows of an uploaded XLSX or CSV roster; the row numbers are those the spreadsheet shows."""
    name = filename.lower()
    if data.startswith(b"PK\x03\x04"):
        table = _xlsx_rows(data)
    elif name.endswith((".csv", ".txt")):
        table = _csv_rows(data)
    elif data.startswith(b"\xd0\xcf\x11\xe0"):
        raise problems.COLLECTORS_OLD_XLS()
    else:
        raise problems.COLLECTORS_FILE_TYPE()
    header_at = next((i for i, r in enumerate(table) if any(r)), None)
    if header_at is None:
        return [], [RowError(0, "", "The file is empty.")]
    aliases = {alias: key for key, names in COLUMNS.items() for alias in names}
    columns: dict[str, int] = {}
    for index, title in enumerate(table[header_at]):
        key = aliases.get(title.strip().lower())
        if key and key not in columns:
            columns[key] = index
    if "username" not in columns:
        return [], [RowError(header_at + 1, "", "The first row must name the columns: username, display_name, "
                             "password, regions, forms.")]
    rows: list[CollectorRow] = []
    for offset, raw in enumerate(table[header_at + 1:], start=header_at + 2):
        if not any(raw):
            continue

        def get(key: str, raw: list[str] = raw) -> str:
            i = columns.get(key)
            return raw[i] if i is not None and i < len(raw) else ""

        rows.append(CollectorRow(row=offset, username=get("username"), display_name=get("display_name"),
                                 password=get("password"), regions=split_list(get("regions")),
                                 forms=split_list(get("forms"))))
    if not rows:
        return [], [RowError(0, "", "The file has no collectors under its header row.")]
    if len(rows) > MAX_ROWS:
        return [], [RowError(0, "", "The file has more than {limit} rows. Split it into smaller files.",
                             {"limit": MAX_ROWS})]
    return rows, []


# ---------------------------------------------------------------- checking and creating

def check_rows(session: Session, project_id: int, rows: list[CollectorRow],
               actor: User | None = None) -> list[RowError]:
    """Every problem of every row (nothing is written); with an actor, regions must lie in its scope."""
    errors: list[RowError] = []
    forms = {f.xml_form_id for f in session.scalars(select(Form).where(Form.project_id == project_id))}
    names = [r.username.strip() for r in rows if r.username.strip()]
    taken: set[str] = set()
    if names:
        lowered = {n.lower() for n in names}
        taken = {u.lower() for u in session.scalars(select(User.username).where(func.lower(User.username).in_(
            lowered)))}
    first_row: dict[str, int] = {}
    for r in rows:
        name = r.username.strip()
        if not name:
            errors.append(RowError(r.row, "username", "The user name is missing."))
        elif len(name) > 150 or not user_service.USERNAME.fullmatch(name):
            errors.append(RowError(r.row, "username", "'{value}' cannot be used as a user name: use Latin letters, "
                                   "digits and . _ - @ only (for example pinyin), and put the full name in the "
                                   "display name.", {"value": name}))
        elif name.lower() in first_row:
            errors.append(RowError(r.row, "username", "The user name '{value}' is also in row {other}.",
                                   {"value": name, "other": first_row[name.lower()]}))
        elif name.lower() in taken:
            errors.append(RowError(r.row, "username", "A user named '{value}' exists already. Choose another name.",
                                   {"value": name}))
        if name:
            first_row.setdefault(name.lower(), r.row)
        if len(r.display_name) > 200:
            errors.append(RowError(r.row, "display_name", "The display name is longer than 200 characters."))
        if r.password and len(r.password) < 8:
            errors.append(RowError(r.row, "password", "The password is too short: use at least 8 characters."))
        for code in r.regions:
            problem = code_error(code)
            if problem:
                errors.append(RowError(r.row, "regions", problem, {"value": code}))
            elif actor is not None and not access.covers(actor, code):
                errors.append(RowError(r.row, "regions", "'{value}' lies outside your own regions; you may only give "
                                       "regions inside them.", {"value": code}))
        for form_id in r.forms:
            if form_id not in forms:
                errors.append(RowError(r.row, "forms", "There is no form '{value}' on this server.",
                                       {"value": form_id}))
    return errors


def create_collectors(session: Session, *, project_id: int, rows: list[CollectorRow], realm: str,
                      key: str) -> list[User]:
    """Create the collectors of rows (already checked), assign their forms and issue their tokens.

    An empty password gets a random one nobody knows: the phone is set up with the QR code.
    """
    forms = {f.xml_form_id: f for f in session.scalars(select(Form).where(Form.project_id == project_id))}
    created = []
    for r in rows:
        user = user_service.create_user(session, project_id=project_id, username=r.username, role="collector",
                                        password=r.password or secrets.token_urlsafe(24), realm=realm,
                                        regions=r.regions, display_name=r.display_name.strip())
        set_assignments(session, user, [forms[f] for f in r.forms])
        user_service.issue_token(session, user, key)
        created.append(user)
    return created


def list_collectors(session: Session, project_id: int, actor: User | None = None) -> list[User]:
    """The project's collectors; with an actor, only those it may manage (all their regions in its scope)."""
    users = list(session.scalars(select(User).where(User.project_id == project_id, User.role == "collector")
                                 .order_by(User.username)))
    return users if actor is None else [u for u in users if access.may_manage_user(actor, u)]


def get_collector(session: Session, project_id: int, username: str, actor: User | None = None) -> User:
    user = session.scalar(select(User).where(User.project_id == project_id, User.role == "collector",
                                             User.username == username))
    if user is None or (actor is not None and not access.may_manage_user(actor, user)):
        raise problems.NO_SUCH_COLLECTOR()
    return user


def set_assignments(session: Session, user: User, forms: list[Form]) -> None:
    """Exactly these forms are assigned (none: the collector sees every open form)."""
    keep = [f.id for f in forms]
    stale = delete(FormAssignment).where(FormAssignment.user_id == user.id)
    if keep:
        stale = stale.where(FormAssignment.form_id.not_in(keep))
    session.execute(stale)
    existing = set(session.scalars(select(FormAssignment.form_id).where(FormAssignment.user_id == user.id)))
    for form_id in keep:
        if form_id not in existing:
            session.add(FormAssignment(user_id=user.id, form_id=form_id))
    session.flush()


def assignments(session: Session, user_ids: list[int]) -> dict[int, list[str]]:
    """Assigned form ids per user."""
    out: dict[int, list[str]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    q = (select(FormAssignment.user_id, Form.xml_form_id).join(Form, Form.id == FormAssignment.form_id)
         .where(FormAssignment.user_id.in_(user_ids)).order_by(Form.xml_form_id))
    for uid, form_id in session.execute(q):
        out[uid].append(form_id)
    return out


def token_statuses(session: Session, user_ids: list[int], key: str) -> dict[int, TokenStatus]:
    """Whether each user has an active token (since when, and the token when it can be unsealed with the
    server's secret `key`), only revoked ones, or none."""
    out = {uid: TokenStatus("none") for uid in user_ids}
    if not user_ids:
        return out
    for tok in session.scalars(select(CollectorToken).where(CollectorToken.user_id.in_(user_ids))
                               .order_by(CollectorToken.id)):
        cur = out[tok.user_id]
        if tok.revoked_at is None:
            out[tok.user_id] = TokenStatus("active", tok.created_at, user_service.shown_token(tok, key))
        elif cur.state != "active":
            out[tok.user_id] = TokenStatus("revoked", tok.revoked_at)
    return out
