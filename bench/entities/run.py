#!/usr/bin/env python3
"""Entity-list benchmark: children.csv for 25,000 children, per-user scoped (see README.md).

    .venv/bin/python bench/entities/run.py                        # both backends, 7 runs each
    .venv/bin/python bench/entities/run.py --backend sqlite --runs 5 --children 25000
    .venv/bin/python bench/entities/run.py --write-doc            # also append to docs/benchmarks.md

Targets: children.csv for 25,000 children built in < 300 ms, 304 when unchanged; one collector's
list (≈50 children) in < 20 ms.

Per backend: a throw-away database (a SQLite file, or a throw-away PostgreSQL server from
tests/support/pgserver.py), the `carefile init` steps (schema + default project), the five shipped
forms published from xlsforms/ (they declare the `children` list and its properties), an admin
and a collector whose region is ONE village. Then 25,000 children spread over 500 villages
(50 per village) are bulk-inserted with SQLAlchemy core into `entity` (+ their version-1 row in
`entity_version`), with the properties the shipped registration form writes (and, for a part of
them, what identification/assessment/visits later write).

Timed (median and min/max of --runs runs; "cold" = the CSV cache cleared before each run):
  service   list_csv() for the admin (all) and the collector (one village), cold and warm
  http      GET .../children.csv through Flask's test client with Digest auth (as Collect),
            cold and warm; GET with If-None-Match → 304; the manifest (its hash needs the CSV)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SHIPPED = ["child_registration", "identification", "assessment", "visit_record", "referral_followup"]
PASSWORD = "bench-password-1"
SECTION = "## Entity lists (bench/entities)"
TARGET_ALL_MS, TARGET_ONE_MS = 300.0, 20.0


# ------------------------------------------------------------------------------ data


def villages(n: int) -> list[str]:
    """n village codes: Lhasa (5401), 5 counties, townships of 2 villages each (…201, …202)."""
    counties = ["540102", "540103", "540104", "540121", "540122"]
    out: list[str] = []
    t = 0
    while len(out) < n:
        county = counties[t % len(counties)]
        township = f"{county}{(t // len(counties)) + 1:03d}"
        out += [f"{township}201", f"{township}202"]
        t += 1
    return out[:n]


SURNAMES = "扎卓次格拉索多央德尼边达白仁曲"
STATUS = ["registered", "watch", "refer", "closed"]
RISK = ["unassessed", "green", "yellow", "orange", "red"]
REF = ["none", "referred", "in_service", "closed"]
CATS = ["left_behind", "low_income", "orphan", "disability", "left_behind low_income"]


def child_rows(n: int, village_codes: list[str], dataset_id: int, rng: random.Random
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Entity rows and their version-1 rows, as the shipped registration form creates them."""
    today = date(2026, 11, 29)
    entities, versions = [], []
    per = max(1, n // len(village_codes))
    for i in range(n):
        village = village_codes[min(i // per, len(village_codes) - 1)]
        birth = today - timedelta(days=rng.randint(365, 17 * 365))
        gender = rng.choice(["male", "female"])
        reg = today - timedelta(days=rng.randint(0, 700))
        data = {
            "prefecture": village[:4], "county": village[:6], "township": village[:9], "village": village,
            "birth_date": birth.isoformat(), "gender": gender, "category": rng.choice(CATS),
            "status": "registered", "risk_level": "unassessed", "referral_status": "none",
            "registered_on": reg.isoformat(), "next_followup_due": (reg + timedelta(days=30)).isoformat(),
            "flag_reidentify": "no",
        }
        version = 1
        if rng.random() < 0.6:  # identified since
            version += 1
            data.update(status=rng.choice(STATUS), last_identified=(reg + timedelta(days=20)).isoformat(),
                        id_score=str(rng.randint(0, 9)))
        if rng.random() < 0.3:  # assessed since
            version += 1
            data.update(risk_level=rng.choice(RISK), assess_score=str(rng.randint(0, 30)),
                        last_assessed=(reg + timedelta(days=40)).isoformat())
        if rng.random() < 0.2:
            version += 1
            data.update(referral_status=rng.choice(REF), last_followup=(reg + timedelta(days=60)).isoformat())
        sex = "男" if gender == "male" else "女"
        label = f"{rng.choice(SURNAMES)}*（{sex}，{birth.isoformat()[:7]}，示例村{village[-5:]}）"
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        entities.append({"dataset_id": dataset_id, "uuid": uid, "label": label, "version": version,
                         "data": data, "region_code": village})
        versions.append({"version": 1, "label": label, "data": data, "data_received": data})
    return entities, versions


# ------------------------------------------------------------------------------ set-up


def make_app(url: str, data_dir: Path) -> Any:
    from app import create_app
    from app.services.ops import setup

    app = create_app({"DATA_DIR": str(data_dir / "data"), "DATABASE_URL": url,
                      "STORAGE_URL": str(data_dir / "blobs"), "ODK_VALIDATE": "off",
                      "SECRET_KEY": "bench-secret", "XLSFORMS_DIR": str(data_dir / "no-forms")})
    setup.init_schema(app.extensions["carefile"])  # what `carefile init` does
    return app


def populate(app: Any, n_children: int, n_villages: int, seed: int) -> dict[str, Any]:
    from sqlalchemy import insert, select, update

    from app.models import Dataset, Entity, EntityVersion
    from app.services import forms
    from app.services.identity import users

    rt = app.extensions["carefile"]
    for name in SHIPPED:
        with rt.db.write() as s:
            forms.publish_form(s, rt.store, project_id=1, data=(ROOT / "xlsforms" / f"{name}.xlsx").read_bytes(),
                               filename=f"{name}.xlsx", validate=False)
    codes = villages(n_villages)
    one_village = codes[len(codes) // 2]
    with rt.db.write() as s:
        users.create_user(s, project_id=1, username="admin", role="admin", password=PASSWORD,
                          realm=rt.config["DIGEST_REALM"])
        users.create_user(s, project_id=1, username="dolma", role="collector", password=PASSWORD,
                          realm=rt.config["DIGEST_REALM"], regions=[one_village])
    t0 = time.perf_counter()
    with rt.db.write() as s:
        ds_id = s.scalar(select(Dataset.id).where(Dataset.project_id == 1, Dataset.name == "children"))
        entities, versions = child_rows(n_children, codes, ds_id, random.Random(seed))
        for start in range(0, len(entities), 5000):
            s.execute(insert(Entity), entities[start:start + 5000])
        ids = {u: i for u, i in s.execute(select(Entity.uuid, Entity.id).where(Entity.dataset_id == ds_id))}
        for e, v in zip(entities, versions, strict=True):
            v["entity_id"] = ids[e["uuid"]]
        for start in range(0, len(versions), 5000):
            s.execute(insert(EntityVersion), versions[start:start + 5000])
        s.execute(update(Dataset).where(Dataset.id == ds_id).values(revision=Dataset.revision + 1))
    load_s = time.perf_counter() - t0
    in_village = sum(1 for e in entities if e["region_code"] == one_village)
    return {"village": one_village, "in_village": in_village, "load_s": load_s}


# ------------------------------------------------------------------------------ timing


def timed(fn: Callable[[], Any], runs: int, before: Callable[[], None] | None = None) -> dict[str, float]:
    samples, cpu = [], []
    fn()  # warm-up: imports, connection pool, statement caches
    for _ in range(runs):
        if before is not None:
            before()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    # cpu = this process only (for PostgreSQL the server's own work is not in it): a check on
    # wall times taken on a busy machine.
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples),
            "cpu_ms": statistics.median(cpu)}


def measure(app: Any, info: dict[str, Any], runs: int) -> dict[str, Any]:
    from sqlalchemy import select

    from app.models import User
    from app.services.children import lists as es
    from tests.support.digest_client import DigestClient

    rt = app.extensions["carefile"]

    def clear() -> None:
        es._CSV_CACHE.clear()

    with rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        collector = s.scalars(select(User).where(User.username == "dolma")).one()
        _ = admin.region_codes, collector.region_codes  # load the regions while the session is open
        s.expunge_all()

    def service(user: Any) -> Callable[[], Any]:
        def run() -> Any:
            with rt.db.session() as s:
                return es.list_csv(s, 1, "children", user)
        return run

    out: dict[str, Any] = {}
    body_all, _ = service(admin)()
    body_one, _ = service(collector)()
    out["md5_all"] = hashlib.md5(body_all).hexdigest()
    out["rows_all"] = body_all.count(b"\n") - 1
    out["rows_one"] = body_one.count(b"\n") - 1
    out["bytes_all"] = len(body_all)
    out["bytes_one"] = len(body_one)
    for who, user in (("admin", admin), ("collector", collector)):
        out[f"service_{who}_cold"] = timed(service(user), runs, clear)
        out[f"service_{who}_warm"] = timed(service(user), runs)

    url = "/v1/projects/1/forms/identification/attachments/children.csv"
    for who, name in (("admin", "admin"), ("collector", "dolma")):
        phone = DigestClient(app.test_client(), name, PASSWORD)

        def get(phone: DigestClient = phone, **kw: Any) -> Any:
            resp = phone.get(url, openrosa=False, **kw)
            assert resp.status_code in (200, 304), resp.status_code
            return resp

        first = get()
        assert first.status_code == 200
        etag = first.headers["ETag"]
        out[f"http_{who}_cold"] = timed(get, runs, clear)
        out[f"http_{who}_warm"] = timed(get, runs)

        def conditional(phone: DigestClient = phone, etag: str = etag) -> None:
            resp = phone.get(url, openrosa=False, headers={"If-None-Match": etag})
            assert resp.status_code == 304 and not resp.data, resp.status_code

        out[f"http_{who}_304_warm"] = timed(conditional, runs)
        out[f"http_{who}_304_cold"] = timed(conditional, runs, clear)

        def manifest(phone: DigestClient = phone) -> None:
            resp = phone.get("/v1/projects/1/forms/identification/manifest")
            assert resp.status_code == 200

        out[f"http_{who}_manifest_cold"] = timed(manifest, runs, clear)
        out[f"http_{who}_manifest_warm"] = timed(manifest, runs)

        def preflight(phone: DigestClient = phone) -> None:
            # Fixed cost of any OpenRosa request (Digest check, user, project): no entity code.
            resp = phone.head("/v1/projects/1/submission")
            assert resp.status_code == 204

        out[f"http_{who}_head"] = timed(preflight, runs)
    return out


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"carefile-bench-entities-{backend}-"))
    pg = None
    app = None
    try:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'carefile.db'}"
        else:
            from sqlalchemy import create_engine, text

            from tests.support.pgserver import start_postgres

            pg = start_postgres()
            eng = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.execute(text("CREATE DATABASE bench_entities"))
            eng.dispose()
            url = pg.url("bench_entities")
        app = make_app(url, tmp)
        info = populate(app, args.children, args.villages, args.seed)
        if backend == "postgresql":
            from sqlalchemy import text

            with app.extensions["carefile"].db.write() as s:
                s.execute(text("ANALYZE"))
        load_before = os.getloadavg()[0]
        res = measure(app, info, args.runs)
        res.update(info)
        res["load"] = (load_before, os.getloadavg()[0])
        res["backend"] = backend
        return res
    finally:
        if app is not None:
            app.extensions["carefile"].db.dispose()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ report


def fmt(r: dict[str, float]) -> str:
    return f"{r['median_ms']:.1f} ({r['min_ms']:.1f}–{r['max_ms']:.1f})"


def fmt_cpu(r: dict[str, float]) -> str:
    return f"{r['cpu_ms']:.1f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/entities/run.py --runs {args.runs}` ({args.children:,} children in {args.villages} villages; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{time.strftime('%Y-%m-%d')}). Milliseconds: median (min–max) of {args.runs} runs. "
        "*cold* = the server's CSV cache cleared before each run; *warm* = served from it. "
        "HTTP = Flask test client with Digest auth as Collect sends it (no network, no gunicorn). "
        "*cpu* = median CPU time of the benchmark process (for PostgreSQL without the server's share).",
        "",
        "Targets: children.csv for 25,000 children built in < 300 ms, 304 when unchanged; one "
        "collector's list (≈50 children) in < 20 ms.",
        "",
        "| measurement | " + " | ".join(f"{r['backend']} wall | {r['backend']} cpu" for r in results) + " |",
        "|---|" + "---:|---:|" * len(results),
    ]
    rows = [
        ("admin list (all): `list_csv` cold", "service_admin_cold"),
        ("admin list: `list_csv` warm", "service_admin_warm"),
        ("admin list: GET children.csv cold", "http_admin_cold"),
        ("admin list: GET children.csv warm", "http_admin_warm"),
        ("admin list: GET If-None-Match → 304 (warm)", "http_admin_304_warm"),
        ("admin list: GET If-None-Match → 304 (cold)", "http_admin_304_cold"),
        ("admin: GET manifest cold", "http_admin_manifest_cold"),
        ("collector list (one village): `list_csv` cold", "service_collector_cold"),
        ("collector list: `list_csv` warm", "service_collector_warm"),
        ("collector list: GET children.csv cold", "http_collector_cold"),
        ("collector list: GET children.csv warm", "http_collector_warm"),
        ("collector list: GET If-None-Match → 304 (warm)", "http_collector_304_warm"),
        ("collector: GET manifest cold", "http_collector_manifest_cold"),
        ("collector: GET manifest warm", "http_collector_manifest_warm"),
        ("baseline: HEAD /submission (auth + project only, no entity code)", "http_collector_head"),
    ]
    for title, key in rows:
        lines.append(f"| {title} | " + " | ".join(f"{fmt(r[key])} | {fmt_cpu(r[key])}" for r in results) + " |")
    lines.append("| rows / bytes (admin; collector) | " + " | ".join(
        f"{r['rows_all']:,} / {r['bytes_all']:,}; {r['rows_one']} / {r['bytes_one']:,} | " for r in results) + " |")
    lines.append("| md5 of the admin CSV | " + " | ".join(f"`{r['md5_all'][:12]}…` | " for r in results) + " |")
    lines.append("| bulk load of the children (s) | " + " | ".join(f"{r['load_s']:.1f} | " for r in results) + " |")
    lines.append("| load average (1 min) before / after | " + " | ".join(
        f"{r['load'][0]:.1f} / {r['load'][1]:.1f} | " for r in results) + " |")
    lines.append("")
    verdicts = []
    for r in results:
        all_ok = r["service_admin_cold"]["median_ms"] < TARGET_ALL_MS and \
            r["http_admin_cold"]["median_ms"] < TARGET_ALL_MS
        one_ok = r["service_collector_cold"]["median_ms"] < TARGET_ONE_MS and \
            r["http_collector_cold"]["median_ms"] < TARGET_ONE_MS
        verdicts.append(f"{r['backend']}: {r['rows_all']:,} cold {'met' if all_ok else 'MISSED'}, "
                        f"one collector cold {'met' if one_ok else 'MISSED'}")
    lines.append("Result: " + "; ".join(verdicts) + ".")
    if args.note:
        lines += ["", args.note]
    lines.append("")
    return "\n".join(lines)


def append_section(path: Path, text: str) -> None:
    """Replace our own section (or append it); never touch anything else in the file.

    Small read-modify-write with an atomic rename, so a concurrent writer of another section
    at worst has to re-run (it never sees a half-written file).
    """
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION in old:
        start = old.index(SECTION)
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text.rstrip("\n") + "\n" + (old[nxt:] if nxt != -1 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--children", type=int, default=25_000)
    ap.add_argument("--villages", type=int, default=500)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--write-doc", action="store_true", help="append/replace our section in docs/benchmarks.md")
    ap.add_argument("--note", default="", help="a paragraph appended to the section")
    ap.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import logging

    logging.disable(logging.INFO)
    results = []
    if args.backend == "both":
        # One process per backend: a clean interpreter (caches, memory, app set-up) for each.
        import subprocess

        for b in ("sqlite", "postgresql"):
            with tempfile.TemporaryDirectory() as d:
                raw = Path(d) / "r.json"
                cmd = [sys.executable, __file__, "--backend", b, "--children", str(args.children),
                       "--villages", str(args.villages), "--runs", str(args.runs), "--seed", str(args.seed),
                       "--json", str(raw), "--quiet"]
                subprocess.run(cmd, check=True, timeout=1800)
                results += json.loads(raw.read_text())
    else:
        print(f"== {args.backend}", file=sys.stderr, flush=True)
        results.append(run_backend(args.backend, args))
    text = report(results, args)
    if not args.quiet:
        print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.write_doc:
        append_section(ROOT / "docs" / "benchmarks.md", text)


if __name__ == "__main__":
    main()
