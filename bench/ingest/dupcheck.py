#!/usr/bin/env python3
"""The duplicate check of a new child (app/services/children/duplicates.py) as the care file grows.

    .venv/bin/python bench/ingest/dupcheck.py                        # both backends, 0 / 30,000 / 300,000 children
    .venv/bin/python bench/ingest/dupcheck.py --backend sqlite --sizes 0,30000

Every registration of the shipped form records a birth date and often an ID number, and each new child is
compared with the province's children born within a month and with those of the same ID number. This fills
the children list with N children (bulk SQL: entity rows with a birth date spread over 16 years and one of the
5,580 village codes of Tibet, and their child_directory rows with a name and an 18-digit ID number), then times
`check_new_child` for new children (CPU of this process, and of PostgreSQL's server from /proc) and counts its
statements. Flat means: the same cost at every size.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, insert, text  # noqa: E402

from bench.ingest.run import pg_cpu, restart_durable  # noqa: E402

SURNAMES = "扎西次仁卓玛多吉拉姆格桑央金旺堆白玛达瓦平措德吉曲珍尼玛顿珠"
# The 5,580 villages of Tibet's division table (children spread evenly over them; real counties are uneven).
VILLAGES = [line.split(",")[0] for line in (ROOT / "app" / "data" / "regions-54.csv").read_text().splitlines()
            if len(line.split(",")[0]) == 12]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SURNAMES) for _ in range(rng.randint(2, 4)))


def _child(rng: random.Random) -> dict[str, Any]:
    born = date(2008, 1, 1) + timedelta(days=rng.randrange(16 * 365))
    return {"name": _name(rng), "birth": born.isoformat(), "village": rng.choice(VILLAGES),
            "id_number": "5401" + "".join(rng.choice("0123456789") for _ in range(14))}


def fill(rt: Any, dataset_id: int, count: int, rng: random.Random) -> None:
    from app.models import ChildDirectory, Entity

    now = time.time()
    batch = 5000
    with rt.db.write() as s:
        first = s.execute(text("SELECT coalesce(max(id), 0) FROM entity")).scalar_one() + 1
    for start in range(0, count, batch):
        n = min(batch, count - start)
        kids = [_child(rng) for _ in range(n)]
        ids = list(range(first + start, first + start + n))
        with rt.db.write() as s:
            s.execute(insert(Entity), [
                {"id": i, "dataset_id": dataset_id, "uuid": str(uuid.uuid4()), "label": k["name"], "version": 1,
                 "data": {"birth_date": k["birth"], "village": k["village"], "status": "registered"},
                 "region_code": k["village"]} for i, k in zip(ids, kids, strict=True)])
            s.execute(insert(ChildDirectory), [
                {"entity_id": i, "full_name": k["name"], "guardian_name": None, "id_number": k["id_number"],
                 "search_text": k["name"], "submission_id": None} for i, k in zip(ids, kids, strict=True)])
    with rt.db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql("SELECT setval(pg_get_serial_sequence('entity', 'id'), max(id)) FROM entity")
            auto.exec_driver_sql("VACUUM ANALYZE entity")
            auto.exec_driver_sql("VACUUM ANALYZE child_directory")
        else:
            conn.exec_driver_sql("ANALYZE")
    print(f"  filled {count:,} children in {time.time() - now:.0f} s", flush=True)


def measure(rt: Any, dataset_id: int, n: int, rng: random.Random, pg_pid: Any) -> dict[str, float]:
    from app.models import ChildDirectory, Entity
    from app.services.children import duplicates

    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(rt.db.engine, "before_cursor_execute", count)
    cpu = 0.0
    checked = 0
    pg0 = pg_cpu(pg_pid) if pg_pid else 0.0
    flagged = 0
    try:
        for _ in range(n):
            k = _child(rng)
            with rt.db.write() as s:
                entity = Entity(dataset_id=dataset_id, uuid=str(uuid.uuid4()), label=k["name"], version=1,
                                data={"birth_date": k["birth"], "village": k["village"]}, region_code=k["village"])
                s.add(entity)
                s.flush()
                s.add(ChildDirectory(entity_id=entity.id, full_name=k["name"], id_number=k["id_number"],
                                     search_text=k["name"]))
                s.flush()
                answers = {"child_name": k["name"], "birth_date": k["birth"], "id_number": k["id_number"]}
                before = statements[0]
                c0 = time.process_time()
                flagged += len(duplicates.check_new_child(s, entity, None, answers))  # type: ignore[arg-type]
                cpu += time.process_time() - c0
                checked += statements[0] - before
                s.rollback()  # the next new child is compared with the same N children
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)
    pg = (pg_cpu(pg_pid) - pg0) if pg_pid else 0.0
    return {"cpu_ms": cpu / n * 1000, "pg_ms": pg / n * 1000, "statements": checked / n, "flagged": flagged}


def run_backend(backend: str, sizes: list[int], n: int) -> None:
    from app import create_app
    from app.services.children.store import CHILDREN, ensure_dataset
    from app.services.ops.setup import init_schema

    tmp = Path(tempfile.mkdtemp(prefix="carefile-dupcheck-"))
    pg = None
    try:
        config: dict[str, Any] = {"DATA_DIR": str(tmp), "EXPORT_WORKER": "false"}
        if backend == "postgresql":
            from tests.support.pgserver import start_postgres

            pg = start_postgres()
            restart_durable(pg)
            import psycopg

            with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres",
                                 autocommit=True) as c:
                c.execute("CREATE DATABASE dupcheck")
            config["DATABASE_URL"] = pg.url("dupcheck")
        app = create_app(config)
        rt = app.extensions["carefile"]
        init_schema(rt)
        with rt.db.write() as s:
            dataset_id = ensure_dataset(s, 1, CHILDREN, ["birth_date", "village", "status"]).id
        pg_pid = pg  # pg_cpu(pg): the CPU seconds of the server and its backends so far
        rng = random.Random(20261207)
        stored = 0
        for size in sizes:
            if size > stored:
                fill(rt, dataset_id, size - stored, rng)
                stored = size
            measure(rt, dataset_id, min(20, n), rng, pg_pid)  # warm-up
            r = measure(rt, dataset_id, n, rng, pg_pid)
            print(f"{backend:10} {size:>8,} children: check_new_child {r['cpu_ms']:.2f} CPU ms"
                    + (f" + PostgreSQL {r['pg_ms']:.2f} ms" if pg else "") + ", "
                  f"{r['statements']:.1f} statements, {r['flagged']} pairs flagged in {n}", flush=True)
        rt.db.dispose()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--sizes", default="0,30000,300000")
    p.add_argument("--n", type=int, default=200, help="new children checked per size")
    args = p.parse_args()
    os.environ.setdefault("CAREFILE_LOG_FORMAT", "text")
    sizes = [int(x) for x in args.sizes.split(",")]
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        run_backend(backend, sizes, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
