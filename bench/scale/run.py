#!/usr/bin/env python3
"""National scale: 1,000,000 children and 5,000,000 submissions on PostgreSQL (see README.md).

    .venv/bin/python bench/scale/run.py --children 20000 --submissions 100000   # a quick development run
    .venv/bin/python bench/scale/run.py                                         # full size (generation ~ minutes)
    .venv/bin/python bench/scale/run.py --reuse                                 # measure the database made before
    .venv/bin/python bench/scale/run.py --reuse --replica                       # exports read from a hot standby

Starts its own PostgreSQL server (binaries as tests/support/pgserver.py finds them) on a data directory
that survives the run (--data-dir), creates the schema with the app's migrations, publishes the shipped
forms of xlsforms/, then bulk-loads children (entity + entity_version rows) and their records
(submission, submission_version, submission_repeat_row) with COPY from generated text streams — never
the ORM per row. Then it times the pages through the Flask test client with real sign-in (web: a
province-wide admin and a county manager; OpenRosa Digest: a collector for children.csv) and a CSV zip
export of the largest county's visit records with the export job code. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.scale.server import DBNAME, Pg, restart_cold, start_pg, start_standby  # noqa: E402

SHIPPED = ["child_registration", "identification", "assessment", "visit_record", "referral_followup"]
PASSWORD = "bench-password-1"
TODAY = date(2026, 11, 29)
BIG_COUNTY_SHARE = 0.105  # the largest county's share of the children (≈ 250,000 visit records at full size)
BIG_TABLES = ("entity", "entity_version", "submission", "submission_version", "submission_repeat_row",
              "child_directory")
GIVEN = ["卓玛", "多吉", "次仁", "拉姆", "格桑", "央金", "旦增", "德吉", "平措", "曲珍", "扎西", "白玛"]

TARGETS = [  # (key, what, target ms or submissions/s, kind)
    ("dash_admin_live", "dashboard, province-wide admin — computed live", 1000.0, "ms"),
    ("dash_manager_live", "dashboard, county manager — computed live", 300.0, "ms"),
    ("dash_admin", "dashboard, province-wide admin (stored figures)", 1000.0, "ms"),
    ("dash_manager", "dashboard, county manager (stored figures)", 300.0, "ms"),
    ("file_admin", "a child's file page (admin)", 200.0, "ms"),
    ("file_manager", "a child's file page (county manager)", 200.0, "ms"),
    ("search_admin", "children search (admin, name)", 300.0, "ms"),
    ("search_admin_cold", "children search (admin, name) — cold: server restarted, OS cache dropped", 300.0, "ms"),
    ("search_manager", "children search (county manager)", 300.0, "ms"),
    ("overdue_admin", "overdue list (admin)", 500.0, "ms"),
    ("overdue_manager", "overdue list (county manager)", 500.0, "ms"),
    ("csv_collector", "one collector's children.csv (cold)", 50.0, "ms"),
    ("export_cold", "CSV zip of the county's visit records — cold: server restarted, OS cache dropped", 20000.0,
     "rate"),
    ("export", "CSV zip of the county's visit records — again, warm", 20000.0, "rate"),
    ("export_read", "(reading the county's visit records alone, 1 process, no CSV — warm)", 20000.0, "rate"),
]


# ------------------------------------------------------------------------------ PostgreSQL


def database_exists(pg: Pg) -> bool:
    from sqlalchemy import create_engine, text

    eng = create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DBNAME}).first() is not None
    finally:
        eng.dispose()


def create_database(pg: Pg) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {DBNAME}"))
    eng.dispose()


def make_app(url: str, data_dir: Path, read_url: str | None = None) -> Any:
    """The app on the bench's database; `read_url`: its read replica (READ_DATABASE_URL, the long reads)."""
    from app import create_app
    from app.services.ops import setup

    app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url, "READ_DATABASE_URL": read_url,
                      "STORAGE_URL": str(data_dir / "blobs"), "ODK_VALIDATE": "off", "SECRET_KEY": "bench-scale",
                      "XLSFORMS_DIR": str(data_dir / "none"), "EXPORT_WORKER": "false"})
    setup.init_schema(app.extensions["carefile"])  # the migrations, as `carefile init`
    return app


# ------------------------------------------------------------------------------ places


def load_regions() -> tuple[list[str], dict[str, list[str]]]:
    """Counties, and the village codes of each county, from the real division table."""
    villages: dict[str, list[str]] = {}
    for line in (ROOT / "app" / "data" / "regions-54.csv").read_text(encoding="utf-8").splitlines()[1:]:
        code = line.split(",", 1)[0]
        if len(code) == 12:
            villages.setdefault(code[:6], []).append(code)
    return sorted(villages), villages


def county_weights(counties: list[str], big: str) -> list[float]:
    """Uneven county sizes: one county holds BIG_COUNTY_SHARE, the others a Zipf-like share of the rest."""
    rng = random.Random(54)
    others = [c for c in counties if c != big]
    rng.shuffle(others)
    raw = [1.0 / (i + 2) ** 0.8 for i in range(len(others))]
    scale = (1 - BIG_COUNTY_SHARE) / sum(raw)
    w = dict(zip(others, (r * scale for r in raw), strict=True))
    w[big] = BIG_COUNTY_SHARE
    return [w[c] for c in counties]


# ------------------------------------------------------------------------------ COPY streams


def _esc(v: Any) -> str:
    """One value in COPY's text format."""
    if v is None:
        return r"\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.isoformat()
    s = str(v)
    if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


class CopyStream:
    """A COPY … FROM STDIN on its own connection, fed in ~1 MB pieces."""

    def __init__(self, conninfo: str, table: str, columns: list[str]) -> None:
        import psycopg

        self.conn = psycopg.connect(conninfo, autocommit=False)
        self.cur = self.conn.cursor()
        self.ctx = self.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
        self.copy = self.ctx.__enter__()
        self.buf: list[str] = []
        self.size = 0
        self.rows = 0

    def row(self, values: list[Any]) -> None:
        line = "\t".join(_esc(v) for v in values) + "\n"
        self.buf.append(line)
        self.size += len(line)
        self.rows += 1
        if self.size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.copy.write("".join(self.buf).encode("utf-8"))
            self.buf, self.size = [], 0

    def close(self) -> None:
        self.flush()
        self.ctx.__exit__(None, None, None)
        self.conn.commit()
        self.conn.close()


# ------------------------------------------------------------------------------ data


SURNAMES = "扎卓次格拉索多央德尼边达白仁曲旺平巴琼普"
CATS = ["left_behind", "low_income", "orphan", "disability", "left_behind low_income"]
RISKS = ["green", "yellow", "orange", "red"]
STATUSES = ["healthy", "watch", "refer", "urgent"]


def _const_values(schema: Any) -> dict[str, Any]:
    """A plausible answer for every question of the form (the same on every record of the form)."""
    out: dict[str, Any] = {}
    base = "/data/"
    for f in schema.fields:
        path = getattr(f, "path", "")
        ftype = getattr(f, "type", "")
        if getattr(f, "repeat", None) or ftype in ("group", "repeat") or not path.startswith(base):
            continue
        key = path[len(base):]
        if key.startswith("meta/"):
            continue
        if ftype == "select1":
            out[key] = f.choices[0].value if f.choices else "1"
        elif ftype == "select":
            out[key] = " ".join(c.value for c in f.choices[:2])
        elif ftype == "date":
            out[key] = "2026-06-01"
        elif ftype == "dateTime":
            out[key] = "2026-06-01T10:00:00.000+08:00"
        elif ftype in ("int", "integer"):
            out[key] = 3
        elif ftype == "geopoint":
            out[key] = {"type": "Point", "coordinates": [91.13, 29.65, 3650.0], "properties": {"accuracy": 5.0}}
        elif ftype == "binary":
            out[key] = None
        else:
            out[key] = "情况稳定" if "note" in key or "summary" in key or "obs" in key else "示例"
    return out


@dataclass
class FormInfo:
    id: int
    version_id: int
    xml_form_id: str
    const_json: str  # the constant part of a record's data, without the braces
    keys: dict[str, str]  # the stored keys (with their groups) of the varying answers that may sit in groups


def collect_forms(session: Any) -> dict[str, FormInfo]:
    from sqlalchemy import select

    from app.models import Form
    from app.services.forms import schema_of

    out = {}
    for f in session.scalars(select(Form).where(Form.project_id == 1)):
        const = _const_values(schema_of(f.current_version))
        keys = {}
        if f.xml_form_id == "child_registration":  # answers that differ per child
            keys = {k.rsplit("/", 1)[-1]: k for k in const if k.rsplit("/", 1)[-1] in ("id_number", "guardian_name")}
            for k in keys.values():
                const.pop(k)
        for k in ("grp_region/prefecture", "grp_region/county", "grp_region/township", "grp_region/village", "child",
                  "visit_date", "record_date", "grp_assessor/assessment_date", "today", "record_type",
                  "grp_result/final_risk", "id_result", "grp_child/child_name", "grp_child/gender",
                  "grp_age/birth_date", "child_label"):
            const.pop(k, None)
        out[f.xml_form_id] = FormInfo(f.id, f.current_version_id, f.xml_form_id,
                                      json.dumps(const, ensure_ascii=False, separators=(", ", ": "))[1:-1], keys)
    return out


def directory_facts(name: str, guardian: str, id_number: str) -> tuple[str | None, str | None, str | None, str]:
    """The child's directory row as ingest makes it (app/services/children/directory.facts)."""
    from app.services.children import directory

    return directory.facts({"child_name": name, "guardian_name": guardian, "id_number": id_number})


def generate(pg: Pg, app: Any, n_children: int, n_submissions: int, seed: int) -> dict[str, Any]:
    """Bulk-load the children and their records; returns what the measurements need."""
    from sqlalchemy import select, text, update

    from app.models import Dataset
    from app.services import forms
    from app.services.identity import users

    rt = app.extensions["carefile"]
    t_setup = time.perf_counter()
    for name in SHIPPED:
        with rt.db.write() as s:
            forms.publish_form(s, rt.store, project_id=1, data=(ROOT / "xlsforms" / f"{name}.xlsx").read_bytes(),
                               filename=f"{name}.xlsx", validate=False)
    counties, villages = load_regions()
    big = max(counties, key=lambda c: len(villages[c]))  # the county with the most villages is the biggest
    weights = county_weights(counties, big)
    collector_village = villages[big][len(villages[big]) // 2]
    with rt.db.write() as s:
        realm = rt.config["DIGEST_REALM"]
        users.create_user(s, project_id=1, username="province-admin", role="admin", password=PASSWORD, realm=realm)
        users.create_user(s, project_id=1, username="county-manager", role="manager", password=PASSWORD,
                          realm=realm, regions=[big])
        collector = users.create_user(s, project_id=1, username="village-collector", role="collector",
                                      password=PASSWORD, realm=realm, regions=[collector_village])
        s.flush()
        collector_id = collector.id
        ds_id = s.scalar(select(Dataset.id).where(Dataset.project_id == 1, Dataset.name == "children"))
        info = collect_forms(s)
    conninfo = f"host=127.0.0.1 port={pg.port} user=postgres dbname={DBNAME}"
    import psycopg

    # Drop secondary indexes and foreign keys of the big tables; made again after the load (much faster).
    saved: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as c:
        for (tbl,) in [(t,) for t in BIG_TABLES]:
            for name, d in c.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                     "WHERE conrelid = %s::regclass AND contype IN ('f', 'u')", (tbl,)).fetchall():
                saved.append(f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {d}')
                c.execute(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"')
        for tbl in BIG_TABLES:
            for name, d in c.execute("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                                     "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
                                     "AND NOT x.indisprimary", (tbl,)).fetchall():
                saved.insert(0, d)
                c.execute(f'DROP INDEX "{name}"')
    setup_s = time.perf_counter() - t_setup

    t0 = time.perf_counter()
    rng = random.Random(seed)
    streams = {
        "entity": CopyStream(conninfo, "entity", ["id", "dataset_id", "uuid", "label", "version", "data",
                                                  "region_code", "created_at", "updated_at", "closed_at",
                                                  "close_reason"]),
        "entity_version": CopyStream(conninfo, "entity_version", [
            "id", "entity_id", "version", "label", "data", "data_received", "submission_id",
            "submission_version_id", "base_version", "trunk_version", "created_at"]),
        "submission": CopyStream(conninfo, "submission", [
            "id", "form_id", "instance_id", "created_at", "updated_at", "submitter_id", "device_id", "region_code",
            "entity_uuid", "review_state", "current_version_id"]),
        "submission_version": CopyStream(conninfo, "submission_version", [
            "id", "submission_id", "form_id", "form_version_id", "instance_id", "instance_name", "current", "xml",
            "xml_sha256", "data", "received_at", "submitter_id", "user_agent"]),
        "submission_repeat_row": CopyStream(conninfo, "submission_repeat_row", [
            "id", "version_id", "repeat", "ordinal", "data"]),
        # What ingest writes for a registration (app/services/children/directory.py: name, pinyin, initials,
        # ID number, guardian), from the same answers with the same function.
        "child_directory": CopyStream(conninfo, "child_directory", [
            "entity_id", "full_name", "guardian_name", "id_number", "search_text", "submission_id", "updated_at"]),
    }
    extra_per_child = max(0.0, (n_submissions - n_children) / max(1, n_children))
    county_of = rng.choices(counties, weights=weights, k=n_children)
    sid = 0
    evid = 0
    rrid = 0
    overdue = 0
    big_children = 0
    sample_uuids: list[str] = []
    sample_big: list[str] = []
    agent = "org.odk.collect.android/v2024.3.1"
    for eid in range(1, n_children + 1):
        county = county_of[eid - 1]
        vs = villages[county]
        if county == big:  # uneven villages too: the first ones of the big county are the largest
            village = vs[min(len(vs) - 1, int(rng.random() ** 1.5 * len(vs)))]
            big_children += 1
        else:
            village = vs[rng.randrange(len(vs))]
        uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        gender = "male" if rng.random() < 0.52 else "female"
        birth = TODAY - timedelta(days=rng.randint(400, 17 * 365))
        reg_day = TODAY - timedelta(days=rng.randint(10, 730))
        sex = "男" if gender == "male" else "女"
        surname = SURNAMES[rng.randrange(len(SURNAMES))]
        label = f"{surname}*（{sex}，{birth.isoformat()[:7]}，{village[-6:]}村）"
        props: dict[str, Any] = {
            "prefecture": village[:4], "county": village[:6], "township": village[:9], "village": village,
            "birth_date": birth.isoformat(), "gender": gender, "category": CATS[rng.randrange(len(CATS))],
            "status": "registered", "risk_level": "unassessed", "referral_status": "none",
            "registered_on": reg_day.isoformat(), "next_followup_due": (reg_day + timedelta(days=30)).isoformat(),
            "flag_reidentify": "no"}
        n_extra = int(extra_per_child) + (1 if rng.random() < extra_per_child - int(extra_per_child) else 0)
        kinds = ["child_registration"]
        rest = n_extra
        if rest and rng.random() < 0.9:
            kinds.append("identification")
            rest -= 1
        if rest and rng.random() < 0.45:
            kinds.append("assessment")
            rest -= 1
        if rest and rng.random() < 0.3:
            kinds.append("referral_followup")
            rest -= 1
        kinds += ["visit_record"] * rest
        span = max(1, (TODAY - reg_day).days)
        days = [reg_day] + sorted(reg_day + timedelta(days=rng.randint(1, span)) for _ in kinds[1:])
        if len(days) > 1 and rng.random() < 0.85:  # most files are worked on: the latest record is recent
            days[-1] = max(days[-2], TODAY - timedelta(days=rng.randint(0, min(span, 40))))
        version = 0
        vid_first = 0
        for kind, day in zip(kinds, days, strict=True):
            sid += 1
            version += 1
            form = info[kind]
            at = datetime(day.year, day.month, day.day, 2 + rng.randrange(10), rng.randrange(60), rng.randrange(60),
                          tzinfo=UTC)
            iid = f"uuid:{uuidlib.UUID(int=rng.getrandbits(128), version=4)}"
            varying: dict[str, Any] = {
                "grp_region/prefecture": village[:4], "grp_region/county": village[:6],
                "grp_region/township": village[:9], "grp_region/village": village, "today": day.isoformat()}
            received: dict[str, Any] = {}
            if kind == "child_registration":
                child_name = f"{surname}{GIVEN[rng.randrange(len(GIVEN))]}"
                guardian = f"{SURNAMES[rng.randrange(len(SURNAMES))]}{GIVEN[rng.randrange(len(GIVEN))]}"
                id_number = f"{village[:6]}{birth.strftime('%Y%m%d')}{rng.randrange(10000):04d}"
                varying.update({"grp_child/child_name": child_name, "grp_child/gender": gender,
                                "grp_age/birth_date": birth.isoformat(), "child_label": label,
                                form.keys.get("id_number", "id_number"): id_number,
                                form.keys.get("guardian_name", "guardian_name"): guardian})
                name, guardian, id_number, search_text = directory_facts(child_name, guardian, id_number)
                streams["child_directory"].row([eid, name, guardian, id_number, search_text, sid, at])
                received = dict(props)
                vid_first = eid
            else:
                varying["child"] = uid
                if kind == "identification":
                    st = STATUSES[rng.randrange(4)] if rng.random() < 0.7 else "registered"
                    varying.update({"visit_date": day.isoformat(), "id_result": st})
                    received = {"status": st, "last_identified": day.isoformat(), "id_score": str(rng.randint(0, 9)),
                                "next_followup_due": (day + timedelta(days=90)).isoformat()}
                elif kind == "assessment":
                    risk = RISKS[rng.randrange(4)]
                    varying.update({"grp_assessor/assessment_date": day.isoformat(), "grp_result/final_risk": risk})
                    received = {"risk_level": risk, "assess_score": str(rng.randint(0, 30)),
                                "last_assessed": day.isoformat(),
                                "next_followup_due": (day + timedelta(days=60)).isoformat()}
                elif kind == "referral_followup":
                    rtype = "referral" if rng.random() < 0.6 else "followup"
                    varying.update({"record_date": day.isoformat(), "record_type": rtype})
                    received = {"referral_status": "referred" if rtype == "referral" else "in_service",
                                "last_followup": day.isoformat(),
                                "next_followup_due": (day + timedelta(days=30)).isoformat()}
                else:
                    varying.update({"visit_date": day.isoformat()})
                    received = {"last_visit": day.isoformat(),
                                "next_followup_due": (day + timedelta(days=rng.choice((30, 60, 90)))).isoformat()}
                props.update(received)
            data_json = ("{" + json.dumps(varying, ensure_ascii=False, separators=(", ", ": "))[1:-1] + ", "
                         + form.const_json + "}")
            streams["submission"].row([sid, form.id, iid, at, at, collector_id if village == collector_village
                                       else None, "collect:bench", village, uid, "received", sid])
            xml = f'<data id="{kind}"><meta><instanceID>{iid}</instanceID></meta></data>'.encode()
            streams["submission_version"].row([sid, sid, form.id, form.version_id, iid, None, True,
                                               "\\x" + xml.hex(), hashlib.sha256(xml).hexdigest(), data_json, at,
                                               None, agent])
            if kind == "visit_record":
                for j in range(1 + (rng.random() < 0.3)):
                    rrid += 1
                    streams["submission_repeat_row"].row([
                        rrid, sid, "/data/interviews", j + 1,
                        '{"iv_role": "guardian", "iv_relation": "grandmother", "iv_method": "in_person", '
                        '"iv_summary": "家里情况稳定", "iv_concern": "no"}'])
            evid += 1
            streams["entity_version"].row([evid, eid, version, label,
                                           json.dumps(props, ensure_ascii=False, separators=(", ", ": ")),
                                           json.dumps(received, ensure_ascii=False, separators=(", ", ": ")), sid, sid,
                                           version - 1 if version > 1 else None,
                                           version - 1 if version > 1 else None, at])
        del vid_first
        closed = None
        if rng.random() < 0.03:
            props["status"] = "closed"
            closed = datetime(TODAY.year, TODAY.month, 1, tzinfo=UTC)
        if props["status"] != "closed" and props["next_followup_due"] < TODAY.isoformat():
            overdue += 1
        created = datetime(reg_day.year, reg_day.month, reg_day.day, 3, tzinfo=UTC)
        streams["entity"].row([eid, ds_id, uid, label, version,
                               json.dumps(props, ensure_ascii=False, separators=(", ", ": ")), village, created,
                               created + timedelta(days=(days[-1] - reg_day).days), closed,
                               "risk_resolved" if closed else None])
        if eid % 997 == 0 and len(sample_uuids) < 50:
            sample_uuids.append(uid)
        if county == big and len(sample_big) < 50 and rng.random() < 0.01:
            sample_big.append(uid)
        if eid % 100_000 == 0:
            print(f"#   {eid:,} children, {sid:,} submissions ({time.perf_counter() - t0:.0f} s)", flush=True)
    for st in streams.values():
        st.close()
    load_s = time.perf_counter() - t0
    print(f"# rows written by COPY in {load_s:.0f} s; indexes and constraints next", flush=True)
    t1 = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute("SET maintenance_work_mem = '1GB'")
        c.execute("SET max_parallel_maintenance_workers = 1")
        for stmt in saved:
            c.execute(stmt)
        for tbl, col in (("entity", "id"), ("entity_version", "id"), ("submission", "id"),
                         ("submission_version", "id"), ("submission_repeat_row", "id")):
            c.execute(f"SELECT setval(pg_get_serial_sequence('{tbl}', '{col}'), (SELECT max({col}) FROM {tbl}))")
    index_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    with rt.db.write() as s:
        s.execute(update(Dataset).where(Dataset.id == ds_id).values(revision=Dataset.revision + 1))
    with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    analyze_s = time.perf_counter() - t2
    meta = {"children": n_children, "submissions": sid, "repeat_rows": rrid, "entity_versions": evid,
            "big_county": big, "big_county_children": big_children, "collector_village": collector_village,
            "overdue": overdue, "sample_children": sample_uuids, "sample_big": sample_big,
            "setup_s": setup_s, "copy_s": load_s, "index_s": index_s, "analyze_s": analyze_s}
    with rt.db.write() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS bench_scale_meta (body text)"))
        s.execute(text("DELETE FROM bench_scale_meta"))
        s.execute(text("INSERT INTO bench_scale_meta (body) VALUES (:b)"), {"b": json.dumps(meta)})
    return meta


def read_meta(app: Any) -> dict[str, Any]:
    from sqlalchemy import text

    with app.extensions["carefile"].db.session() as s:
        return json.loads(s.execute(text("SELECT body FROM bench_scale_meta")).scalar_one())


# ------------------------------------------------------------------------------ measuring


def timed(fn: Callable[[], Any], runs: int, before: Callable[[], None] | None = None) -> dict[str, float]:
    t = time.perf_counter()
    fn()  # warm-up
    first = (time.perf_counter() - t) * 1000
    if first > 20_000:  # far off any target: one more run is enough to say so
        t = time.perf_counter()
        fn()
        second = (time.perf_counter() - t) * 1000
        return {"median": second, "min": min(first, second), "max": max(first, second)}
    samples = []
    for _ in range(runs):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


class Web:
    def __init__(self, app: Any, username: str) -> None:
        self.client = app.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        resp = self.client.post("/login", data={"csrf_token": csrf.group(1) if csrf else "", "username": username,
                                                "password": PASSWORD})
        assert resp.status_code in (302, 303), (username, resp.status_code)

    def get(self, url: str) -> Any:
        resp = self.client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        return resp


def measure(app: Any, servers: list[Pg], meta: dict[str, Any], runs: int, skip: set[str]) -> dict[str, Any]:
    from urllib.parse import quote

    from sqlalchemy import delete

    from app.models import DashboardRollup
    from app.services.children import lists as es
    from app.services.reports import rollup
    from app.web.children import today_local
    from tests.support.digest_client import DigestClient

    out: dict[str, Any] = {}
    admin, manager = Web(app, "province-admin"), Web(app, "county-manager")
    file_admin = meta["sample_children"][len(meta["sample_children"]) // 2]
    file_manager = meta["sample_big"][len(meta["sample_big"]) // 2]
    search_term = "扎*（女，2015"  # name pattern: a surname, sex and year of birth (what a manager types)
    rt = app.extensions["carefile"]
    # The dashboard computed live (no stored figures), then `carefile dashboard refresh`, then the
    # dashboard from the stored figures (app/services/rollup.py).
    with rt.db.write() as s:
        s.execute(delete(DashboardRollup))
    for who, web in (("admin", admin), ("manager", manager)):
        if f"dash_{who}_live" in skip:
            continue
        print(f"#   dash_{who}_live", flush=True)
        out[f"dash_{who}_live"] = timed(lambda w=web: w.get("/dashboard"), runs)
    if "dash_admin" not in skip or "dash_manager" not in skip:
        print("#   carefile dashboard refresh", flush=True)
        t = time.perf_counter()
        with rt.db.write() as s:
            out["refresh_codes"] = rollup.refresh(s, 1, today_local())
        out["refresh_s"] = time.perf_counter() - t
    for who, web, uid in (("admin", admin, file_admin), ("manager", manager, file_manager)):
        pages = {f"dash_{who}": "/dashboard", f"file_{who}": f"/children/{uid}",
                 f"search_{who}": f"/children?q={quote(search_term)}", f"overdue_{who}": "/children?overdue=1"}
        for key, page in pages.items():
            if key in skip:
                continue
            print(f"#   {key}", flush=True)
            out[key] = timed(lambda w=web, p=page: w.get(p), runs)
    if "search_admin_cold" not in skip:
        # "Whatever the cache holds": before each run the servers restart (the primary, and the standby with
        # --replica) and the OS drops its page cache (the warm-up run too), so every page the search needs
        # comes from the disk.
        print("#   search_admin_cold", flush=True)

        def cold() -> None:
            rt.db.dispose()  # the pooled connections die with the server
            restart_cold(servers)

        cold()
        out["search_admin_cold"] = timed(lambda: admin.get(f"/children?q={quote(search_term)}"), runs, before=cold)
    phone = DigestClient(app.test_client(), "village-collector", PASSWORD)
    url = "/v1/projects/1/forms/identification/attachments/children.csv"

    def csv() -> None:
        resp = phone.get(url, openrosa=False)
        assert resp.status_code == 200, resp.status_code
        out["csv_rows"] = resp.data.count(b"\n") - 1

    if "csv_collector" not in skip:
        out["csv_collector"] = timed(csv, runs, before=es._CSV_CACHE.clear)
        out["csv_collector_warm"] = timed(csv, runs)
    if "export_cold" not in skip:
        rt.db.dispose()
        restart_cold(servers)
        out["export_cold"] = export(app, meta["big_county"])
    if "export" not in skip:
        out["export"] = export(app, meta["big_county"])
    if "export_read" not in skip:
        out["export_read"] = export(app, meta["big_county"], read_only=True)
    return out


SERVED = {True: "standby (pg_is_in_recovery() true)", False: "primary"}


def export(app: Any, county: str, read_only: bool = False) -> dict[str, float]:
    """The CSV zip of one county's visit records, as an export job makes it (plan → renderer → file) on the
    session export jobs read with (`bulk_read`: the read replica when one is set). `read_only`: only the
    rows as the renderer gets them (Plan.records: the SQL pages and their decoding), in one process."""
    from sqlalchemy import select, text

    from app.models import User
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.parallel import processes_setting
    from app.services.exports.tabular import plan_for

    rt = app.extensions["carefile"]
    processes = processes_setting()
    with rt.db.bulk_read() as s:
        standby = bool(s.execute(text("SELECT pg_is_in_recovery()")).scalar())  # which server reads
        user = s.scalar(select(User).where(User.username == "province-admin"))
        plan = plan_for(s, 1, "visit_record", user, ExportOptions.parse({"format": "csvzip", "region": county}))
        rows = plan.count(s)
        if read_only:
            from sqlalchemy import event

            sql = [0.0]
            engine = s.get_bind()

            def before(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
                context._bench_t = time.perf_counter()

            def after(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
                sql[0] += time.perf_counter() - context._bench_t

            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            try:
                t = time.perf_counter()
                n = sum(1 for _ in plan.records(s))
                took = time.perf_counter() - t
            finally:
                event.remove(engine, "before_cursor_execute", before)
                event.remove(engine, "after_cursor_execute", after)
            print(f"#   read alone: {n:,} rows in {took:.1f} s, of which {sql[0]:.1f} s waiting for the SQL pages "
                  f"(execute + fetch), on the {SERVED[standby]}", flush=True)
            return {"rows": n, "seconds": took, "rate": n / took, "mb": 0.0, "processes": 1, "sql_s": sql[0],
                    "standby": standby}
        print(f"#   export of {rows:,} visit records of {county} ({processes} processes), on the {SERVED[standby]}",
              flush=True)
        with tempfile.TemporaryFile() as f:
            t = time.perf_counter()
            write_csvzip(plan, s, f, rt.store, processes=processes, total=rows)
            took = time.perf_counter() - t
            size = f.tell()
    return {"rows": rows, "seconds": took, "rate": rows / took, "mb": size / 1e6, "processes": processes,
            "standby": standby}


def report(meta: dict[str, Any], res: dict[str, Any], gen_s: float | None,
           replica: dict[str, Any] | None = None) -> str:
    lines = [f"PostgreSQL, {meta['children']:,} children, {meta['submissions']:,} submissions "
             f"({meta['entity_versions']:,} entity versions, {meta['repeat_rows']:,} repeat rows); largest county "
             f"{meta['big_county']} with {meta['big_county_children']:,} children; "
             f"{meta['overdue']:,} overdue follow-ups; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
             f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}.",
             f"Generation: set-up {meta['setup_s']:.0f} s, COPY {meta['copy_s']:.0f} s, indexes and constraints "
             f"{meta['index_s']:.0f} s, VACUUM ANALYZE {meta['analyze_s']:.0f} s"
             + (f" — {gen_s / 60:.1f} min in all." if gen_s else " (reused database).")]
    if replica:
        lines.append(
            "Read replica (--replica): a hot standby of the primary (pg_basebackup -R, streaming replication) on "
            "its own port with the same memory settings, set as READ_DATABASE_URL: the exports read from it, "
            "the pages from the primary. It runs on the same machine and shares its "
            f"{os.cpu_count()} CPUs, memory and disk, so it takes no work off the machine: it shows the long "
            "reads work through a standby at this scale. Standby "
            + (f"made afresh (base backup {replica['backup_s'] / 60:.1f} min)" if replica["backup_s"] is not None
               else "reused from an earlier run")
            + f"; before measuring it had replayed the primary's WAL up to the primary's position (waited "
            f"{replica['caught_up_s']:.1f} s).")
    lines += ["",
              "| measurement | target | measured (median, min–max) | met |", "|---|---:|---:|---|"]
    for key, what, target, kind in TARGETS:
        if key not in res:
            continue
        if replica:
            what = what.replace("server restarted", "primary and standby restarted")
        r = res[key]
        if kind == "rate":
            ok = r["rate"] >= target
            lines.append(f"| {what} ({r['rows']:,} submissions, {r['processes']} processes) | ≥ {target:,.0f}/s "
                         f"| {r['rate']:,.0f}/s ({r['seconds']:.1f} s, "
                         + (f"{r['sql_s']:.1f} s of it SQL" if "sql_s" in r else f"{r['mb']:.0f} MB")
                         + (("; read on the standby" if r["standby"] else "; read on the PRIMARY: the standby did "
                             "not answer") if replica else "")
                         + f") | {'met' if ok else 'NOT met'} |")
        else:
            ok = r["median"] < target
            lines.append(f"| {what} | < {target:,.0f} ms | {r['median']:,.0f} ms ({r['min']:,.0f}–{r['max']:,.0f}) | "
                         f"{'met' if ok else 'NOT met'} |")
    if "refresh_s" in res:
        lines.append(f"| `carefile dashboard refresh` ({res['refresh_codes']:,} region codes) | — | "
                     f"{res['refresh_s']:,.0f} s | — |")
    if "csv_collector_warm" in res:
        lines.append(f"| (children.csv warm, {res.get('csv_rows', 0)} rows) | — | "
                     f"{res['csv_collector_warm']['median']:.0f} ms | — |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=1_000_000)
    ap.add_argument("--submissions", type=int, default=5_000_000)
    ap.add_argument("--data-dir", type=Path, default=Path("/work/scale-data"),
                    help="PostgreSQL's folder, kept after the run (default /work/scale-data)")
    ap.add_argument("--reuse", action="store_true", help="measure the database made by an earlier run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--skip", default="", help="measurements to leave out, comma-separated: " + ", ".join(
        k for k, *_ in TARGETS))
    ap.add_argument("--cluster", action="store_true",
                    help="run `carefile cluster` (each county's records stored together) before measuring")
    ap.add_argument("--keep-running", action="store_true", help="leave the servers running (prints their URLs)")
    ap.add_argument("--replica", action="store_true",
                    help="a hot standby of the server (streaming replication) as the app's READ_DATABASE_URL: the "
                         "exports read from it; made with pg_basebackup, or reused")
    ap.add_argument("--replica-dir", type=Path, default=None,
                    help="the standby's folder, kept after the run (default: <data-dir>-replica)")
    args = ap.parse_args()
    import logging

    from tests.support.pgserver import wait_for_replay

    logging.disable(logging.WARNING)
    pg, wal_level_before = start_pg(args.data_dir, fresh=False, replica=args.replica)
    servers = [pg]
    replica: dict[str, Any] | None = None
    gen_s = None
    try:
        with tempfile.TemporaryDirectory(prefix="carefile-bench-scale-") as tmp:
            if not (args.reuse and database_exists(pg)):
                create_database(pg)
                t = time.perf_counter()
                app = make_app(pg.url(), Path(tmp))
                meta = generate(pg, app, args.children, args.submissions, args.seed)
                gen_s = time.perf_counter() - t
                print(f"# generation took {gen_s:.0f} s ({gen_s / 60:.1f} min)", flush=True)
            else:
                t = time.perf_counter()
                app = make_app(pg.url(), Path(tmp))  # also applies newer migrations (new indexes)
                with app.extensions["carefile"].db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("ANALYZE")  # statistics of new expression indexes
                print(f"# migrations and ANALYZE on the existing database: {time.perf_counter() - t:.0f} s",
                      flush=True)
                meta = read_meta(app)
            if args.cluster:
                from app.services.exports import layout

                t = time.perf_counter()
                layout.cluster_by_region(app.extensions["carefile"].db.engine, say=lambda m: print(f"#   {m}"))
                meta["cluster_s"] = time.perf_counter() - t
                print(f"# carefile cluster: {meta['cluster_s']:.0f} s", flush=True)
            if args.replica:
                # The standby once the data is there (a standby running during the generation would replay
                # every row of it); then the app again, with the standby as its read replica.
                app.extensions["carefile"].db.dispose()
                folder = args.replica_dir or args.data_dir.with_name(args.data_dir.name + "-replica")
                standby, backup_s = start_standby(pg, folder, wal_level_before, say=lambda m: print(f"# {m}",
                                                                                                     flush=True))
                servers.append(standby)
                app = make_app(pg.url(), Path(tmp), read_url=standby.url())
                caught_up_s = wait_for_replay(pg.url(), standby.url(), timeout=900)
                print(f"# standby on port {standby.port}: replayed up to the primary's position ({caught_up_s:.1f} s)",
                      flush=True)
                replica = {"backup_s": backup_s, "caught_up_s": caught_up_s}
            res = measure(app, servers, meta, args.runs, set(filter(None, args.skip.split(","))))
            print(report(meta, res, gen_s, replica), flush=True)
            app.extensions["carefile"].db.dispose()
    finally:
        if args.keep_running:
            for server, what in zip(servers, ("server", "standby"), strict=False):
                print(f"# {what} left running: {server.url()} (stop: pg_ctl -D {server.datadir / 'data'} stop)")
        else:
            for server in reversed(servers):  # the standby first
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
