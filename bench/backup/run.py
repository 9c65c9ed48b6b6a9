#!/usr/bin/env python3
"""Backup benchmark: how long `carefile backup`, `backup verify` and `restore` take per 100,000 submissions.

    .venv/bin/python bench/backup/run.py                         # SQLite, 100,000 submissions, 2,000 photos
    .venv/bin/python bench/backup/run.py --backend postgresql    # the same on a throw-away PostgreSQL
    .venv/bin/python bench/backup/run.py --n 20000 --photos 500  # quicker

Generates the data set with bench/export's form and values (bulk inserts; each submission with a
~2.5 KB raw XML, 3 repeat rows) plus PHOTOS unique 100 KB photos referenced by submissions, then runs
each command as an operator would (the `carefile` CLI in a subprocess): a full backup, a second
(incremental) backup, verify, an encrypted backup, and a restore into an empty database and folder.
Prints wall seconds and sizes; everything lives in a temporary folder removed at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.export.run import form_md, values  # noqa: E402

CAREFILE = Path(sys.executable).parent / "carefile"
PHOTO_BYTES = 100 * 1024


def populate(url: str, data_dir: Path, n: int, photos: int) -> float:
    from sqlalchemy import insert, update

    from app import create_app
    from app.models import Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion
    from app.services import forms
    from app.services.identity import users
    from app.services.ops import setup

    app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url, "STORAGE_URL": str(data_dir / "blobs"),
                      "ODK_VALIDATE": "off", "SECRET_KEY": "bench", "XLSFORMS_DIR": str(data_dir / "none"),
                      "EXPORT_WORKER": "false"})
    rt = app.extensions["carefile"]
    setup.init_schema(rt)
    with rt.db.write() as s:
        res = forms.publish_form(s, rt.store, project_id=1, data=form_md().encode(), filename="bench.md")
        form_id, fv_id = res.form.id, res.version.id
        users.create_user(s, project_id=1, username="bench-admin", role="admin", password="bench-password-1",
                          realm=rt.config["DIGEST_REALM"])
    rng = random.Random(7)
    start = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    filler = "".join(f"<q{i}>answer {i} with some words of text</q{i}>" for i in range(60)).encode()
    photo_every = max(1, n // photos) if photos else 0
    for lo in range(0, n, 5000):
        subs, vers, reps, atts = [], [], [], []
        for i in range(lo, min(n, lo + 5000)):
            sid = i + 1
            iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            at = base + timedelta(seconds=i * 30)
            data = values(i, rng)
            xml = b"<data>" + filler + iid.encode() + b"</data>"
            subs.append({"id": sid, "form_id": form_id, "instance_id": iid, "created_at": at, "updated_at": at,
                         "region_code": data["grp_region/village"], "review_state": "received"})
            vers.append({"id": sid, "submission_id": sid, "form_id": form_id, "form_version_id": fv_id,
                         "instance_id": iid, "current": True, "xml": xml,
                         "xml_sha256": hashlib.sha256(xml).hexdigest(), "received_at": at, "data": data})
            for j in range(3):
                reps.append({"id": sid * 3 + j, "version_id": sid, "repeat": "/data/contacts", "ordinal": j + 1,
                             "parent_id": None, "data": {"c_name": f"联系人{j}", "c_rel": "mother", "c_age": 30 + j}})
            if photo_every and i % photo_every == 0 and len(atts) + lo // photo_every < photos:
                import io

                info = rt.store.put(io.BytesIO(os.urandom(PHOTO_BYTES)))
                atts.append({"version_id": sid, "name": "photo.jpg", "blob_key": info.key, "md5": info.md5,
                             "size": info.size, "content_type": "image/jpeg", "received_at": at})
        with rt.db.write() as s:
            s.execute(insert(Submission), subs)
            s.execute(insert(SubmissionVersion), vers)
            s.execute(insert(SubmissionRepeatRow), reps)
            if atts:
                s.execute(insert(SubmissionAttachment), atts)
            s.execute(update(Submission), [{"id": v["id"], "current_version_id": v["id"]} for v in vers])
    took = time.perf_counter() - start
    rt.db.dispose()
    return took


def carefile(env: dict[str, str], *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(CAREFILE), *args], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"carefile {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout.strip()


def du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--photos", type=int, default=2000, help="unique 100 KB photos (default 2000)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="carefile-bench-backup-"))
    server = None
    try:
        if args.backend == "postgresql":
            from sqlalchemy import create_engine, text

            from tests.support.pgserver import start_postgres

            server = start_postgres()
            admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text("CREATE DATABASE bench"))
                c.execute(text("CREATE DATABASE restored"))
            admin.dispose()
            url, restored_url = server.url("bench"), server.url("restored")
        else:
            url = f"sqlite:///{tmp / 'data' / 'carefile.db'}"
            restored_url = f"sqlite:///{tmp / 'restored' / 'carefile.db'}"
        took = populate(url, tmp / "data", args.n, args.photos)
        print(f"{args.backend}: generated {args.n:,} submissions, {args.photos:,} photos in {took:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
        env.update(CAREFILE_DATA_DIR=str(tmp / "data"), CAREFILE_DATABASE_URL=url,
                   CAREFILE_STORAGE_URL=str(tmp / "data" / "blobs"), CAREFILE_SECRET_KEY="bench",
                   CAREFILE_EXPORT_WORKER="false")
        rows = []
        t, out = carefile(env, "backup", str(tmp / "bk"), "--unencrypted")
        rows.append(("backup (first, full)", t, out))
        t, out = carefile(env, "backup", str(tmp / "bk"), "--unencrypted")
        rows.append(("backup (second, incremental)", t, out))
        t, out = carefile(env, "backup", "verify", str(tmp / "bk"))
        rows.append(("backup verify", t, out))
        passfile = tmp / "passphrase"
        passfile.write_text("bench passphrase\n")
        t, out = carefile(env, "backup", str(tmp / "bk-enc"), "--passphrase-file", str(passfile))
        rows.append(("backup --passphrase-file (first, full)", t, out))
        renv = dict(env, CAREFILE_DATA_DIR=str(tmp / "restored"), CAREFILE_DATABASE_URL=restored_url,
                    CAREFILE_STORAGE_URL=str(tmp / "restored" / "blobs"))
        t, out = carefile(renv, "restore", str(tmp / "bk"))
        rows.append(("restore", t, out))
        print(f"backup folder: {du(tmp / 'bk'):.0f} MB; encrypted: {du(tmp / 'bk-enc'):.0f} MB")
        for name, t, out in rows:
            print(f"{name:36} {t:7.1f} s   {out.splitlines()[-1][:150]}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0




if __name__ == "__main__":
    sys.exit(main())
