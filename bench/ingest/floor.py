#!/usr/bin/env python3
"""The floor under the ingest benchmark: gunicorn's sync workers and the same load generator, with an app
that only reads the body and answers 201 (no Flask, no parsing, no database, no files).

    .venv/bin/python bench/ingest/floor.py                 # 2 workers, 16 clients, with and without photo
    .venv/bin/python bench/ingest/floor.py --workers 4 --n 4000

Whatever CareFile does per submission comes on top of this: if the floor itself leaves the CPUs idle at
some rate, the HTTP stack and the clients, not the application, set that limit on this machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.ingest.run import (  # noqa: E402
    VENV_BIN,
    free_port,
    machine_idle,
    proc_cpu,
    run_load,
    summarize,
    wait_quiet,
    worker_pids,
)

BODY = (b'<OpenRosaResponse xmlns="http://openrosa.org/http/response"><message nature="submit_success">'
        b"Submission received.</message></OpenRosaResponse>")


def app(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def, type-arg]
    """Read the whole request body (as the real server must), answer as CareFile does."""
    left = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)
    start_response("201 Created", [("Content-Type", "text/xml; charset=utf-8"),
                                   ("Content-Length", str(len(BODY))), ("X-OpenRosa-Version", "1.0")])
    return [BODY]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--client-procs", type=int, default=4)
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gunicorn.log"
        with log.open("wb") as logf:
            proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
                                     "--worker-tmp-dir", "/dev/shm", "--log-level", "warning",
                                     "bench.ingest.floor:app"], cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
            try:
                time.sleep(2)
                path = "/v1/key/x/projects/1/submission"
                for photo in (False, True):
                    run_load("127.0.0.1", port, path, digest=False, photo=photo, n=200, concurrency=args.concurrency,
                             procs=args.client_procs, run_id=uuid.uuid4().hex)
                    wait_quiet(30)
                    pids = worker_pids(proc.pid)
                    cpu0, idle0 = {q: proc_cpu(q) for q in pids}, machine_idle()
                    wall, rows, client_cpu = run_load("127.0.0.1", port, path, digest=False, photo=photo, n=args.n,
                                                      concurrency=args.concurrency, procs=args.client_procs,
                                                      run_id=uuid.uuid4().hex)
                    idle = machine_idle() - idle0
                    res = summarize("floor", "none", "token", photo, args.n, args.concurrency, wall, rows)
                    ok = sum(1 for r in rows if r[2] == 201)
                    worker_ms = sum(proc_cpu(q) - cpu0[q] for q in pids) / max(ok, 1) * 1000
                    print(f"floor {'photo 300 KB' if photo else 'no photo':12s} {res.per_second:7.1f}/s  "
                          f"p50 {res.p50_ms:6.1f} ms  p95 {res.p95_ms:6.1f} ms  errors {res.errors}  "
                          f"CPU ms/req: workers {worker_ms:.2f}, clients {client_cpu / max(ok, 1) * 1000:.2f}; "
                          f"idle {100 * idle / (wall * (os.cpu_count() or 1)):.0f} %", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
