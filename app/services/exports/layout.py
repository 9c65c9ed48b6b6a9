"""A region's records stored together (PostgreSQL): `carefile export cluster`.

Records arrive day by day from every county, so the rows of one county's records — above all their
documents in submission_version (≈ 1.7 kB of JSON each for the shipped visit form) — lie one in ten or
fewer on the table's pages: exporting a county reads a page for each record (bench/scale: 246,926 records
scattered over a 10 GB table). This rewrites the three tables an export reads in the order of
(form, county, time received) — PostgreSQL's CLUSTER — so a county's records of a form fill consecutive
pages and are read in the order the export asks for them.

CLUSTER orders a table once: records that arrive later are appended in arrival order again, so run it
again from time to time (e.g. weekly, at night). It holds an exclusive lock on each table while it rewrites
it (no submission is accepted, no page reads it meanwhile: minutes for millions of records) and needs free
disk for a second copy of the largest table. The order keys are read from `submission` through a function
that is declared immutable only for the length of the command (an index must be immutable; the index and
the function are dropped again at the end). SQLite: nothing to do (the command says so).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine

# (table, the sort key of one of its rows from its own column) — the function bodies take the key from the
# record's submission: form, county (the first six digits of the region code), time received, id.
_KEY = ("SELECT s.form_id::text || ' ' || coalesce(substr(s.region_code, 1, 6), '') || ' ' "
        "|| to_char(s.created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || ' ' || lpad(s.id::text, 12, '0') "
        "FROM {schema}.submission s")
TABLES: list[tuple[str, str, str]] = [
    ("submission_version", "submission_id", _KEY + " WHERE s.id = $1"),
    ("submission_repeat_row", "version_id",
     _KEY + " JOIN {schema}.submission_version v ON v.submission_id = s.id WHERE v.id = $1"),
]


def cluster_by_region(engine: Engine, say: Callable[[str], None] = print) -> dict[str, float]:
    """CLUSTER the export's tables in (form, county, received) order; seconds per table."""
    took: dict[str, float] = {}
    if engine.dialect.name != "postgresql":
        say("Nothing to do: only PostgreSQL keeps a table in an order.")
        return took
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()  # submission has the key's columns itself (a plain expression index)
        index = f"{schema}.carefile_cluster_submission"
        try:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
            conn.exec_driver_sql(f"CREATE INDEX carefile_cluster_submission ON {schema}.submission "
                                 "(form_id, substr(region_code, 1, 6), created_at, id)")
            conn.exec_driver_sql(f"CLUSTER {schema}.submission USING carefile_cluster_submission")
        finally:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        # VACUUM as well: CLUSTER leaves the new table's visibility map empty, so every index-only scan (the
        # export's edit count over submission_version's submission_id) would read the table too until it runs.
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {schema}.submission")
        took["submission"] = time.perf_counter() - started
        say(f"submission: {took['submission']:.0f} s")
        for table, column, body in TABLES:
            started = time.perf_counter()
            fn, index = f"{schema}.carefile_cluster_key_{table}", f"carefile_cluster_{table}"
            conn.exec_driver_sql(f"CREATE OR REPLACE FUNCTION {fn}(integer) RETURNS text LANGUAGE sql IMMUTABLE "
                                 f"AS $body$ {body.format(schema=schema)} $body$")
            try:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {schema}.{index}")
                conn.exec_driver_sql(f"CREATE INDEX {index} ON {schema}.{table} ({fn}({column}))")
                conn.exec_driver_sql(f"CLUSTER {schema}.{table} USING {index}")
            finally:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {schema}.{index}")
                conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {fn}(integer)")
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {schema}.{table}")
            took[table] = time.perf_counter() - started
            say(f"{table}: {took[table]:.0f} s")
    return took


__all__ = ["cluster_by_region"]
