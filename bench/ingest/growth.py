#!/usr/bin/env python3
"""Does a submission cost more CPU when more submissions are already stored? (issue 21, item 2)

    nice -n 10 .venv/bin/python bench/ingest/growth.py                         # both backends, 0 / 30k / 300k stored
    nice -n 10 .venv/bin/python bench/ingest/growth.py --backend sqlite --sizes 0,30000
    nice -n 10 .venv/bin/python bench/ingest/growth.py --entity --sizes 0,30000 # child registrations
    nice -n 10 valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/ingest/growth.py --instructions

The same form, token URL, bodies and in-process WSGI method as bench/ingest/cpu_profile.py: each request's
environ is built before the clock starts and handed to the app's real WSGI stack (app/lean.py included). For
each backend (SQLite in a temporary data folder; PostgreSQL started with tests/support/pgserver and restarted
durable as bench/ingest/run.py does) it publishes the bench form, sends a warm-up, then for each size: fills
the tables up to that many stored submissions, and measures --n new submissions.

The stored submissions are copies of one real one (its submission, submission_version with data and XML,
repeat rows and attachment rows), with new ids, random instanceIDs (so the unique indexes grow as with
Collect's uuids), created/received times spread over the past year and village region codes; written with
bulk SQL (PostgreSQL: one INSERT … SELECT over generate_series; SQLite: executemany in one transaction, in a
child process), followed by what real ingest leaves behind: PostgreSQL VACUUM ANALYZE (autovacuum's work) and a
CHECKPOINT; SQLite a passive WAL checkpoint. With --entity / --entity-update the stored children are made by
real requests instead (a child process running the app), as entity rows have no simple copy.

Reported per size: CPU ms per submission of this process (time.process_time) and of the PostgreSQL server
(every server process, from /proc), statements per submission, and what the database touched per submission:
SQLite read/write system calls of this process (/proc/self/io: pages read past SQLite's page cache, WAL
frames written); PostgreSQL buffers hit+read per table and index (pg_statio_user_*), WAL records, full-page
images and bytes (pg_stat_wal). --plans prints the query plans of the submission's SELECTs (SQLite: EXPLAIN
QUERY PLAN; PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)). --instructions: instructions per submission of this process
under callgrind (load-independent; the PostgreSQL server is not counted, see its CPU ms).
"""
from __future__ import annotations

import argparse
import glob
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench.ingest.run import (  # noqa: E402
    BOUNDARY,
    PASSWORD,
    USER,
    carefile,
    form_md,
    multipart,
    pg_cpu,
    restart_durable,
    submission_xml,
)

DB_NAME = "carefile_growth"
YEAR = 365 * 24 * 3600
# Village codes (12 digits) the stored records are spread over.
VILLAGES = [f"5401{c:02d}{v:06d}" for c in range(1, 9) for v in (2201, 2202, 3105, 4110, 5001)]
TABLES = ("submission", "submission_version", "submission_repeat_row", "submission_attachment")


# ---- filling the tables ------------------------------------------------------------------------------------

def fake_uuid(h: str) -> str:
    return f"uuid:{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def fill_sqlite(path: str, template: int | None, count: int, done: int, salt: str) -> None:
    """`count` copies of submission `template` (None: the newest; ids after the largest), in one transaction
    (executemany)."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.row_factory = sqlite3.Row
    if template is None:
        template = conn.execute("SELECT max(id) FROM submission").fetchone()[0]
    cols = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in TABLES}
    sub = dict(conn.execute("SELECT * FROM submission WHERE id = ?", (template,)).fetchone())
    ver = dict(conn.execute("SELECT * FROM submission_version WHERE id = ?", (sub["current_version_id"],)).fetchone())
    rows = [dict(r) for r in conn.execute("SELECT * FROM submission_repeat_row WHERE version_id = ? ORDER BY id",
                                          (ver["id"],))]
    atts = [dict(r) for r in conn.execute("SELECT * FROM submission_attachment WHERE version_id = ?", (ver["id"],))]
    assert all(r["parent_id"] is None for r in rows), "nested repeats are not copied"
    conn.execute("BEGIN IMMEDIATE")
    s0 = conn.execute("SELECT coalesce(max(id), 0) FROM submission").fetchone()[0]
    v0 = conn.execute("SELECT coalesce(max(id), 0) FROM submission_version").fetchone()[0]
    r0 = conn.execute("SELECT coalesce(max(id), 0) FROM submission_repeat_row").fetchone()[0]
    a0 = conn.execute("SELECT coalesce(max(id), 0) FROM submission_attachment").fetchone()[0]
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=YEAR)
    old_iid = ver["instance_id"].encode()
    subs, vers, reps, attr = [], [], [], []
    for g in range(1, count + 1):
        iid = fake_uuid(hashlib.md5(f"{salt}/{done + g}".encode()).hexdigest())
        at = (start + timedelta(seconds=(done + g) * 100)).isoformat(sep=" ")
        sid, vid = s0 + g, v0 + g
        subs.append({**sub, "id": sid, "instance_id": iid, "created_at": at, "updated_at": at,
                     "region_code": VILLAGES[g % len(VILLAGES)], "current_version_id": vid})
        vers.append({**ver, "id": vid, "submission_id": sid, "instance_id": iid, "received_at": at,
                     "xml": ver["xml"].replace(old_iid, iid.encode())})
        for k, r in enumerate(rows):
            reps.append({**r, "id": r0 + (g - 1) * len(rows) + k + 1, "version_id": vid})
        for k, a in enumerate(atts):
            attr.append({**a, "id": a0 + (g - 1) * len(atts) + k + 1, "version_id": vid,
                         "received_at": at if a["received_at"] else None})
    for table, items in (("submission", subs), ("submission_version", vers), ("submission_repeat_row", reps),
                         ("submission_attachment", attr)):
        if items:
            names = cols[table]
            conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [tuple(i[n] for n in names) for i in items])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.close()


def fill_postgres(dsn: str, template: int | None, count: int, done: int, salt: str) -> None:
    """`count` copies of submission `template` (None: the newest) in one INSERT … SELECT over generate_series,
    then what autovacuum and the checkpointer would have done (VACUUM ANALYZE, CHECKPOINT)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        if template is None:
            template = c.execute("SELECT max(id) FROM submission").fetchone()[0]
        cols = {t: [r[0] for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (t,))] for t in TABLES}
        vt = c.execute("SELECT current_version_id FROM submission WHERE id = %s", (template,)).fetchone()[0]
        nrows = c.execute("SELECT count(*) FROM submission_repeat_row WHERE version_id = %s", (vt,)).fetchone()[0]
        natts = c.execute("SELECT count(*) FROM submission_attachment WHERE version_id = %s", (vt,)).fetchone()[0]
        assert not c.execute("SELECT 1 FROM submission_repeat_row WHERE version_id = %s AND parent_id IS NOT NULL",
                             (vt,)).fetchone(), "nested repeats are not copied"
        s0 = c.execute("SELECT coalesce(max(id), 0) FROM submission").fetchone()[0]
        v0 = c.execute("SELECT coalesce(max(id), 0) FROM submission_version").fetchone()[0]
        r0 = c.execute("SELECT coalesce(max(id), 0) FROM submission_repeat_row").fetchone()[0]
        a0 = c.execute("SELECT coalesce(max(id), 0) FROM submission_attachment").fetchone()[0]
        iid = ("'uuid:' || substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' "
               "|| substr(h, 18, 3) || '-' || substr(h, 21, 12)")
        villages = "ARRAY[" + ", ".join(f"'{v}'" for v in VILLAGES) + "]"
        over = {
            "submission": {"id": f"{s0} + g", "instance_id": "iid", "created_at": "at", "updated_at": "at",
                           "region_code": f"({villages})[1 + g % {len(VILLAGES)}]",
                           "current_version_id": f"{v0} + g"},
            "submission_version": {"id": f"{v0} + g", "submission_id": f"{s0} + g", "instance_id": "iid",
                                   "received_at": "at", "xml": "convert_to(replace(convert_from(t.xml, 'UTF8'), "
                                                               "t.instance_id, iid), 'UTF8')"},
            "submission_repeat_row": {"id": f"{r0} + (g - 1) * {nrows} + t.rn", "version_id": f"{v0} + g"},
            "submission_attachment": {"id": f"{a0} + (g - 1) * {max(natts, 1)} + t.rn", "version_id": f"{v0} + g",
                                      "received_at": "CASE WHEN t.received_at IS NULL THEN NULL ELSE at END"},
        }

        def select(table: str) -> str:
            return ", ".join(over[table].get(col, f"t.{col}") for col in cols[table])

        def names(table: str) -> str:
            return ", ".join(f'"{col}"' for col in cols[table])

        c.execute(f"""
            WITH g AS (SELECT g, {iid} AS iid,
                              now() - interval '{YEAR} seconds' + interval '100 seconds' * ({done} + g) AS at
                       FROM (SELECT g, md5('{salt}/' || ({done} + g)) AS h FROM generate_series(1, {count}) g) x),
            s AS (INSERT INTO submission ({names('submission')})
                  SELECT {select('submission')} FROM g, submission t WHERE t.id = {template}),
            v AS (INSERT INTO submission_version ({names('submission_version')})
                  SELECT {select('submission_version')} FROM g, submission_version t WHERE t.id = {vt}),
            r AS (INSERT INTO submission_repeat_row ({names('submission_repeat_row')})
                  SELECT {select('submission_repeat_row')} FROM g,
                         (SELECT *, row_number() OVER (ORDER BY id) AS rn FROM submission_repeat_row
                          WHERE version_id = {vt}) t),
            a AS (INSERT INTO submission_attachment ({names('submission_attachment')})
                  SELECT {select('submission_attachment')} FROM g,
                         (SELECT *, row_number() OVER (ORDER BY id) AS rn FROM submission_attachment
                          WHERE version_id = {vt}) t)
            SELECT 1""")
        for t in TABLES:
            c.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
        c.execute("VACUUM ANALYZE")
        c.execute("CHECKPOINT")


def fill_real(kind: str, count: int, first: int, run_id: str) -> None:
    """Child process: `count` real submissions through the app (registrations of children for the entity runs),
    in batches of 1,000."""
    app, path = _app()
    run = _runner(app)
    for start in range(0, count, 1000):
        run([_environ(path, kind=kind, i=first + i, run_id=run_id) for i in range(start, min(count, start + 1000))])


# ---- requests --------------------------------------------------------------------------------------------

def _app() -> tuple[Any, str]:
    from app import create_app

    return create_app(), os.environ["GROWTH_SUBMIT_PATH"]


def _environ(path: str, *, kind: str, i: int, run_id: str) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    from tests.support.entity_forms import register_xml, update_xml

    iid = f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{run_id}/{kind}/{i}')}"
    child = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/child/{i}"))
    if kind == "register":
        xml = register_xml(iid, child, f"Child {i}", VILLAGES[i % len(VILLAGES)])
    elif kind == "update":
        xml = update_xml(iid, child, base=1, status="watch", note=f"visit of child {i}")
    else:
        xml = submission_xml(iid, None, i)
    b = EnvironBuilder(path=path, method="POST", data=b"".join(multipart(xml, None)),
                       headers={"X-OpenRosa-Version": "1.0",
                                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                "User-Agent": "carefile-bench/1 org.odk.collect.android/v2024.2.0"})
    env = b.get_environ()
    env["REMOTE_ADDR"] = "127.0.0.1"
    return env


def _runner(app: Any) -> Any:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        statuses.append(status)

    def run(environs: list[dict[str, Any]]) -> list[str]:
        del statuses[:]
        for e in environs:
            for _ in app(e, start_response):
                pass
        bad = [s for s in statuses if not s.startswith("201")]
        if bad:
            raise RuntimeError(f"not 201: {sorted(set(bad))}")
        return statuses

    return run


# ---- measuring --------------------------------------------------------------------------------------------

def proc_io() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        k, v = line.split(":")
        out[k] = int(v)
    return out


def pg_stats(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        out = {}
        for rel, hit, read in c.execute(
                "SELECT relname, coalesce(heap_blks_hit, 0) + coalesce(toast_blks_hit, 0), "
                "coalesce(heap_blks_read, 0) + coalesce(toast_blks_read, 0) FROM pg_statio_user_tables"):
            out[f"heap {rel}"] = hit + read
        for idx, hit, read in c.execute("SELECT indexrelname, idx_blks_hit, idx_blks_read FROM pg_statio_user_indexes"):
            out[f"index {idx}"] = hit + read
        rec, fpi, nbytes = c.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
        out["wal records"], out["wal fpi"], out["wal bytes"] = rec, fpi, int(nbytes)
        return out


def callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def callgrind_total() -> int:
    """Dump the counters (which zeroes them) and return the dump's instruction total."""
    before = set(glob.glob(f"callgrind.out.{os.getpid()}*"))
    callgrind("--dump")
    new = sorted(set(glob.glob(f"callgrind.out.{os.getpid()}*")) - before, key=os.path.getmtime)
    for line in Path(new[-1]).read_text().splitlines():
        if line.startswith("totals:"):
            total = int(line.split()[1])
            break
    else:
        raise RuntimeError("no totals in the callgrind dump")
    for f in new:
        os.unlink(f)
    return total


@contextmanager
def statements(db: Any) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the app sends to the database in the block, with its parameters, at the driver (the
    submission path runs some on the DBAPI cursor, app/prepared.py, past SQLAlchemy's events). SQLite: the
    connections' trace callback (statements with their values inlined, parameters None); psycopg: its
    cursor's execute/executemany."""
    seen: list[tuple[str, Any]] = []
    db.dispose()  # new connections, so each gets the callback
    if db.is_sqlite:
        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_trace_callback(lambda sql: seen.append((sql, None)))

        event.listen(db.engine, "connect", on_connect)
        try:
            yield seen
        finally:
            event.remove(db.engine, "connect", on_connect)
            db.dispose()
        return
    import psycopg

    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def traced(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        seen.append((str(query), params))
        return execute(self, query, params, **kw)

    def traced_many(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        seen.append((str(query), None))
        return executemany(self, query, params_seq, **kw)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = traced, traced_many  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany  # type: ignore[method-assign]


def plans(app: Any, run: Any, path: str, kind: str, i: int, run_id: str, backend: str) -> list[str]:
    """The query plans of the SELECTs one submission runs (run again, with the parameters it used)."""
    db = app.extensions["carefile"].db
    with statements(db) as seen:
        run([_environ(path, kind=kind, i=i, run_id=run_id)])
    out = []
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for statement, params in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            flat = " ".join(statement.split())
            cur = raw.cursor()
            if backend == "sqlite":
                rows = cur.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
                out.append(f"{flat[:160]}\n      " + "\n      ".join(str(r[-1]) for r in rows))
            else:
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {statement}", params)
                out.append(f"{flat[:160]}\n      " + "\n      ".join(r[0] for r in cur.fetchall()))
                raw.rollback()
    return out


def in_processes(db: Any, run: Any, envs: list[dict[str, Any]], procs: int) -> tuple[float, float, int, int]:
    """The requests split over `procs` forked processes running at the same time, like the sync workers of a
    server (each sees the others' commits: SQLite then drops its page cache at the next transaction). Returns
    their CPU seconds, the wall time, and their read and write system calls."""
    db.dispose()  # each process opens its own connections
    readers = []
    w0 = time.perf_counter()
    for k in range(procs):
        r, w = os.pipe()
        if os.fork() == 0:  # the child: its share, then its counters through the pipe
            status = 1
            try:
                os.close(r)
                io0, c0 = proc_io(), time.process_time()
                run(envs[k::procs])
                io1 = proc_io()
                os.write(w, f"{time.process_time() - c0} {io1['syscr'] - io0['syscr']} "
                            f"{io1['syscw'] - io0['syscw']}".encode())
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        readers.append(r)
    cpu, syscr, syscw = 0.0, 0, 0
    for r in readers:
        got = b""
        while chunk := os.read(r, 1024):
            got += chunk
        os.close(r)
        if not got:
            raise RuntimeError("a measuring process failed (see above)")
        c, rd, wr = got.split()
        cpu, syscr, syscw = cpu + float(c), syscr + int(rd), syscw + int(wr)
    for _ in readers:
        os.wait()
    return cpu, time.perf_counter() - w0, syscr, syscw


def measure(args: argparse.Namespace, app: Any, run: Any, path: str, kind: str, first: int, run_id: str,
            backend: str, dsn: str | None, pg: Any) -> dict[str, Any]:
    db = app.extensions["carefile"].db
    n = args.n
    envs = [_environ(path, kind=kind, i=first + i, run_id=run_id) for i in range(n)]
    res: dict[str, Any] = {}
    if dsn is not None:
        db.dispose()  # the backends' statistics are flushed when they end
        time.sleep(1.0)
        stats0 = pg_stats(dsn)
    io0 = proc_io()
    if args.instructions:
        callgrind("--zero")
        callgrind("--instr=on")
    pg0 = pg_cpu(pg)
    if args.procs > 1:
        cpu, wall, syscr, syscw = in_processes(db, run, envs, args.procs)
    else:
        c0, w0 = time.process_time(), time.perf_counter()
        run(envs)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        io1 = proc_io()
        syscr, syscw = io1["syscr"] - io0["syscr"], io1["syscw"] - io0["syscw"]
    pgc = pg_cpu(pg) - pg0
    if args.instructions:
        callgrind("--instr=off")
        res["instructions"] = callgrind_total() / n
    res.update(cpu_ms=cpu / n * 1000, wall_ms=wall / n * 1000, pg_ms=pgc / n * 1000,
               syscr=syscr / n, syscw=syscw / n)
    if dsn is not None:
        db.dispose()
        time.sleep(1.0)
        stats1 = pg_stats(dsn)
        res["touched"] = {k: (stats1.get(k, 0) - stats0.get(k, 0)) / n for k in stats1
                          if stats1.get(k, 0) != stats0.get(k, 0)}
    k = 20
    with statements(db) as seen:
        run([_environ(path, kind=kind, i=first + n + i, run_id=run_id) for i in range(k)])
    res["statements"] = len(seen) / k
    if args.plans:
        res["plans"] = plans(app, run, path, kind, first + n + k, run_id, backend)
    return res


def stored(backend: str, dsn: str | None, dbfile: Path) -> int:
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn) as c:
            return int(c.execute("SELECT count(*) FROM submission").fetchone()[0])
    with sqlite3.connect(dbfile) as c:
        return int(c.execute("SELECT count(*) FROM submission").fetchone()[0])


def bench_backend(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="carefile-growth-"))
    forms_dir = tmp / "xlsforms"
    forms_dir.mkdir()
    (forms_dir / "bench_ingest.md").write_text(form_md())
    from tests.support.entity_forms import REGISTER_MD, UPDATE_MD

    (forms_dir / "register.md").write_text(REGISTER_MD)
    (forms_dir / "followup.md").write_text(UPDATE_MD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
    env.update({"CAREFILE_DATA_DIR": str(tmp / "data"), "CAREFILE_XLSFORMS_DIR": str(forms_dir),
                "CAREFILE_ODK_VALIDATE": "off", "PYTHONPATH": str(ROOT)})
    pg = None
    dsn = None
    dbfile = tmp / "data" / "carefile.db"
    out: list[dict[str, Any]] = []
    try:
        if backend == "postgresql":
            from tests.support.pgserver import start_postgres

            pg = start_postgres()
            if args.pg_fsync == "on":  # durable, as bench/ingest/run.py runs it (the fixture runs fsync=off)
                restart_durable(pg)
            import psycopg

            with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres",
                                 autocommit=True) as c:
                c.execute(f"CREATE DATABASE {DB_NAME}")
            env["CAREFILE_DATABASE_URL"] = pg.url(DB_NAME)
            dsn = f"host=127.0.0.1 port={pg.port} user=postgres dbname={DB_NAME}"
        carefile(env, "init")
        carefile(env, "user", "add", USER, "--role", "collector", "--password", PASSWORD, "--region", "5401")
        line = carefile(env, "user", "token", USER, "--public-url", "http://127.0.0.1:8000")
        token_url = next(x.strip() for x in line.splitlines() if x.startswith("http"))
        path = urlsplit(token_url).path.rstrip("/") + "/submission"
        env["GROWTH_SUBMIT_PATH"] = path
        for k, v in env.items():
            if k.startswith(("CAREFILE_", "GROWTH_")):
                os.environ[k] = v
        app, _ = _app()
        run = _runner(app)
        run_id = uuid.uuid4().hex
        kind = "register" if args.entity else "update" if args.entity_update else "bench"
        index = 0
        run([_environ(path, kind="bench", i=i, run_id=run_id) for i in range(50)])  # warm-up + the template
        index += 50
        template = 50
        if kind != "bench":
            run([_environ(path, kind=kind if kind == "register" else "register", i=i, run_id=run_id)
                 for i in range(50, 100)])
            if kind == "update":  # the children the measured runs visit, registered with the warm-up
                n_meas = (args.n + 50) * len(args.sizes)
                run([_environ(path, kind="register", i=i, run_id=run_id) for i in range(100, 100 + n_meas)])
                run([_environ(path, kind="update", i=i, run_id=run_id) for i in range(50, 100)])
            index = 100  # registrations: new children from here; updates: the children registered above
        filled = 0
        filler_first = 10_000_000
        for size in args.sizes:
            extra = size - filled
            if extra > 0:
                t0 = time.perf_counter()
                if kind != "bench" or args.fill == "real":  # real requests, in a child process
                    subprocess.run([sys.executable, __file__, "--fill-real", "bench" if kind == "bench" else "register",
                                    str(extra), str(filler_first + filled), run_id],
                                   check=True, env=os.environ.copy(), cwd=ROOT, stderr=subprocess.DEVNULL)
                elif dsn is not None:
                    fill_postgres(dsn, template, extra, filled, run_id)
                else:
                    subprocess.run([sys.executable, __file__, "--fill-sqlite", str(dbfile), str(template),
                                    str(extra), str(filled), run_id], check=True, cwd=ROOT)
                filled = size
                os.sync()  # the fill's dirty pages written back now, not by the kernel during the measurement
                print(f"  filled {extra} in {time.perf_counter() - t0:.0f} s", flush=True)
            res = measure(args, app, run, path, kind, index, run_id, backend, dsn, pg)
            index += args.n + 50
            res.update(backend=backend, kind=kind, size=size, rows=stored(backend, dsn, dbfile))
            if kind != "bench":  # every entity change applied (an update of an unknown child would be an error event)
                from sqlalchemy import text

                with app.extensions["carefile"].db.engine.connect() as conn:
                    res["events"] = dict(conn.execute(text(  # type: ignore[arg-type]
                        "SELECT status, count(*) FROM entity_event GROUP BY status")).all())
            res["load"] = os.getloadavg()[0]
            out.append(res)
            report(res)
        app.extensions["carefile"].db.dispose()
        return out
    finally:
        if pg is not None:
            pg.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict[str, Any]) -> None:
    line = (f"{r['backend']:10} {r['kind']:8} stored {r['size']:>7} (rows {r['rows']:>7}): "
            f"CPU {r['cpu_ms']:5.2f} ms/sub (wall {r['wall_ms']:5.2f})")
    if r["backend"] == "postgresql":
        line += f" + server {r['pg_ms']:5.2f} ms"
    if "instructions" in r:
        line += f", {r['instructions'] / 1e6:6.2f} M instructions"
    line += (f"; {r['statements']:.1f} statements; read syscalls {r['syscr']:.1f}, write {r['syscw']:.1f}"
             f"; load {r['load']:.2f}")
    print(line, flush=True)
    if "touched" in r:
        print("      buffers per submission: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(r["touched"].items()) if not k.startswith("wal")))
        print("      WAL per submission: " + ", ".join(
            f"{k[4:]} {v:.1f}" for k, v in sorted(r["touched"].items()) if k.startswith("wal")))
    if "events" in r:
        print(f"      entity events so far: {r['events']}")
    for p in r.get("plans", []):
        print("      " + p)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--fill-sqlite":
        _, _, path, template, count, done, salt = sys.argv
        fill_sqlite(path, int(template), int(count), int(done), salt)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--fill-real":
        fill_real(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--n", type=int, default=1000, help="submissions measured per size (default 1000)")
    p.add_argument("--sizes", default="0,30000,300000", help="stored submissions before each measurement")
    p.add_argument("--entity", action="store_true", help="child registrations (stored: registered children)")
    p.add_argument("--entity-update", action="store_true", help="visits updating a registered child")
    p.add_argument("--fill", choices=["bulk", "real"], default="bulk",
                   help="store the submissions with bulk SQL (default) or by real requests (a child process "
                        "running the app; ~3-5 ms each)")
    p.add_argument("--procs", type=int, default=1,
                   help="send the measured requests from this many forked processes at once (like a server's sync "
                        "workers; default 1)")
    p.add_argument("--pg-fsync", choices=["on", "off"], default="on")
    p.add_argument("--plans", action="store_true", help="print the query plans of the submission's SELECTs")
    p.add_argument("--instructions", action="store_true",
                   help="instructions per submission (run under valgrind --tool=callgrind --instr-atstart=no)")
    args = p.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for b in backends:
        bench_backend(b, args)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
