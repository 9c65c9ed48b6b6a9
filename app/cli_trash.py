"""`carefile purge`: empty the trash of entities and submissions deleted 30 or more days ago (as Central's
purge task; run it daily from cron). `--force` purges everything in the trash at once; the other options
narrow it to a project, an entity list or entity, a form or submission (app/services/ops/purge.py)."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any


def _runtime() -> Any:
    from app.cli import _runtime as open_runtime

    return open_runtime()


def cmd_purge(args: argparse.Namespace) -> int:
    from app.services.ops import purge

    rt = _runtime()
    now = datetime.fromisoformat(args.now) if args.now else None
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    with rt.db.write() as session:
        report = purge.run(session, now=now, force=args.force, mode=args.mode, project_id=args.project,
                           dataset=args.dataset, entity_uuid=args.entity, xml_form_id=args.form,
                           instance_id=args.instance)
    with rt.db.session() as session:
        purge.delete_blobs(session, rt.store, report)
    print(report.line() + ".")
    return 0


def add_commands(sub: Any) -> None:
    s = sub.add_parser("purge", help="remove entities and submissions deleted 30 or more days ago (run it daily "
                                     "from cron); --force: everything in the trash now")
    s.add_argument("-f", "--force", action="store_true", help="purge what was deleted less than 30 days ago too")
    s.add_argument("-m", "--mode", default="all", choices=("all", "entities", "submissions"))
    s.add_argument("-p", "--project", type=int, help="only this project")
    s.add_argument("-d", "--dataset", help="only this entity list (with --project)")
    s.add_argument("-e", "--entity", help="only this entity (with --project and --dataset)")
    s.add_argument("-x", "--form", help="only this form's submissions (with --project)")
    s.add_argument("-s", "--instance", help="only this submission (with --project and --form)")
    s.add_argument("--now", help=argparse.SUPPRESS)  # ISO date-time taken as now (tests)
    s.set_defaults(func=cmd_purge)
