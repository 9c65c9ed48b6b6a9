"""Statements compiled once and run on the driver's cursor: the inserts of the submission hot path.

SQLAlchemy's Core, for each statement it runs, looks the compiled form up in its cache, builds an execution
context, fires the engine's events, processes each parameter and sets up a result: per statement more CPU
than SQLite's own work (docs/benchmarks.md, *Ingest*). `Prepared` does what Core would do for a plain INSERT —
the same SQL, compiled by the connection's own dialect, and the same type processing of every parameter
(the dialect's bind processors: JSON serialised as Core serialises it, datetimes as SQLite stores them) — and
hands it to the DBAPI cursor of the connection the session already holds, inside its transaction. So the rows
are the ones Core writes; tests/app/submissions/test_ingest_paths.py compares them with the ORM's row by row.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement


class Prepared:
    """One statement (an INSERT of given columns, or a text() with typed bind parameters), compiled once per
    dialect. `run` executes it with one parameter dict, `run_many` with several (executemany)."""

    def __init__(self, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[int, tuple[str, Callable[[dict[str, Any]], Any]]] = {}
        self._results: dict[int, tuple[list[str], list[Callable[[Any], Any] | None]]] = {}

    def _for(self, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], Any]]:
        found = self._compiled.get(id(dialect))
        if found is not None:
            return found
        kw = {"column_keys": self.column_keys} if self.column_keys is not None else {}
        compiled = self.statement.compile(dialect=dialect, **kw)
        # A SELECT's columns: their names and the dialect's result processors (SQLite's datetimes and booleans).
        self._results[id(dialect)] = (
            [col.keyname for col in compiled._result_columns],  # noqa: SLF001
            [col.type._cached_result_processor(dialect, None) for col in compiled._result_columns])  # noqa: SLF001
        procs = dict(compiled._bind_processors)  # noqa: SLF001 - the processors Core itself applies
        names = list(compiled.binds)
        # Values the statement carries itself (a LIMIT 1): given unless the caller names them.
        fixed = {n: b.value for n, b in compiled.binds.items() if not b.required and b.value is not None}
        order = list(compiled.positiontup or []) if dialect.paramstyle == "qmark" else names
        steps = [(name, procs.get(name)) for name in order]

        def value(values: dict[str, Any], name: str) -> Any:
            return values[name] if name in values or name not in fixed else fixed[name]

        if dialect.paramstyle == "qmark":
            def build(values: dict[str, Any]) -> Any:
                return tuple(value(values, n) if p is None else p(value(values, n)) for n, p in steps)
        elif dialect.paramstyle in ("pyformat", "named"):
            def build(values: dict[str, Any]) -> Any:
                return {n: value(values, n) if p is None else p(value(values, n)) for n, p in steps}
        else:  # pragma: no cover - the two drivers CareFile supports use qmark (sqlite3) and pyformat (psycopg)
            raise NotImplementedError(f"paramstyle {dialect.paramstyle}")
        found = (compiled.string, build)
        self._compiled[id(dialect)] = found
        return found

    def run(self, conn: Connection | RawConnection, values: dict[str, Any]) -> Any:
        """Execute with one row of values in the connection's transaction; returns the DBAPI cursor (its
        `lastrowid`, or the rows of a RETURNING)."""
        sql, build = self._for(conn.dialect)
        params = build(values)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, params)
        except conn.dialect.loaded_dbapi.Error as err:
            _raise_wrapped(conn, cursor, sql, params, err)
        return cursor

    def rows(self, conn: Connection | RawConnection, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """A SELECT's rows, each value processed as Core's result would give it."""
        cursor = self.run(conn, values)
        try:
            raw = cursor.fetchall()
        finally:
            cursor.close()
        procs = self._results[id(conn.dialect)][1]
        if not any(procs):
            return [tuple(r) for r in raw]
        return [tuple(v if p is None or v is None else p(v) for v, p in zip(r, procs, strict=True)) for r in raw]

    def keys(self, conn: Connection | RawConnection) -> list[str]:
        """The names of a SELECT's columns (labels), in order."""
        self._for(conn.dialect)
        return self._results[id(conn.dialect)][0]

    def run_many(self, conn: Connection | RawConnection, rows: list[dict[str, Any]]) -> None:
        sql, build = self._for(conn.dialect)
        params = [build(r) for r in rows]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, params)
        except conn.dialect.loaded_dbapi.Error as err:
            _raise_wrapped(conn, cursor, sql, params, err)
        finally:
            cursor.close()


class RawConnection:
    """A pooled DBAPI connection without a SQLAlchemy Connection around it (app.db.Database.raw_reader and
    raw_write): what `Prepared` needs — the dialect, the pooled connection's cursor, invalidation."""

    def __init__(self, pooled: Any, dialect: Dialect) -> None:
        self.connection = pooled
        self.dialect = dialect

    def invalidate(self, err: BaseException | None = None) -> None:
        self.connection.invalidate(err)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a driver call (BEGIN, COMMIT …), its error raised as Core raises it."""
        try:
            return fn()
        except self.dialect.loaded_dbapi.Error as err:
            _raise_wrapped(self, None, what, None, err)


def _raise_wrapped(conn: Connection | RawConnection, cursor: Any, sql: str, params: Any, err: Exception) -> None:
    """The driver's error as Core raises it (IntegrityError, OperationalError …: the callers' retries and the
    503 of app/faults.py look for those), the connection invalidated when the error says it is gone."""
    dialect = conn.dialect
    gone = dialect.is_disconnect(err, conn.connection.dbapi_connection, cursor)
    if gone:
        conn.invalidate(err)
    raise DBAPIError.instance(sql, params, err, dialect.loaded_dbapi.Error, dialect=dialect,
                              connection_invalidated=gone) from err
