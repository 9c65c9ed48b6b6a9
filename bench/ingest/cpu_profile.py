#!/usr/bin/env python3
"""Where a submission's CPU time goes: the ingest benchmark's requests, in process, under cProfile.

    .venv/bin/python bench/ingest/cpu_profile.py                    # SQLite, 1000 submissions, no photo
    .venv/bin/python bench/ingest/cpu_profile.py --photo --n 500
    .venv/bin/python bench/ingest/cpu_profile.py --backend postgresql --top 40

The same form, token URL and bodies as bench/ingest/run.py, but no gunicorn and no network: each
request's WSGI environ is built before the clock starts and handed straight to the Flask app, so
the numbers are the application's own work per submission (what a sync worker spends besides
reading the socket). Prints CPU ms per submission without the profiler, then the profile.
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.ingest.run import (  # noqa: E402
    BOUNDARY,
    PASSWORD,
    PHOTO_BYTES,
    USER,
    carefile,
    form_md,
    multipart,
    pg_cpu,
    submission_xml,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--photo", action="store_true", help="one 300 KB photo per submission")
    p.add_argument("--entity", action="store_true",
                   help="a registration that creates a child in the children entity list instead (the care "
                        "file's forms all create or update one; tests/support/entity_forms.py)")
    p.add_argument("--entity-update", action="store_true",
                   help="an update of an existing child (a visit record; each child registered before the clock "
                        "starts, then updated with baseVersion 1)")
    p.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    p.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime)")
    p.add_argument("--no-profile", action="store_true", help="only the CPU time per submission")
    p.add_argument("--instructions", action="store_true",
                   help="count instructions instead of time (the machine's speed varies, its instruction count does "
                        "not): run under `valgrind --tool=callgrind --instr-atstart=no`; only the timed requests "
                        "are counted; divide valgrind's 'Collected' figure by --n")
    p.add_argument("--dump", help="also save the profile (pstats) to this file, for print_callees and the like")
    p.add_argument("--statements", action="store_true",
                   help="print the SQL statements one submission runs (after the warm-up), then stop")
    p.add_argument("--wall", action="store_true", help="profile wall time (default: CPU time, so waiting for the "
                   "database or the disk does not count)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="carefile-prof-"))
    forms_dir = tmp / "xlsforms"
    forms_dir.mkdir()
    (forms_dir / "bench_ingest.md").write_text(form_md())
    if args.entity or args.entity_update:
        from tests.support.entity_forms import REGISTER_MD, UPDATE_MD

        (forms_dir / "register.md").write_text(REGISTER_MD)
        (forms_dir / "followup.md").write_text(UPDATE_MD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
    env.update({"CAREFILE_DATA_DIR": str(tmp / "data"), "CAREFILE_XLSFORMS_DIR": str(forms_dir),
                "CAREFILE_ODK_VALIDATE": "off", "PYTHONPATH": str(ROOT)})
    pg = None
    if args.backend == "postgresql":
        from tests.support.pgserver import start_postgres

        pg = start_postgres()
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE carefile_prof")
        env["CAREFILE_DATABASE_URL"] = pg.url("carefile_prof")
    try:
        carefile(env, "init")
        carefile(env, "user", "add", USER, "--role", "collector", "--password", PASSWORD, "--region", "5401")
        out = carefile(env, "user", "token", USER, "--public-url", "http://127.0.0.1:8000")
        token_url = next(line.strip() for line in out.splitlines() if line.startswith("http"))
        path = urlsplit(token_url).path.rstrip("/") + "/submission"
        for k, v in env.items():
            if k.startswith("CAREFILE_"):
                os.environ[k] = v

        from werkzeug.test import EnvironBuilder

        from app import create_app

        app = create_app()
        shared_photo = os.urandom(PHOTO_BYTES - 32)
        run_id = uuid.uuid4().hex

        def child(i: int) -> str:
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/child/{i}"))

        def environ(i: int, register: bool = False) -> dict[str, object]:
            iid = f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{run_id}/{i}/{register}')}"
            photo = (("photo.jpg", [hashlib.sha256(iid.encode()).digest(), shared_photo])
                     if args.photo else None)
            if args.entity or register:
                from tests.support.entity_forms import register_xml

                xml = register_xml(iid, child(i), f"Child {i}", "540102002201")
            elif args.entity_update:
                from tests.support.entity_forms import update_xml

                xml = update_xml(iid, child(i), base=1, status="watch", note=f"visit of child {i}")
            else:
                xml = submission_xml(iid, "photo.jpg" if args.photo else None, i)
            body = b"".join(multipart(xml, photo))
            b = EnvironBuilder(path=path, method="POST", data=body,
                               headers={"X-OpenRosa-Version": "1.0",
                                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                        "User-Agent": "carefile-bench/1 org.odk.collect.android/v2024.2.0"})
            env_ = b.get_environ()
            env_["REMOTE_ADDR"] = "127.0.0.1"
            return env_

        statuses: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            statuses.append(status)

        def run(environs: list[dict[str, object]]) -> None:
            for e in environs:
                for _ in app(e, start_response):
                    pass

        if args.entity_update:  # the children the timed requests visit (ids 0 … 50 + 2n)
            run([environ(i, register=True) for i in range(50 + 2 * args.n)])
        run([environ(i) for i in range(50)])  # warm-up: imports, schema cache, connections
        base = 50
        if args.statements:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            seen: list[str] = []

            def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
                seen.append(" ".join(statement.split()))

            event.listen(Engine, "before_cursor_execute", record)
            run([environ(base)])
            event.remove(Engine, "before_cursor_execute", record)
            for n, statement in enumerate(seen, 1):
                print(f"{n:3}. {statement[:300]}")
            return 0
        envs = [environ(base + i) for i in range(args.n)]
        if args.instructions:
            subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
        c0, w0, s0 = time.process_time(), time.perf_counter(), pg_cpu(pg)
        run(envs)
        cpu, wall, server = time.process_time() - c0, time.perf_counter() - w0, pg_cpu(pg) - s0
        bad = [s for s in statuses if not s.startswith("201")]
        if args.instructions:
            subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], check=True, capture_output=True)
            print(f"instructions: divide valgrind's 'Collected' count by {args.n}"
                  f"{'; NOT 201: ' + str(sorted(set(bad))) if bad else ''}")
            return 1 if bad else 0
        kind = ("entity registration" if args.entity else "entity update" if args.entity_update
                else "photo" if args.photo else "no photo")
        print(f"{args.backend}, {kind}: {args.n} submissions, "
              f"{cpu / args.n * 1000:.2f} CPU ms and {wall / args.n * 1000:.2f} wall ms each (no profiler)"
              + (f"; PostgreSQL's server {server / args.n * 1000:.2f} CPU ms each" if pg is not None else "")
              + (f"; NOT 201: {sorted(set(bad))}" if bad else ""))
        if not args.no_profile:
            envs = [environ(base + args.n + i) for i in range(args.n)]
            prof = cProfile.Profile() if args.wall else cProfile.Profile(time.process_time)
            prof.enable()
            run(envs)
            prof.disable()
            if args.dump:
                prof.dump_stats(args.dump)
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats(args.sort).print_stats(args.top)
            print(s.getvalue())
        return 1 if bad else 0
    finally:
        if pg is not None:
            pg.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
