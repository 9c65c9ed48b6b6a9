"""A small OData $filter parser for the fields ODK Central supports (protocol.md §8.4).

Grammar: expr := term (('and'|'or') term)* ; term := 'not' term | '(' expr ')' | comparison ;
comparison := operand op operand ; op := eq ne lt le gt ge ; operand := field | literal |
year(field) … second(field) | now(). Fields: __id, __system/submissionDate, __system/updatedAt,
__system/submitterId, __system/reviewState, __system/deletedAt ($root/Submissions/ prefix allowed).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, extract, literal, not_, or_

from app.errors import Problem

TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<name>[$A-Za-z_][\w/]*)|(?P<punct>[(),]))""", re.X)
DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?)")
OPS = {"eq", "ne", "lt", "le", "gt", "ge"}
FUNCS = {"year", "month", "day", "hour", "minute", "second"}


@dataclass
class Tok:
    kind: str
    value: str


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        # dates must win over numbers: try the date alternative first
        m = DATE.match(text, pos)
        if m:
            out.append(Tok("date", m.group(1)))
            pos = m.end()
            continue
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Problem(400, "400.70", f"Could not read the $filter near: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return out


def parse_filter(text: str, fields: dict[str, Any]) -> ColumnElement[bool]:
    """Compile $filter text to a SQL condition; fields maps OData names to columns."""
    toks = tokenize(text)
    pos = 0

    def peek() -> Tok | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> Tok:
        nonlocal pos
        if pos >= len(toks):
            raise Problem(400, "400.70", "The $filter ends too early.")
        pos += 1
        return toks[pos - 1]

    def operand() -> Any:
        tok = take()
        if tok.kind == "str":
            return literal(tok.value[1:-1].replace("''", "'"))
        if tok.kind == "num":
            return literal(float(tok.value) if "." in tok.value else int(tok.value))
        if tok.kind == "date":
            value = tok.value.replace("Z", "+00:00")
            dt = datetime.fromisoformat(value if "T" in value else value + "T00:00:00+00:00")
            return literal(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
        if tok.kind == "name":
            name = tok.value.removeprefix("$root/Submissions/")
            if name in ("null",):
                return None
            if name in FUNCS:
                expect("(")
                arg = operand()
                expect(")")
                return extract(name, arg)
            if name == "now":
                expect("(")
                expect(")")
                return literal(datetime.now(UTC))
            if name not in fields:
                raise Problem(501, "501.5", f"The $filter field '{name}' is not supported. Use one of: "
                              f"{', '.join(sorted(fields))}.")
            return fields[name]
        raise Problem(400, "400.70", f"Unexpected '{tok.value}' in $filter.")

    def expect(value: str) -> None:
        tok = take()
        if tok.value != value:
            raise Problem(400, "400.70", f"Expected '{value}' in $filter, found '{tok.value}'.")

    def comparison() -> ColumnElement[bool]:
        left = operand()
        op = take().value
        if op not in OPS:
            raise Problem(400, "400.70", f"Unknown operator '{op}' in $filter.")
        right = operand()
        apply: dict[str, Callable[[Any, Any], Any]] = {
            "eq": lambda a, b: a.is_(None) if b is None else a == b,
            "ne": lambda a, b: a.is_not(None) if b is None else a != b,
            "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
        }
        result: ColumnElement[bool] = apply[op](left, right)
        return result

    def term() -> ColumnElement[bool]:
        tok = peek()
        if tok is not None and tok.value == "not":
            take()
            return not_(term())
        if tok is not None and tok.value == "(":
            take()
            inner = expr()
            expect(")")
            return inner
        return comparison()

    def expr() -> ColumnElement[bool]:
        node = term()
        while (tok := peek()) is not None and tok.value in ("and", "or"):
            take()
            right = term()
            node = and_(node, right) if tok.value == "and" else or_(node, right)
        return node

    result = expr()
    if pos != len(toks):
        raise Problem(400, "400.70", f"Unexpected '{toks[pos].value}' in $filter.")
    return result
