#!/usr/bin/env python3
"""Split a live worker's CPU samples by layer: where the worker's CPU per submission goes under load.

    .venv/bin/python bench/ingest/run.py --serve --backend sqlite --no-digest --big-mb 0 --pyspy /tmp/spy
    .venv/bin/python bench/ingest/spy_summary.py /tmp/spy/sqlite-token-nophoto-*.txt [--cpu-ms 4.2]

Reads py-spy "raw" recordings (one line per distinct stack: `frame;frame;… count`, recorded without
--idle, so a sample is a thread on the CPU). Every sample is put in the first layer whose marker is on
its stack, innermost layers first; `--cpu-ms` (the worker CPU per submission run.py printed) turns the
shares into milliseconds. Threads other than the request thread (the export worker) are counted apart.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

# (layer, markers): a sample belongs to the first layer one of whose markers is in its stack. Innermost
# concerns first (a database call inside the app is "database", not "app").
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("other threads", ("Thread._bootstrap",)),
    ("request log, request id, metrics (app/ops)", ("(app/ops/", "prometheus_client")),
    ("gunicorn access log", ("Logger.access (gunicorn",)),
    ("SQLite / psycopg calls", ("do_execute (sqlalchemy", "do_commit (sqlalchemy", "do_executemany (sqlalchemy",
                                "Cursor.execute (psycopg", "Connection.commit (psycopg")),
    ("SQLAlchemy (besides the calls)", ("(sqlalchemy/",)),
    ("multipart and form parsing", ("MultiPartParser", "FormDataParser", "(werkzeug/sansio/multipart")),
    ("blob store", ("(storage/",)),
    ("XML (lxml, forms/)", ("(forms/",)),
    ("sign-in", ("(app/openrosa/auth", "(app/services/users", "(app/services/auth")),
    ("app (rest of the request in Flask)", ("Flask.wsgi_app", "CareFile.__call__", "(app/__init__")),
    ("gunicorn: parse request", ("Request.parse (gunicorn", "Message.__init__ (gunicorn")),
    ("gunicorn: write response", ("Response.write (gunicorn", "Response.send_headers", "Response.close")),
    ("gunicorn: accept, close, loop", ("SyncWorker.",)),
]


def classify(stack: str) -> str:
    for layer, markers in LAYERS:
        if any(m in stack for m in markers):
            return layer
    return "other"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--cpu-ms", type=float, help="worker CPU ms per submission (run.py's 'workers' figure)")
    p.add_argument("--show-other", type=int, default=0, help="print this many of the unclassified stacks")
    args = p.parse_args()
    counts: collections.Counter[str] = collections.Counter()
    other: collections.Counter[str] = collections.Counter()
    for f in args.files:
        for line in f.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            layer = classify(stack)
            counts[layer] += int(n)
            if layer == "other":
                other[";".join(fr.split(" (")[0] for fr in stack.split(";")[-3:])] += int(n)
    request = sum(v for k, v in counts.items() if k != "other threads")
    if not request:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{request} samples of the request thread ({counts['other threads']} of other threads, not counted)")
    for layer, _ in [*LAYERS, ("other", ())]:
        if layer == "other threads" or not counts[layer]:
            continue
        share = counts[layer] / request
        ms = f"  {share * args.cpu_ms:5.2f} ms" if args.cpu_ms else ""
        print(f"  {share * 100:5.1f} %{ms}  {layer}")
    for stack, n in other.most_common(args.show_other):
        print(f"    {n:6}  {stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
