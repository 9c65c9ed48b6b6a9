"""The `carefile` command."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from app import create_app, problems
from app.errors import Problem
from app.runtime import Runtime

_OPENED: list[Runtime] = []


def _runtime() -> Runtime:
    app = create_app()
    rt: Runtime = app.extensions["carefile"]
    _OPENED.append(rt)  # closed when the command ends (main)
    return rt


def cmd_init(args: argparse.Namespace) -> int:
    from app.services.ops import setup

    rt = _runtime()
    setup.init_schema(rt)
    print(f"Database ready: {rt.db.engine.url.render_as_string(hide_password=True)}")
    directory = Path(args.forms or rt.config["XLSFORMS_DIR"])
    failed = 0
    if directory.is_dir():
        for outcome in setup.publish_directory(rt, directory):
            mark = "ok " if outcome.ok else "ERR"
            print(f"[{mark}] {outcome.path.name}: {outcome.message}")
            for w in outcome.warnings:
                print(f"      warning: {w}")
            failed += not outcome.ok
    else:
        print(f"No form folder at {directory}; no forms published.")
    return 1 if failed else 0


def forwarded_ips(cfg: dict[str, Any]) -> str:
    """gunicorn's forwarded_allow_ips: nobody unless CAREFILE_TRUST_PROXY is on (gunicorn's default would
    trust X-Forwarded-Proto from 127.0.0.1, so any local process could make plain http pass as https).
    With the setting on: FORWARDED_ALLOW_IPS if set, else a proxy on this host."""
    import os

    if not cfg["TRUST_PROXY"]:
        return ""
    return os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"


def cmd_serve(args: argparse.Namespace) -> int:
    from app.config import load_config
    from app.ops import serving
    from app.services.ops import setup

    # Before anything imports prometheus_client: every gunicorn worker then writes its metrics there.
    serving.prepare_metrics_dir(load_config()["DATA_DIR"])
    rt = _runtime()
    setup.init_schema(rt)
    from app.migrate import first_start_lock
    from app.models import Form
    with first_start_lock(rt.db.engine):  # nodes starting together: one publishes the shipped forms
        with rt.db.session() as session:
            has_forms = session.query(Form.id).first() is not None
        if not has_forms and Path(rt.config["XLSFORMS_DIR"]).is_dir():
            for outcome in setup.publish_directory(rt, Path(rt.config["XLSFORMS_DIR"])):
                print(f"{'published' if outcome.ok else 'FAILED'} {outcome.path.name}: {outcome.message}")
    rt.db.dispose()
    forwarded_allow_ips = forwarded_ips(rt.config)
    urls = serving.phone_urls(args.host, args.port, rt.config["PUBLIC_URL"])
    print(f"CareFile listening on {args.host}:{args.port}")
    for url in urls:
        print(f"  website: {url}/    Collect server URL: {url}/v1/projects/1")
    extra = serving.gunicorn_settings(rt.config)
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", 120)
            for key, value in extra.items():
                self.cfg.set(key, value)
            # Forwarded headers only with CAREFILE_TRUST_PROXY (gunicorn trusts 127.0.0.1 by default).
            self.cfg.set("forwarded_allow_ips", forwarded_allow_ips)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn ≥ 24: no shared ~/.gunicorn socket
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return create_app()

    Server().run()
    return 0


def cmd_form_publish(args: argparse.Namespace) -> int:
    from app.services.ops import setup

    rt = _runtime()
    setup.init_schema(rt)
    failed = 0
    for f in args.files:
        path = Path(f)
        if not path.is_file():
            print(f"ERROR {f}: no such file", file=sys.stderr)
            failed += 1
            continue
        outcome = setup.publish_file(rt, path, args.project)
        if outcome.ok:
            print(outcome.message)
            for w in outcome.warnings:
                print(f"  warning: {w}")
        else:
            print(f"ERROR {path.name}: {outcome.message}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_form_list(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.session() as session:
        for form in form_service.list_forms(session, args.project):
            fv = form.current_version
            missing = form_service.missing_attachments(fv) if fv else []
            print(f"{form.xml_form_id:24} {form.state:8} v{fv.version if fv else '-':16} "
                  f"{fv.title if fv else ''}" + (f"  missing files: {', '.join(missing)}" if missing else ""))
    return 0


def cmd_form_state(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.write() as session:
        form = form_service.get_form(session, args.project, args.form_id)
        form_service.set_state(session, form, args.state, user=None)
    print(f"{args.form_id}: {args.state}")
    return 0


def cmd_form_attach(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.write() as session:
        form = form_service.get_form(session, args.project, args.form_id)
        assert form.current_version is not None
        for f in args.files:
            path = Path(f)
            with path.open("rb") as fh:
                att = form_service.upload_attachment(session, rt.store, form.current_version, path.name, fh,
                                                     rt.config["MAX_UPLOAD_BYTES"], user=None)
            print(f"{att.filename}: stored ({att.size} bytes)")
        missing = form_service.missing_attachments(form.current_version)
    if missing:
        print(f"Still missing: {', '.join(missing)}")
    return 0


def cmd_regions_load(args: argparse.Namespace) -> int:
    from app.services import regions

    rt = _runtime()
    report = regions.load_file(Path(args.file).read_bytes(), rt.config["DATA_DIR"])
    counts = ", ".join(f"{n} {level}" for level, n in report.counts.items())
    print(f"Province {report.province} {'replaced' if report.replaced else 'added'}: {counts} ({report.path})")
    return 0


def cmd_regions_find(args: argparse.Namespace) -> int:
    from app.services import regions

    _runtime()  # reads the provinces loaded into the data folder too
    found = regions.search(args.query, limit=args.limit)
    for r in found:
        print(f"{r.code:<12}  {regions.full_name(r.code, skip_province=False)}")
    if not found:
        print(f"No place matches '{args.query}'.", file=sys.stderr)
    return 0 if found else 1


def cmd_blobs_sweep(args: argparse.Namespace) -> int:
    from app.services.ops import blobs

    rt = _runtime()
    removed = blobs.sweep_orphans(rt.db, rt.store, grace_seconds=args.grace, dry_run=args.dry_run)
    print(f"{'Would remove' if args.dry_run else 'Removed'} {len(removed)} orphan blob(s).")
    return 0


def _passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    """The passphrase from stdin (--passphrase-stdin, first line) or typed at a prompt; never an argument
    (it would be visible in the process list and the shell history)."""
    if args.passphrase_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Passphrase again: ") != first:
        raise problems.TWO_PASSPHRASES_DIFFER()
    return first


def cmd_form_encrypt(args: argparse.Namespace) -> int:
    from app.services import forms as form_service
    from app.services.forms import encryption

    rt = _runtime()
    passphrase = _passphrase(args, confirm=True)
    with rt.db.write() as session:
        form = form_service.get_form(session, args.project, args.form_id) if args.form_id else None
        admin = _cli_admin(args.project)
        result = encryption.enable(session, rt.store, project_id=args.project, user=admin, passphrase=passphrase,
                                   hint=args.hint or "", form=form)
        key_id = result.key.id
    for f in result.encrypted:
        print(f"{f}: encrypted (new version published; phones get it on their next form update)")
    for f, why in result.skipped.items():
        reason = "creates or updates entities" if why == "entities" else "already encrypted with its own key"
        print(f"{f}: left unencrypted ({reason})")
    print(f"Managed key {key_id}. Keep the passphrase safe: without it nobody can read the encrypted submissions.")
    return 0


def _cli_admin(project: int) -> Any:
    """The operator at the command line acts as an administrator (a transient user, never stored)."""
    from app.models import User

    return User(username="carefile-cli", role="admin", active=True, project_id=project)


def cmd_export(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from app.models import Form, SubmissionVersion
    from app.services.exports import ExportOptions, decrypt
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.tabular import plan_for
    from app.services.forms import keys
    from forms.encryption import EncryptionError, load_private_key

    rt = _runtime()
    if args.private_key:
        try:
            private_key = load_private_key(Path(args.private_key).read_bytes())
        except (OSError, EncryptionError) as err:
            print(f"Error: {getattr(err, 'message', err)}", file=sys.stderr)
            return 1
    out = Path(args.output)
    tmp = out.with_name(out.name + ".part")

    def report(issue: decrypt.DecryptIssue) -> None:
        state = "decrypted, attachment missing" if issue.decrypted else "NOT decrypted"
        print(f"{issue.instance_id}: {state}: {issue.message}", file=sys.stderr)

    with rt.db.bulk_read() as session:  # the read replica when there is one
        options = ExportOptions.parse({"format": "csvzip", "media": not args.no_media, "sensitive": True})
        plan = plan_for(session, args.project, args.form_id, _cli_admin(args.project), options)
        form = session.get(Form, plan.form.id)
        encrypted = session.scalar(select(SubmissionVersion.id).where(
            SubmissionVersion.form_id == plan.form.id, SubmissionVersion.encrypted_file.is_not(None)).limit(1))
        row = keys.form_key(session, form) if form is not None and not args.private_key else None
        if not args.private_key and row is None:
            if encrypted is not None:
                print(f"Error: the form '{args.form_id}' has encrypted submissions and no managed key on this "
                      "server; give --private-key KEY.pem.", file=sys.stderr)
                return 1
            with tmp.open("wb") as fh:  # nothing encrypted: the plain export
                write_csvzip(plan, session, fh, rt.store)
            tmp.replace(out)
            print(f"{out}: written (the form has no encrypted submissions).")
            return 0
        if row is not None:
            private_key = keys.unlock(rt.db, row, _passphrase(args), "cli")
        with tmp.open("wb") as fh:
            dec = decrypt.write_decrypted_csvzip(session, rt.store, plan, private_key, fh, report)
    tmp.replace(out)
    late = f" ({len(dec.notes)} with attachments not yet arrived)" if dec.notes else ""
    print(f"{out}: {dec.decrypted} record(s) decrypted{late}, {len(dec.issues)} not decrypted.")
    return 1 if dec.issues else 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from app.services.ops import retention

    rt = _runtime()
    years = args.years if args.years is not None else int(rt.config["RETENTION_YEARS"])
    if years < 1:
        raise problems.RETENTION_TOO_SHORT()
    now = datetime.fromisoformat(args.now) if args.now else None
    if now is not None and now.tzinfo is None:
        from datetime import UTC

        now = now.replace(tzinfo=UTC)
    with rt.db.write() as session:
        report = retention.run(session, now=now, years=years, dry_run=args.dry_run)
    if not args.dry_run:
        with rt.db.session() as session:
            retention.delete_blobs(session, rt.store, report)
    for line in report.lines():
        print(line)
    return 0


def cmd_dashboard_refresh(args: argparse.Namespace) -> int:
    """Store the dashboard's figures per region code for today (app.services.rollup); run it from cron."""
    import time as _time
    from datetime import date, datetime

    from app.services.answers import LOCAL_TZ
    from app.services.reports import rollup

    rt = _runtime()
    today = date.fromisoformat(args.day) if args.day else datetime.now(LOCAL_TZ).date()
    started = _time.perf_counter()
    with rt.db.write() as session, rt.db.bulk_read() as source:  # reads off the primary when a replica is set
        n = rollup.refresh(session, args.project, today, source=source)
    print(f"Dashboard figures for {today}: {n} region code(s) in {_time.perf_counter() - started:.1f} s.")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    """Store each county's records together (PostgreSQL CLUSTER; app.services.exports.layout)."""
    from app.services.exports import layout

    rt = _runtime()
    took = layout.cluster_by_region(rt.db.engine)
    if took:
        print(f"Records stored in (form, county, received) order in {sum(took.values()):.0f} s.")
    return 0


def _progress(enabled: bool) -> Any:
    """A progress callback drawing a bar on stderr (only on a terminal, or with --progress)."""
    def draw(stage: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        sys.stderr.write(f"\r{stage:9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def quiet(stage: str, done: int, total: int) -> None:
        return None

    return draw if enabled or sys.stderr.isatty() else quiet


def _backup_passphrase(args: argparse.Namespace) -> str | None:
    """The backup passphrase: --passphrase-file (its first line), --passphrase-stdin, CAREFILE_BACKUP_PASSPHRASE,
    or --passphrase (kept for old scripts: it shows in the process list). None when none is given."""
    if args.passphrase_file:
        try:
            with open(args.passphrase_file, encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise problems.BACKUP_PASSPHRASE_FILE_UNREADABLE(path=args.passphrase_file, reason=exc.strerror) from None
        if not first:
            raise problems.BACKUP_PASSPHRASE_FILE_EMPTY(path=args.passphrase_file)
        return first
    if args.passphrase_stdin:
        first = sys.stdin.readline().rstrip("\r\n")
        if not first:
            raise problems.BACKUP_PASSPHRASE_STDIN_EMPTY()
        return first
    if args.passphrase:
        print("Warning: --passphrase shows in the process list and the shell history; use --passphrase-file, "
              "--passphrase-stdin or CAREFILE_BACKUP_PASSPHRASE.", file=sys.stderr)
        return str(args.passphrase)
    return os.environ.get("CAREFILE_BACKUP_PASSPHRASE") or None


def _destination(args: argparse.Namespace, rt: Runtime, create: bool) -> Any:
    from app.services.ops.backup import open_destination
    from app.services.ops.target import open_target

    passphrase = _backup_passphrase(args)
    if create and passphrase is None and not args.unencrypted:
        raise problems.BACKUP_PASSPHRASE_MISSING()
    if create and passphrase is not None and args.unencrypted:
        raise problems.BACKUP_UNENCRYPTED_WITH_PASSPHRASE()
    return open_destination(open_target(args.dest, rt.config), passphrase, create)


def cmd_backup(args: argparse.Namespace) -> int:
    from app.services.ops.backup import run_backup, verify
    from app.services.ops.target import BackupError

    if args.dest == "verify":
        if not args.more:
            print("Usage: carefile backup verify DEST", file=sys.stderr)
            return 2
        args.dest = args.more[0]
        rt = _runtime()
        try:
            report = verify(_destination(args, rt, create=False), args.snapshot, _progress(args.progress))
        except BackupError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        for problem in report.problems:
            print(f"PROBLEM {problem}")
        print(f"Snapshot {report.snapshot}: database and {report.blobs_checked} file(s) checked, "
              + ("all checksums match." if report.ok else f"{len(report.problems)} problem(s)."))
        return 0 if report.ok else 1
    if args.more:
        print(f"Unexpected arguments: {' '.join(args.more)}", file=sys.stderr)
        return 2
    rt = _runtime()
    try:
        summary = run_backup(rt.db.engine, rt.store, _destination(args, rt, create=True), _progress(args.progress))
    except BackupError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"Backup {summary.snapshot} written to {args.dest}: database {summary.database_bytes} bytes, "
          f"{summary.blobs} file(s), {summary.blobs_copied} new ({summary.bytes_copied} bytes), "
          f"{summary.seconds:.1f} s.")
    if summary.missing_from_store:
        print(f"WARNING: {len(summary.missing_from_store)} file(s) the database refers to are missing from the "
              f"blob store and are not in the backup: {', '.join(summary.missing_from_store[:5])}",
              file=sys.stderr)
        return 1
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.services.ops.restore import run_restore
    from app.services.ops.target import BackupError

    rt = _runtime()
    try:
        summary = run_restore(rt.db.engine, rt.store, _destination(args, rt, create=False), args.snapshot,
                              _progress(args.progress))
    except BackupError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"Restored snapshot {summary.snapshot}: database {summary.database_bytes} bytes and {summary.blobs} "
          f"file(s), row counts match. Start the server with the same settings (carefile serve).")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from app.db import Database
    from app.runtime import make_store
    from app.services.ops.target import BackupError
    from app.services.ops.transfer import transfer

    rt = _runtime()
    dst_db = Database(args.to_database)
    _OPENED.append(Runtime(config=rt.config, db=dst_db, store=rt.store))  # disposed at the end
    dst_store = make_store({**rt.config, "STORAGE_URL": args.to_storage})
    try:
        report = transfer(rt.db.engine, rt.store, dst_db.engine, dst_store, _progress(args.progress))
    except BackupError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    for table, n in report.counts.items():
        print(f"  {table:24} {n:>10} rows")
    print(f"  files: {report.blobs} ({report.blob_bytes} bytes), each checked against its sha256")
    for form, sha in report.exports.items():
        print(f"  export {form}: identical before and after (sha256 {sha[:16]}…)")
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    if not report.ok:
        print("The copy is NOT proven; keep using the old deployment.", file=sys.stderr)
        return 1
    print(f"Transferred and proven. Now run with CAREFILE_DATABASE_URL={dst_db.engine.url.render_as_string()} "
          f"CAREFILE_STORAGE_URL={args.to_storage}.")
    return 0


def _passphrase_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--passphrase-file", metavar="FILE",
                   help="the backup's passphrase: the first line of FILE (AES-256-GCM, key by scrypt)")
    s.add_argument("--passphrase-stdin", action="store_true", help="read the passphrase from standard input")
    s.add_argument("--passphrase", help=argparse.SUPPRESS)  # old scripts; visible in `ps`: warned against


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="carefile", description="CareFile form server")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="create or upgrade the schema and publish the forms in xlsforms/")
    s.add_argument("--forms", help="folder of XLSForms (default: CAREFILE_XLSFORMS_DIR)")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("serve", help="run the server (gunicorn), initialising on first run")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    # Sync workers (one request at a time each) were measured faster than threaded ones on a quiet machine
    # (GIL contention), and one per CPU gave the shortest tail (more workers than CPUs: p95 > 3 x p50);
    # docs/benchmarks.md. Behind a buffering proxy slow phones do not hold a worker.
    s.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 1),
                   help="gunicorn worker processes (default: one per CPU, at least 2)")
    s.add_argument("--threads", type=int, default=1, help="threads per worker (default 1: sync workers)")
    s.set_defaults(func=cmd_serve)

    form = sub.add_parser("form", help="forms").add_subparsers(dest="form_command", required=True)
    s = form.add_parser("publish", help="publish XLSForms (a new form or a new version)")
    s.add_argument("files", nargs="+")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_form_publish)
    s = form.add_parser("list", help="list forms")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_form_list)
    s = form.add_parser("state", help="open, closing (hidden from phones, still accepts) or closed")
    s.add_argument("form_id")
    s.add_argument("state", choices=["open", "closing", "closed"])
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_form_state)
    s = form.add_parser("attach", help="upload media/CSV files the form references")
    s.add_argument("form_id")
    s.add_argument("files", nargs="+")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_form_attach)
    from app import cli_drafts

    cli_drafts.add_commands(form)

    s = form.add_parser("encrypt", help="turn on managed encryption for a form (or, without FORM_ID, the project)")
    s.add_argument("form_id", nargs="?")
    s.add_argument("--hint", help="a passphrase hint shown when the passphrase is asked for")
    s.add_argument("--passphrase-stdin", action="store_true", help="read the passphrase from standard input")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_form_encrypt)

    s = sub.add_parser("export", help="CSV zip of a form with encrypted submissions decrypted")
    s.add_argument("form_id")
    s.add_argument("--private-key", help="the form's RSA private key (PEM) for self-supplied keys")
    s.add_argument("--passphrase-stdin", action="store_true", help="managed key: read the passphrase from stdin")
    s.add_argument("--output", required=True, help="the .zip file to write")
    s.add_argument("--no-media", action="store_true", help="leave out the (decrypted) photos and files")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_export)

    from app import cli_trash, cli_users

    cli_users.add_commands(sub)

    reg = sub.add_parser("regions", help="the division table (places)").add_subparsers(dest="regions_command",
                                                                                       required=True)
    s = reg.add_parser("load", help="add a province's division table (CSV: code,name)")
    s.add_argument("file")
    s.set_defaults(func=cmd_regions_load)
    s = reg.add_parser("find", help="find places by name or code prefix")
    s.add_argument("query")
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=cmd_regions_find)

    blobs = sub.add_parser("blobs", help="blob storage").add_subparsers(dest="blobs_command", required=True)
    s = blobs.add_parser("sweep", help="delete blobs no row refers to")
    s.add_argument("--grace", type=int, default=3600, help="keep blobs younger than this many seconds")
    s.add_argument("--dry-run", action="store_true")
    s.set_defaults(func=cmd_blobs_sweep)

    ret = sub.add_parser("retention", help="retention of closed care files").add_subparsers(
        dest="retention_command", required=True)
    s = ret.add_parser("run", help="anonymise closed files older than CAREFILE_RETENTION_YEARS")
    s.add_argument("--dry-run", action="store_true", help="report what would be anonymised; change nothing")
    s.add_argument("--years", type=int, help="override CAREFILE_RETENTION_YEARS")
    s.add_argument("--now", help="ISO date-time taken as now (for tests and catching up)")
    s.set_defaults(func=cmd_retention_run)
    cli_trash.add_commands(sub)
    dashboard = sub.add_parser("dashboard", help="the managers' dashboard").add_subparsers(
        dest="dashboard_command", required=True)
    s = dashboard.add_parser("refresh", help="store the dashboard's figures per region for today (run from cron "
                                             "on large databases; used for CAREFILE_DASHBOARD_MAX_AGE seconds)")
    s.add_argument("--project", type=int, default=1)
    s.add_argument("--day", help=argparse.SUPPRESS)  # the local day (tests)
    s.set_defaults(func=cmd_dashboard_refresh)
    s = sub.add_parser("cluster", help="PostgreSQL: rewrite the records in (form, county, received) order so a "
                                       "county's export reads them together; locks the tables while it runs "
                                       "(run it at night, again from time to time)")
    s.set_defaults(func=cmd_cluster)
    s = sub.add_parser("backup", help="write a consistent backup to DEST (a folder or s3://bucket/prefix); "
                                      "`backup verify DEST` checks one")
    s.add_argument("dest", help="a folder or s3://bucket/prefix (or `verify`, then DEST)")
    s.add_argument("more", nargs="*", help=argparse.SUPPRESS)
    _passphrase_arguments(s)
    s.add_argument("--unencrypted", action="store_true",
                   help="write the backup unencrypted (the default is encrypted: a passphrase is required)")
    s.add_argument("--snapshot", help="verify: the snapshot to check (default: the newest)")
    s.add_argument("--progress", action="store_true", help="draw progress bars even when stderr is not a terminal")
    s.set_defaults(func=cmd_backup)
    s = sub.add_parser("restore", help="fill an empty database and blob store from a backup")
    s.add_argument("dest", help="the backup: a folder or s3://bucket/prefix")
    _passphrase_arguments(s)
    s.add_argument("--snapshot", help="the snapshot to restore (default: the newest)")
    s.add_argument("--progress", action="store_true", help="draw progress bars even when stderr is not a terminal")
    s.set_defaults(func=cmd_restore)
    s = sub.add_parser("transfer", help="move this deployment to another database and blob store, and prove the copy")
    s.add_argument("--to-database", required=True, help="an empty database: postgresql+psycopg://user:pw@host/db")
    s.add_argument("--to-storage", required=True, help="an empty blob store: s3://bucket/prefix or a folder")
    s.add_argument("--progress", action="store_true", help="draw progress bars even when stderr is not a terminal")
    s.set_defaults(func=cmd_transfer)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except Problem as problem:
        print(f"Error: {problem.message}", file=sys.stderr)
        return 1
    except OperationalError as exc:  # a fresh data folder, or the database is down
        missing = "no such table" in str(exc) or ("relation" in str(exc) and "does not exist" in str(exc))
        print("Error: the database has no CareFile tables yet: run `carefile init` first." if missing else
              f"Error: the database cannot be reached ({str(exc.orig).strip().splitlines()[0][:200]}). "
              "Check CAREFILE_DATABASE_URL and that the server is running.", file=sys.stderr)
        return 1
    finally:
        while _OPENED:
            _OPENED.pop().db.dispose()


if __name__ == "__main__":
    sys.exit(main())
