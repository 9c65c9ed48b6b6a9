"""A small OData $filter parser for the fields ODK Central supports (docs/odk-protocol.md, *Central's REST API
and OData*).

Grammar: expr := term (('and'|'or') term)* ; term := 'not' term | '(' expr ')' | comparison ;
comparison := operand op operand ; op := eq ne lt le gt ge ; operand := field | literal |
year(field) … second(field) | now(). Fields: __id, __system/submissionDate, __system/updatedAt,
__system/submitterId, __system/reviewState, __system/deletedAt ($root/Submissions/ prefix allowed).

Input from outside never reaches the database unchecked: the text and its nesting are bounded
(no RecursionError from 2,000 parentheses), dates must be real dates, numbers must fit 64 bits,
and both sides of a comparison must be of one type (a date with a date, text with text), so
PostgreSQL never sees `timestamp > integer`. A comparison of two literals (`null eq null`,
`1 lt 2`) is decided here. Every refusal is Central's 400.18 with the reason, or 501.5 for a
field this server does not filter on.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Float, String, bindparam, extract, false, literal, not_, or_, true
from sqlalchemy import and_ as and_clause
from sqlalchemy.ext.compiler import compiles

from app import problems
from app.errors import Problem

TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<name>[$A-Za-z_][\w/]*)|(?P<punct>[(),]))""", re.X)
DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?)")
OPS = {"eq", "ne", "lt", "le", "gt", "ge"}
FUNCS = {"year", "month", "day", "hour", "minute", "second"}
MAX_LENGTH = 4000  # characters of $filter text
MAX_TOKENS = 400
MAX_DEPTH = 32  # nested parentheses / not / function calls
MAX_INT = 2**63 - 1
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


class JsonValue(ColumnElement[Any]):
    """One answer inside a JSON column, typed for comparison (`$filter` on form fields, CareFile beyond
    Central): `kind` number → the value when it is a JSON number, else NULL (an unparsed answer such as
    'twelve' never reaches a cast, so PostgreSQL cannot fail on it); text → the value as text."""

    inherit_cache = True

    def __init__(self, column: Any, key: str, kind: str) -> None:
        self.column, self.key, self.kind = column, key, kind
        self.type = Float() if kind == "number" else String()


@compiles(JsonValue, "postgresql")
def _json_value_pg(element: JsonValue, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    key = compiler.process(literal(element.key), **kw)
    if element.kind == "number":
        return f"(CASE WHEN jsonb_typeof({col} -> {key}) = 'number' THEN ({col} ->> {key})::double precision END)"
    return f"(CASE WHEN jsonb_typeof({col} -> {key}) IN ('string', 'number') THEN {col} ->> {key} END)"


@compiles(JsonValue)
def _json_value_sqlite(element: JsonValue, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    path = compiler.process(literal('$."' + element.key.replace('"', '""') + '"'), **kw)
    if element.kind == "number":
        return f"(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') THEN json_extract({col}, {path}) END)"
    return f"(CASE WHEN json_type({col}, {path}) IN ('text', 'integer', 'real') THEN json_extract({col}, {path}) END)"


def unparseable(reason: str) -> Problem:
    """Central's 400.18."""
    return problems.ODATA_FILTER_UNPARSABLE(reason=reason)


@dataclass
class Tok:
    kind: str
    value: str


@dataclass(frozen=True)
class Operand:
    """One side of a comparison: a column or function (sql set) or a literal (value set); kind is
    datetime | int | number | str | bool | null."""

    kind: str
    sql: Any = None
    value: Any = None
    text: str = ""

    @property
    def literal(self) -> bool:
        return self.sql is None


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise unparseable(f"it is longer than {MAX_LENGTH} characters.")
    while pos < len(text):
        # dates must win over numbers: try the date alternative first
        m = DATE.match(text, pos)
        if m:
            out.append(Tok("date", m.group(1)))
            pos = m.end()
        else:
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise unparseable(f"cannot read it near {text[pos:pos + 20]!r}.")
            kind = m.lastgroup or ""
            out.append(Tok(kind, m.group(kind)))
            pos = m.end()
        if len(out) > MAX_TOKENS:
            raise unparseable(f"it has more than {MAX_TOKENS} parts; split the query.")
    return out


def _moment(text: str) -> datetime:
    """A date or date-time literal; a date is midnight UTC; no zone means UTC."""
    value = text.strip().replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(value if "T" in value else value + "T00:00:00+00:00")
    except ValueError as err:
        raise unparseable(f"'{text[:40]}' is not a real date or time (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ).") from err
    if not 1 < at.year < 9999:
        raise problems.ODATA_DATE_OUT_OF_RANGE(text=text[:40])
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _kind_of(column: Any) -> str:
    if isinstance(column, JsonValue):
        return {"number": "number", "date": "datestr"}.get(column.kind, "str")
    sql_type = column.type
    sql_type = getattr(sql_type, "impl", sql_type)  # a TypeDecorator (UTCDateTime) says what it stores
    try:
        py = sql_type.python_type
    except (NotImplementedError, AttributeError):
        return "str"
    if issubclass(py, datetime | date):
        return "datetime"
    if issubclass(py, bool):
        return "bool"
    if issubclass(py, int):
        return "int"
    if issubclass(py, float):
        return "number"
    return "str"


def _coerce(lit: Operand, kind: str, other: Operand) -> Any:
    """The literal's value as the other side's type, or 400.18 saying what to write instead."""
    if lit.kind == kind or (kind == "number" and lit.kind == "int"):
        return lit.value
    if kind == "int" and lit.kind == "number" and float(lit.value).is_integer():
        return int(lit.value)
    if kind == "int" and lit.kind == "number":
        return lit.value
    if kind == "datetime" and lit.kind == "str":
        return _moment(lit.value)
    if kind == "datestr" and lit.kind in ("datetime", "str"):
        # a date or time question keeps its answer as written (2026-03-01, 2026-03-01T10:00:00.000+08:00):
        # compared as text with the literal as written, which orders ISO dates correctly
        return lit.value if lit.kind == "str" else lit.text
    if kind == "int" and lit.kind == "str" and re.fullmatch(r"-?\d{1,19}", lit.value) \
            and abs(int(lit.value)) <= MAX_INT:
        return int(lit.value)  # Central shows submitterId as a string
    hint = {"datetime": "a date such as 2026-03-01", "datestr": "a date such as 2026-03-01",
            "int": "a whole number", "number": "a number",
            "str": "text in single quotes", "bool": "true or false"}[kind]
    raise unparseable(f"{other.text or 'the value'} is compared with {lit.text!r}; write {hint}.")


def _comparison(left: Operand, op: str, right: Operand) -> ColumnElement[bool]:
    if left.kind == "null" or right.kind == "null":
        if op not in ("eq", "ne"):
            raise unparseable("null can only be compared with eq or ne.")
        other = right if left.kind == "null" else left
        if other.kind == "null" or other.literal:
            same = other.kind == "null"
            return true() if same == (op == "eq") else false()
        return other.sql.is_(None) if op == "eq" else other.sql.is_not(None)
    if left.literal and right.literal:
        kind = left.kind if left.kind != "int" else right.kind
        a, b = _coerce(left, kind, right), _coerce(right, kind, left)
        try:
            return true() if _COMPARE[op](a, b) else false()
        except TypeError as err:
            raise unparseable(f"{left.text!r} and {right.text!r} cannot be compared.") from err
    if left.literal:  # keep the column on the left: `5 lt x` is `x gt 5`
        flipped = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}.get(op, op)
        return _comparison(right, flipped, left)
    if right.literal:
        value = _coerce(right, left.kind, left)
        if isinstance(value, int) and not isinstance(value, bool):
            # as BIGINT: an INTEGER column compared with 2^31 or more must not make PostgreSQL refuse the value
            value = bindparam(None, value, type_=BigInteger())
        elif isinstance(value, float):
            value = bindparam(None, value, type_=Float())  # not rounded to the INTEGER column's type
        result: ColumnElement[bool] = _COMPARE[op](left.sql, value)
        return result
    if left.kind != right.kind and {left.kind, right.kind} != {"int", "number"}:
        raise unparseable(f"{left.text} and {right.text} are of different types and cannot be compared.")
    result = _COMPARE[op](left.sql, right.sql)
    return result


def parse_filter(text: str, fields: dict[str, Any]) -> ColumnElement[bool]:
    """Compile $filter text to a SQL condition; fields maps OData names to columns."""
    toks = tokenize(text)
    pos = 0

    def peek() -> Tok | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> Tok:
        nonlocal pos
        if pos >= len(toks):
            raise unparseable("it ends too early.")
        pos += 1
        return toks[pos - 1]

    def expect(value: str) -> None:
        tok = take()
        if tok.value != value:
            raise unparseable(f"expected '{value}', found '{tok.value[:40]}'.")

    def deeper(depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise unparseable(f"it is nested more than {MAX_DEPTH} levels deep.")
        return depth + 1

    def operand(depth: int) -> Operand:
        tok = take()
        if tok.kind == "str":
            return Operand("str", value=tok.value[1:-1].replace("''", "'"), text=tok.value[:40])
        if tok.kind == "num":
            if "." in tok.value:
                return Operand("number", value=float(tok.value), text=tok.value[:40])
            if len(tok.value.lstrip("-")) > 19 or abs(int(tok.value)) > MAX_INT:
                raise problems.ODATA_INT_OUT_OF_RANGE(value=tok.value[:40])
            return Operand("int", value=int(tok.value), text=tok.value)
        if tok.kind == "date":
            return Operand("datetime", value=_moment(tok.value), text=tok.value)
        if tok.kind == "name":
            name = tok.value.removeprefix("$root/Submissions/")
            if name == "null":
                return Operand("null", text="null")
            if name in ("true", "false"):
                return Operand("bool", value=name == "true", text=name)
            if name in FUNCS:
                expect("(")
                arg = operand(deeper(depth))
                expect(")")
                if arg.literal or arg.kind != "datetime":
                    raise unparseable(f"{name}() takes a date field such as __system/submissionDate.")
                return Operand("int", sql=extract(name, arg.sql), text=f"{name}({arg.text})")
            if name == "now":
                expect("(")
                expect(")")
                return Operand("datetime", value=datetime.now(UTC), text="now()")
            if name not in fields:
                raise problems.ODATA_FILTER_FIELD_UNSUPPORTED(name=name[:60], choices=', '.join(sorted(fields)))
            return Operand(_kind_of(fields[name]), sql=fields[name], text=name)
        raise unparseable(f"unexpected '{tok.value[:40]}'.")

    def comparison(depth: int) -> ColumnElement[bool]:
        left = operand(depth)
        op = take().value
        if op not in OPS:
            raise unparseable(f"unknown operator '{op[:40]}'; use eq, ne, lt, le, gt or ge.")
        return _comparison(left, op, operand(depth))

    def term(depth: int) -> ColumnElement[bool]:
        tok = peek()
        if tok is not None and tok.value == "not":
            take()
            return not_(term(deeper(depth)))
        if tok is not None and tok.value == "(":
            take()
            inner = expr(deeper(depth))
            expect(")")
            return inner
        return comparison(depth)

    def expr(depth: int) -> ColumnElement[bool]:
        node = term(depth)
        while (tok := peek()) is not None and tok.value in ("and", "or"):
            take()
            right = term(depth)
            node = and_clause(node, right) if tok.value == "and" else or_(node, right)
        return node

    result = expr(0)
    if pos != len(toks):
        raise unparseable(f"unexpected '{toks[pos].value[:40]}'.")
    return result
