#!/usr/bin/env python3
"""Export benchmark: N submissions of an assessment-like form (a repeat of 3 rows each), inserted
straight into the database with bulk Core inserts, exported to CSV zip and to XLSX.

See bench/export/README.md. In short:

    .venv/bin/python bench/export/run.py                          # SQLite, 100,000 submissions
    .venv/bin/python bench/export/run.py --backend postgresql     # a throw-away PostgreSQL server
    .venv/bin/python bench/export/run.py --n 20000 --formats csvzip

Each export runs in its own subprocess (the same code a background job runs: plan → renderer →
temporary file), which reports its wall time, the file size and its peak RSS (VmHWM from
/proc/self/status), so the figures of one export do not include the set-up's memory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FORM_ID = "bench_assessment"
SCORES = [f"s{i:02d}" for i in range(24)]  # select_one 0-3 like the assessment's scores
TEXTS = ["assessor_name", "assessor_org", "summary", "risk_reason", "note"]
INTS = ["phq_total", "gad7_total", "psc17_total", "age_years"]
MULTI = ["tools_used", "protective", "recommended"]
OPTS = ["a", "b", "c", "d", "e", "f"]


def form_md() -> str:
    rows = ["| | begin group | grp_region | 地区 | Region | |"]
    rows += [f"| | text | {n} | {n} | {n} | |" for n in ("prefecture", "county", "township", "village")]
    rows += ["| | end group | | | | |", "| | begin group | grp_scores | 评分 | Scores | |"]
    rows += [f"| | select_one score | {n} | 项目{n} | Item {n} | |" for n in SCORES]
    rows += ["| | end group | | | | |"]
    rows += [f"| | text | {n} | {n} | {n} | {'yes' if n in ('summary', 'risk_reason') else ''} |" for n in TEXTS]
    rows += [f"| | integer | {n} | {n} | {n} | |" for n in INTS]
    rows += [f"| | select_multiple opts | {n} | {n} | {n} | |" for n in MULTI]
    rows += ["| | date | assessment_date | 评估日期 | Date | |", "| | select_one risk | final_risk | 风险 | Risk | |",
             "| | geopoint | location | 位置 | Location | |", "| | image | signature | 签名 | Signature | yes |",
             "| | begin repeat | contacts | 联系人 | Contacts | |", "| | text | c_name | 姓名 | Name | yes |",
             "| | select_one rel | c_rel | 关系 | Relation | |", "| | integer | c_age | 年龄 | Age | |",
             "| | end repeat | | | | |"]
    choices = [f"| | score | {i} | {i} | {i} |" for i in range(4)]
    choices += [f"| | opts | {o} | 选项{o} | Option {o} |" for o in OPTS]
    choices += [f"| | risk | {r} | {r} | {r} |" for r in ("green", "yellow", "orange", "red")]
    choices += [f"| | rel | {r} | {r} | {r} |" for r in ("mother", "father", "grandparent", "other")]
    return ("| settings |\n| | form_id | version | default_language |\n"
            f"| | {FORM_ID} | 1 | 中文 (zh) |\n\n| survey |\n"
            "| | type | name | label::中文 (zh) | label::English (en) | bind::carefile:sensitive |\n"
            + "\n".join(rows) + "\n\n| choices |\n| | list_name | name | label::中文 (zh) | label::English (en) |\n"
            + "\n".join(choices) + "\n")


def values(i: int, rng: random.Random) -> dict[str, Any]:
    village = f"540102{(i % 50) + 1:03d}{(i % 7) + 201:03d}"
    d: dict[str, Any] = {"grp_region/prefecture": village[:4], "grp_region/county": village[:6],
                         "grp_region/township": village[:9], "grp_region/village": village}
    for n in SCORES:
        d[f"grp_scores/{n}"] = str(rng.randint(0, 3))
    d.update({"assessor_name": "社工 张老师", "assessor_org": "县儿童福利指导中心", "summary": "情绪稳定，学习有困难。",
              "risk_reason": "", "note": "无", "phq_total": rng.randint(0, 27), "gad7_total": rng.randint(0, 21),
              "psc17_total": rng.randint(0, 34), "age_years": rng.randint(6, 17),
              "assessment_date": "2026-11-29", "final_risk": rng.choice(["green", "yellow", "orange", "red"]),
              "location": {"type": "Point", "coordinates": [91.13, 29.65, 3650.0], "properties": {"accuracy": 5.0}},
              "signature": f"sig-{i}.png"})
    for n in MULTI:
        d[n] = rng.sample(OPTS, rng.randint(0, 3))
    return d


def make_app(url: str, data_dir: Path) -> Any:
    from app import create_app
    from app.services.ops import setup

    app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url, "STORAGE_URL": str(data_dir / "blobs"),
                      "ODK_VALIDATE": "off", "SECRET_KEY": "bench", "XLSFORMS_DIR": str(data_dir / "none"),
                      "EXPORT_WORKER": "false"})
    setup.init_schema(app.extensions["carefile"])
    return app


def populate(url: str, data_dir: Path, n: int) -> float:
    from sqlalchemy import insert, update

    from app.models import Submission, SubmissionRepeatRow, SubmissionVersion
    from app.services import forms
    from app.services.identity import users

    rt = make_app(url, data_dir).extensions["carefile"]
    with rt.db.write() as s:
        res = forms.publish_form(s, rt.store, project_id=1, data=form_md().encode(), filename="bench.md")
        form_id, fv_id = res.form.id, res.version.id
        users.create_user(s, project_id=1, username="bench-admin", role="admin", password="bench-password-1",
                          realm=rt.config["DIGEST_REALM"])
    rng = random.Random(7)
    start = time.perf_counter()
    chunk = 5000
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for lo in range(0, n, chunk):
        subs, vers, reps = [], [], []
        for i in range(lo, min(n, lo + chunk)):
            sid = i + 1
            iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            at = base + timedelta(seconds=i * 30)
            data = values(i, rng)
            subs.append({"id": sid, "form_id": form_id, "instance_id": iid, "created_at": at, "updated_at": at,
                         "region_code": data["grp_region/village"], "review_state": "received"})
            vers.append({"id": sid, "submission_id": sid, "form_id": form_id, "form_version_id": fv_id,
                         "instance_id": iid, "current": True, "xml": b"<data/>", "xml_sha256": "0" * 64,
                         "received_at": at, "data": data})
            for j in range(3):
                reps.append({"id": sid * 3 + j, "version_id": sid, "repeat": "/data/contacts", "ordinal": j + 1,
                             "parent_id": None, "data": {"c_name": f"联系人{j}", "c_rel": "mother", "c_age": 30 + j}})
        with rt.db.write() as s:
            s.execute(insert(Submission), subs)
            s.execute(insert(SubmissionVersion), vers)
            s.execute(insert(SubmissionRepeatRow), reps)
            s.execute(update(Submission), [{"id": v["id"], "current_version_id": v["id"]} for v in vers])
    if not rt.db.is_sqlite:
        # A live database has planner statistics (autovacuum analyzes tables as they grow); a table
        # bulk-filled a second ago has none, and the planner then sorts the whole table per batch.
        with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    took = time.perf_counter() - start
    rt.db.dispose()
    return took


def child(url: str, data_dir: Path, fmt: str, processes: int) -> None:
    """Run one export (as a background job would) and print its figures as JSON."""
    from sqlalchemy import select

    from app.models import User
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.tabular import plan_for
    from app.services.exports.xlsx import write_xlsx

    app = make_app(url, data_dir)
    if fmt == "odata":
        odata(app)
        return
    rt = app.extensions["carefile"]
    stats: dict[str, Any] = {}
    with rt.db.session() as s:
        user = s.scalar(select(User).where(User.username == "bench-admin"))
        plan = plan_for(s, 1, FORM_ID, user, ExportOptions.parse({"format": fmt, "labels": "zh"}))
        rows = plan.count(s)
        with tempfile.TemporaryFile() as out:
            start, cpu = time.perf_counter(), time.process_time()
            if fmt == "csvzip":
                write_csvzip(plan, s, out, rt.store, processes=processes, total=rows, stats=stats)
            else:
                write_xlsx(plan, s, out)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            size = out.tell()
    print(json.dumps({"format": fmt, "rows": rows, "seconds": took, "cpu_seconds": cpu, "size": size,
                      "vmhwm_kb": vmhwm_kb(), "children_vmhwm_kb": stats.get("children_vmhwm_kb", [])}))


def vmhwm_kb() -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))


def odata(app: Any) -> None:
    """GET one OData page of 1,000 submissions (Bearer session, Flask test client): first page and the
    page the first page's nextLink points to; one warm-up, then the median of 7 requests each."""
    import statistics

    client = app.test_client()
    resp = client.post("/v1/sessions", json={"email": "bench-admin", "password": "bench-password-1"})
    auth = {"Authorization": f"Bearer {resp.get_json()['token']}"}
    first = f"/v1/projects/1/forms/{FORM_ID}.svc/Submissions?$top=1000"
    body = client.get(first, headers=auth).get_json()
    assert len(body["value"]) == 1000, body
    second = body["@odata.nextLink"].split("://", 1)[-1]
    second = second[second.index("/v1/"):]
    out: dict[str, Any] = {"format": "odata", "rows": 1000}
    for name, url in (("first", first), ("next", second)):
        times = []
        client.get(url, headers=auth)
        for _ in range(7):
            start = time.perf_counter()
            r = client.get(url, headers=auth)
            times.append(time.perf_counter() - start)
            assert r.status_code == 200 and len(r.get_json()["value"]) == 1000
        out[f"{name}_ms"] = statistics.median(times) * 1000
        out[f"{name}_bytes"] = len(r.data)
    out["vmhwm_kb"] = vmhwm_kb()
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--formats", default="csvzip,xlsx,odata",
                    help="csvzip, xlsx, odata (one OData page of 1,000 submissions); csvzip1 = csvzip in one process")
    ap.add_argument("--processes", type=int, default=None,
                    help="processes for csvzip (default: CAREFILE_EXPORT_PROCESSES, else min(2, CPUs))")
    ap.add_argument("--child", nargs=4, metavar=("URL", "DATA_DIR", "FORMAT", "PROCESSES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2], int(args.child[3]))
        return 0
    from app.services.exports.parallel import processes_setting

    processes = args.processes or processes_setting()
    pg = None
    with tempfile.TemporaryDirectory(prefix="carefile-bench-export-") as tmp:
        data_dir = Path(tmp)
        if args.backend == "postgresql":
            from sqlalchemy import create_engine, text

            from tests.support.pgserver import start_postgres

            pg = start_postgres()
            eng = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.execute(text("CREATE DATABASE bench_export"))
            eng.dispose()
            url = pg.url("bench_export")
        else:
            url = f"sqlite:///{data_dir / 'carefile.db'}"
        try:
            took = populate(url, data_dir, args.n)
            print(f"# {args.backend}: inserted {args.n} submissions (+{3 * args.n} repeat rows) in {took:.1f} s",
                  flush=True)
            print(f"# Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
            print("| backend | format | processes | submissions | wall s | submissions/s (wall) | CPU s (parent) "
                  "| file MB | peak RSS MB (parent + children) | load (1 min) |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
            odata_rows = []
            for fmt in args.formats.split(","):
                procs = 1 if fmt == "csvzip1" else processes
                fmt = fmt.rstrip("1")
                out = subprocess.run([sys.executable, __file__, "--child", url, str(data_dir), fmt, str(procs)],
                                     check=True, capture_output=True, text=True, cwd=ROOT, timeout=3600)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if fmt == "odata":
                    odata_rows.append(f"| {args.backend} | {args.n:,} | {r['first_ms']:.0f} | {r['next_ms']:.0f} |"
                                      f" {r['first_bytes'] / 1e6:.2f} | {r['vmhwm_kb'] / 1024:.0f} |"
                                      f" {os.getloadavg()[0]:.1f} |")
                    continue
                n, kids = r["rows"], r["children_vmhwm_kb"]
                rss = f"{r['vmhwm_kb'] / 1024:.0f}" + "".join(f" + {k / 1024:.0f}" for k in kids)
                print(f"| {args.backend} | {fmt} | {1 + len(kids)} | {n:,} | {r['seconds']:.1f} |"
                      f" {n / r['seconds']:,.0f} | {r['cpu_seconds']:.1f} | {r['size'] / 1e6:.1f} | {rss} |"
                      f" {os.getloadavg()[0]:.1f} |", flush=True)
            if odata_rows:
                print("\n| backend | submissions | first page of 1,000 ms (median of 7) | next page ms | page MB "
                      "| peak RSS MB | load (1 min) |")
                print("|---|---:|---:|---:|---:|---:|---:|")
                print("\n".join(odata_rows), flush=True)
        finally:
            if pg is not None:
                pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
