"""`carefile form draft …`, `form versions`, `form download`, `form compare`: drafts and versions from the
command line (the same services as the web pages).

`carefile form publish` keeps publishing straight to phones (scripts and `carefile init` rely on it);
`carefile form draft FILE` makes the draft instead, to try it with its test QR code first.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

from app.errors import Problem


def _runtime() -> Any:
    from app.cli import _runtime as open_runtime

    return open_runtime()


def _form(session: Any, project_id: int, xml_form_id: str) -> Any:
    from app.services import forms as form_service

    return form_service.get_form(session, project_id, xml_form_id)


def _test_url(public: str, token: str, form: Any) -> str:
    from urllib.parse import quote

    return (f"{public.rstrip('/')}/v1/test/{quote(token, safe='')}/projects/{form.project_id}/forms/"
            f"{quote(form.xml_form_id, safe='')}/draft")


def _print_qr(url: str, title: str) -> None:
    import segno

    from app.services.identity import collect

    settings = collect.collect_settings(url, f"Test: {title}")
    settings["general"]["form_update_mode"] = "manual"
    settings["general"]["autosend"] = "off"
    buf = io.StringIO()
    segno.make(collect.encode_settings(settings), error="l").terminal(out=buf, compact=True)
    print("Scan this in ODK Collect (Configure with QR code) to try the draft:")
    print(buf.getvalue())


def cmd_draft(args: argparse.Namespace) -> int:
    from app.services import forms as form_service
    from app.services.ops import setup

    rt = _runtime()
    setup.init_schema(rt)
    path = Path(args.file)
    if not path.is_file():
        print(f"ERROR {args.file}: no such file", file=sys.stderr)
        return 1
    try:
        with rt.db.write() as session:
            res = form_service.create_draft(session, rt.store, project_id=args.project, data=path.read_bytes(),
                                            filename=path.name, key=rt.config["SECRET_KEY"],
                                            validate=setup.validate_setting(rt))
            form_id, version, title = res.form.xml_form_id, res.draft.version, res.draft.title
            public = args.public_url or rt.config["PUBLIC_URL"]
            token = form_service.test_token(res.draft, rt.config["SECRET_KEY"])
            url = _test_url(public, token, res.form) if public and token else None
            warnings, note = list(res.draft.warnings), res.draft.validation_note
    except Problem as problem:
        print(f"ERROR {path.name}: {problem.message}", file=sys.stderr)
        for issue in problem.details.get("issues", []):
            where = " ".join(x for x in (issue.get("sheet") and f"sheet {issue['sheet']}",
                                         issue.get("row") and f"row {issue['row']}") if x)
            print(f"  - {where + ': ' if where else ''}{issue['message']}", file=sys.stderr)
        return 1
    print(f"{form_id} version {version}: draft saved ({note}); phones keep the published version.")
    if res.replaced:
        print(f"  It replaces the earlier draft ({res.discarded} test submission(s) discarded).")
    if res.version_taken:
        print(f"  Version {version} is already published: pass --version when publishing the draft.")
    for w in warnings:
        print(f"  warning: {w}")
    if url:
        print(f"Test server URL: {url}")
        _print_qr(url, title)
    else:
        print("Set CAREFILE_PUBLIC_URL or pass --public-url to print the draft's test QR code.")
    return 0


def cmd_draft_publish(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.write() as session:
        fv, discarded = form_service.publish_draft(session, _form(session, args.project, args.form_id),
                                                   version=args.version)
        version, missing = fv.version, form_service.missing_attachments(fv)
    print(f"{args.form_id} version {version}: published ({discarded} test submission(s) discarded).")
    if missing:
        print(f"Still missing: {', '.join(missing)}")
    return 0


def cmd_draft_abandon(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.write() as session:
        discarded = form_service.delete_draft(session, _form(session, args.project, args.form_id), user=None)
    print(f"{args.form_id}: draft abandoned ({discarded} test submission(s) discarded).")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.session() as session:
        form = _form(session, args.project, args.form_id)
        draft = form_service.get_draft(session, form)
        if draft is not None:
            print(f"draft        {draft.version:16} {draft.created_at:%Y-%m-%d %H:%M} {draft.source_filename or ''}")
        for fv, by in form_service.list_versions(session, form):
            mark = "*" if fv.id == form.current_version_id else " "
            print(f"{fv.id:<11}{mark} {fv.version:16} {fv.published_at:%Y-%m-%d %H:%M} {by or '-':12} "
                  f"{fv.source_filename or ''}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from app.services import forms as form_service

    rt = _runtime()
    with rt.db.session() as session:
        form = _form(session, args.project, args.form_id)
        get = form_service.version_xml if args.xml else form_service.version_source
        file = get(session, form, args.version)
    out = Path(args.output or file.filename)
    if file.data is not None:
        out.write_bytes(file.data)
    else:
        assert file.blob_key is not None
        with rt.store.open(file.blob_key) as src, out.open("wb") as dst:
            while chunk := src.read(64 * 1024):
                dst.write(chunk)
    print(f"{out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.services.forms.versions import find_version
    from forms.diff import diff_xforms

    rt = _runtime()
    with rt.db.session() as session:
        form = _form(session, args.project, args.form_id)
        old, new = find_version(session, form, args.older), find_version(session, form, args.newer)
        changes = diff_xforms(old.xml, new.xml)
    if not changes:
        print("No question changed.")
    for c in changes:
        where = f" (was {c.old_path})" if c.old_path else ""
        print(f"{c.kind:8} {c.path}{where} [{c.type}]" + (" and moved" if c.moved else ""))
        for d in c.details:
            what = d.aspect + (f" {d.choice}" if d.choice else "") + (f" [{d.language}]" if d.language else "")
            print(f"         {what}: {d.old!r} -> {d.new!r}")
    return 0


def add_commands(form: Any) -> None:
    """Register the draft and version commands under `carefile form`."""
    s = form.add_parser("draft", help="make (or replace) the draft of a published form from a changed XLSForm")
    s.add_argument("file")
    s.add_argument("--public-url", help="address phones use (default CAREFILE_PUBLIC_URL), for the test QR code")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_draft)
    s = form.add_parser("draft-publish", help="publish the form's draft (test submissions are discarded)")
    s.add_argument("form_id")
    s.add_argument("--version", help="version string to publish under (default: the draft's)")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_draft_publish)
    s = form.add_parser("draft-abandon", help="delete the form's draft and its test submissions")
    s.add_argument("form_id")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_draft_abandon)
    s = form.add_parser("versions", help="list the form's published versions (ids) and its draft")
    s.add_argument("form_id")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_versions)
    s = form.add_parser("download", help="the XLSForm of a version exactly as uploaded (or --xml: the XForm)")
    s.add_argument("form_id")
    s.add_argument("version", help="a version id from `form versions`, or draft")
    s.add_argument("--xml", action="store_true")
    s.add_argument("-o", "--output")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_download)
    s = form.add_parser("compare", help="questions added, removed, moved and changed between two versions")
    s.add_argument("form_id")
    s.add_argument("older", help="a version id, or draft")
    s.add_argument("newer", help="a version id, or draft")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_compare)
