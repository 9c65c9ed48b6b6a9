"""`carefile user …`: add, list, change the password of, deactivate and reactivate users; collectors' QR codes.

The same services as the website's users page (app.services.identity.users). A password is never an
argument a script must put on the command line: it is asked for at a terminal, or read from the first
line of standard input (`--password-stdin`); `--password` stays for quick local set-ups.
"""
from __future__ import annotations

import argparse
import getpass
import io
import sys
from typing import Any

from app import problems


def _runtime() -> Any:
    from app.cli import _runtime as open_runtime

    return open_runtime()


def _new_password(args: argparse.Namespace) -> str:
    """The password from --password, --password-stdin, or typed twice at a terminal."""
    if getattr(args, "password", None):
        return str(args.password)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise problems.PASSWORD_NOT_ON_STDIN()
        return password
    if not sys.stdin.isatty():
        raise problems.PASSWORD_NO_TERMINAL()
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise problems.TWO_PASSWORDS_DIFFER()
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    from app.services.identity import users as user_service
    from app.services.ops import setup

    rt = _runtime()
    setup.init_schema(rt)
    password = _new_password(args)
    with rt.db.write() as session:
        user = user_service.create_user(session, project_id=args.project, username=args.name, role=args.role,
                                        password=password, realm=rt.config["DIGEST_REALM"],
                                        regions=args.region or [], display_name=args.display_name or "")
        print(f"User {user.username} ({user.role}) created"
              + (f", regions {', '.join(user.region_codes)}" if user.regions else ""))
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from app.services.identity import users as user_service

    rt = _runtime()
    with rt.db.session() as session:
        found = user_service.list_users(session, args.project)
        rows = [(u.username, u.role, "active" if u.active else "deactivated", ", ".join(u.region_codes) or "—",
                 u.display_name or "") for u in found]
    if not rows:
        print("No users yet: add one with `carefile user add NAME --role admin`.", file=sys.stderr)
        return 0
    widths = [max(len(str(r[i])) for r in rows + [("name", "role", "state", "regions", "")]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("name", "role", "state", "regions"), widths, strict=True))
          + "  display name")
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row[:4], widths, strict=True)) + f"  {row[4]}")
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    """An administrator's reset: sessions and API tokens end, sign-in waits are forgotten."""
    from app.services import audit
    from app.services.identity import users as user_service

    rt = _runtime()
    with rt.db.session() as session:
        user_service.get_user(session, args.name)  # an unknown name is said before a password is asked for
    password = _new_password(args)
    with rt.db.write() as session:
        user = user_service.get_user(session, args.name)
        user_service.reset_password(session, user, password, rt.config["DIGEST_REALM"])
        audit.record(session, None, "user.update", target=f"user:{user.username}", username="carefile (command)",
                     password="reset", via="cli")
    print(f"The password of {args.name} was reset; the user's web sessions and API tokens ended.")
    return 0


def cmd_user_active(args: argparse.Namespace) -> int:
    from app.services import audit
    from app.services.identity import users as user_service

    rt = _runtime()
    active = args.user_command == "activate"
    with rt.db.write() as session:
        user = user_service.get_user(session, args.name)
        changed = user_service.set_active(user, active)
        if changed:
            audit.record(session, None, "user.update", target=f"user:{user.username}",
                         username="carefile (command)", active=active, via="cli")
    if not changed:
        print(f"{args.name} is {'active' if active else 'deactivated'} already; nothing changed.")
    elif active:
        print(f"{args.name} can sign in again. A collector needs a new QR code: carefile user token {args.name}")
    else:
        print(f"{args.name} is deactivated: no sign-in, no Digest, no token URL; sessions and QR codes ended.")
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    import segno

    from app.models import Project
    from app.services.identity import collect
    from app.services.identity import users as user_service

    rt = _runtime()
    public = args.public_url or rt.config["PUBLIC_URL"]
    if not public:
        print("Set CAREFILE_PUBLIC_URL (the address phones reach this server at) or pass --public-url.",
              file=sys.stderr)
        return 2
    with rt.db.write() as session:
        user = user_service.get_user(session, args.name)
        key = rt.config["SECRET_KEY"]
        tok = (user_service.renew_token(session, user, key) if args.renew
               else user_service.issue_token(session, user, key))
        if tok.token is None:
            print(f"The QR code of {args.name} was made before tokens were kept sealed and cannot be shown again "
                  "(phones set up with it keep working). Run with --renew for a new one.", file=sys.stderr)
            return 1
        project = session.get(Project, user.project_id)
        url = collect.token_server_url(public, tok.token, user.project_id)
        payload = collect.encode_settings(collect.collect_settings(
            url, f"{project.name if project else 'CareFile'} · {user.display_name or user.username}"))
    print(f"Collect server URL for {args.name}:\n{url}\n")
    print("Scan this in ODK Collect (Configure with QR code):")
    buf = io.StringIO()
    segno.make(payload, error="l").terminal(out=buf, compact=True)
    print(buf.getvalue())
    return 0


def cmd_user_revoke(args: argparse.Namespace) -> int:
    from app.services.identity import users as user_service

    rt = _runtime()
    with rt.db.write() as session:
        n = user_service.revoke_tokens(session, user_service.get_user(session, args.name))
    print(f"Revoked {n} token(s) of {args.name}; phones set up with them can no longer connect.")
    return 0


def add_commands(sub: Any) -> None:
    """The `user` command group."""
    user = sub.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    s = user.add_parser("add", help="add a user")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=["admin", "coordinator", "manager", "collector"])
    s.add_argument("--password", help="the password (else asked at the terminal, or --password-stdin)")
    s.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    s.add_argument("--region", action="append", help="region code (repeatable)")
    s.add_argument("--display-name")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_user_add)
    s = user.add_parser("list", help="list the users: name, role, state, regions")
    s.add_argument("--project", type=int, default=1)
    s.set_defaults(func=cmd_user_list)
    s = user.add_parser("password", help="reset a user's password (asked at the terminal, or --password-stdin)")
    s.add_argument("name")
    s.add_argument("--password-stdin", action="store_true", help="read the new password from standard input")
    s.set_defaults(func=cmd_user_password)
    for name, text in (("deactivate", "stop a user from signing in (web, API, Collect); ends sessions and QR codes"),
                       ("activate", "let a deactivated user sign in again")):
        s = user.add_parser(name, help=text)
        s.add_argument("name")
        s.set_defaults(func=cmd_user_active)
    s = user.add_parser("token", help="print the collector's Collect URL and settings QR code")
    s.add_argument("name")
    s.add_argument("--renew", action="store_true", help="revoke the old token and issue a new one")
    s.add_argument("--public-url", help="address phones use (default CAREFILE_PUBLIC_URL)")
    s.set_defaults(func=cmd_user_token)
    s = user.add_parser("revoke", help="revoke the collector's tokens")
    s.add_argument("name")
    s.set_defaults(func=cmd_user_revoke)
