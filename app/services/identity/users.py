"""Users, roles, regions and collector tokens."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.orm import Session, joinedload, object_session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from app import problems
from app.models import (
    ROLES,
    ApiSession,
    CollectorToken,
    FormAssignment,
    LoginFailure,
    User,
    UserRegion,
    WebSession,
    loaded_instance,
    utcnow,
)
from app.prepared import Prepared, RawConnection
from app.services.identity import tokens
from app.services.regions import validate_code

# New tokens use URL- and shell-safe characters only (pasting a URL with `!` into a shell breaks it).
# Tokens issued before used `!` and `$` as well and keep working: the check accepts both alphabets.
NEW_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_ALPHABET = NEW_TOKEN_ALPHABET + "!$"
TOKEN_LENGTH = 64
USERNAME = re.compile(r"[A-Za-z0-9._@+-]+")


def same_name(username: str) -> Any:
    """The condition "this user's name is `username`", without regard to case (user names are unique so:
    migration 0024). HTTP Digest still needs the exact name: its hash includes it."""
    return func.lower(User.username) == username.strip().lower()


def digest_ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def create_user(session: Session, *, project_id: int, username: str, role: str, password: str,
                realm: str, regions: list[str] | None = None, display_name: str = "") -> User:
    username = username.strip()
    if not username or ":" in username or len(username) > 150:
        raise problems.USER_NAME_LENGTH()
    if not USERNAME.fullmatch(username):
        # ODK Collect (OkHttp) cannot put other characters in an HTTP header, so such a user
        # could never sign in from a phone.
        raise problems.USER_NAME_CHARACTERS(username=username)
    if role not in ROLES:
        raise problems.UNKNOWN_ROLE(role=role, choices=', '.join(ROLES))
    if len(password) < 8:
        raise problems.PASSWORD_TOO_SHORT()
    taken = session.scalar(select(User.username).where(same_name(username)))
    if taken is not None:
        raise problems.USER_EXISTS(username=taken)
    user = User(project_id=project_id, username=username, role=role, display_name=display_name or username,
                password_hash=generate_password_hash(password), digest_ha1=digest_ha1(username, realm, password))
    for code in dict.fromkeys(validate_code(c) for c in (regions or [])):
        user.regions.append(UserRegion(code=code))
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str, realm: str) -> None:
    """A new password (the user's own change or an administrator's reset): every web session and API
    token of the user ends (the caller may start a new web session for the browser that changed it).
    Collector token URLs are not derived from the password and keep working."""
    if len(password) < 8:
        raise problems.PASSWORD_TOO_SHORT()
    user.password_hash = generate_password_hash(password)
    user.digest_ha1 = digest_ha1(user.username, realm, password)
    _end_sessions(user)


def password_matches(user: User, password: str) -> bool:
    """The bare hash comparison. Never call it on a request path without services.signin.verify
    (which throttles wrong guesses)."""
    return check_password_hash(user.password_hash, password)


def _session_of(user: User) -> Session:
    session = object_session(user)
    if session is None:
        raise RuntimeError("the user must belong to a database session")
    return session


def _end_sessions(user: User) -> None:
    end_user_sessions(_session_of(user), user.id)


def end_user_sessions(session: Session, user_id: int) -> int:
    """End every web session and API token of the user; how many there were."""
    ended = session.execute(delete(WebSession).where(WebSession.user_id == user_id)).rowcount  # type: ignore[attr-defined]
    ended += session.execute(delete(ApiSession).where(ApiSession.user_id == user_id)).rowcount  # type: ignore[attr-defined]
    return int(ended)


def forget_failures(session: Session, username: str) -> None:
    """An administrator reset the password: the account's sign-in waits (app.services.identity.signin) end
    everywhere."""
    session.execute(delete(LoginFailure).where(func.lower(LoginFailure.username) == username.lower()))


def phone_user_options() -> list[Any]:
    """Load what a phone's request needs with the user, in the same query: regions, form assignments."""
    return [joinedload(User.regions), joinedload(User.assignments)]


def get_user(session: Session, username: str, for_phone: bool = False) -> User:
    q = select(User).where(same_name(username))
    if for_phone:
        q = q.options(*phone_user_options())
    user = session.execute(q).unique().scalar_one_or_none()
    if user is None:
        raise problems.NO_SUCH_USER(username=username)
    return user


def new_token_value() -> str:
    return "".join(secrets.choice(NEW_TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


_TOKEN_CHARS = frozenset(TOKEN_ALPHABET)


def is_well_formed_token(token: str) -> bool:
    return len(token) == TOKEN_LENGTH and _TOKEN_CHARS.issuperset(token)


TOKEN_PURPOSE = "collector-token"


@dataclass(frozen=True)
class IssuedToken:
    row: CollectorToken
    token: str | None  # None: an active token kept only as its digest (issued before sealing; renew it)


def _new_token(session: Session, user: User, key: str) -> IssuedToken:
    value = new_token_value()
    tok = CollectorToken(user_id=user.id, token_hash=tokens.digest(value),
                         sealed=tokens.seal(key, TOKEN_PURPOSE, value))
    session.add(tok)
    session.flush()
    return IssuedToken(tok, value)


def shown_token(tok: CollectorToken, key: str) -> str | None:
    """The token of a stored row, unsealed with the server's secret key (None when that cannot be done)."""
    return tokens.unseal(key, TOKEN_PURPOSE, tok.sealed, tok.token_hash)


def issue_token(session: Session, user: User, key: str) -> IssuedToken:
    """The user's active token, creating one if there is none (`key`: the server's secret key)."""
    tok = session.scalar(select(CollectorToken).where(
        CollectorToken.user_id == user.id, CollectorToken.revoked_at.is_(None)))
    if tok is None:
        return _new_token(session, user, key)
    return IssuedToken(tok, shown_token(tok, key))


def renew_token(session: Session, user: User, key: str) -> IssuedToken:
    """Revoke the user's tokens and issue a new one (the old QR code stops working)."""
    revoke_tokens(session, user)
    return _new_token(session, user, key)


def revoke_tokens(session: Session, user: User) -> int:
    count = 0
    for tok in session.scalars(select(CollectorToken).where(
            CollectorToken.user_id == user.id, CollectorToken.revoked_at.is_(None))):
        tok.revoked_at = utcnow()
        count += 1
    return count


@dataclass(frozen=True)
class TokenLookup:
    user: User | None
    reason: str  # "ok" | "unknown" | "revoked" | "inactive"


# The token's state, its user's columns, and the user's regions and form assignments (outer joins): compiled
# once and run on the driver's cursor (app/prepared.py), as it runs on every request from a phone.
_TOKEN_USER = Prepared(
    select(CollectorToken.revoked_at, CollectorToken.token_hash.label("stored_hash"), *User.__table__.columns,
           UserRegion.id.label("region_id"), UserRegion.code.label("region_code"),
           FormAssignment.id.label("assignment_id"), FormAssignment.form_id.label("assignment_form_id"))
    .join(User, User.id == CollectorToken.user_id)
    .outerjoin(UserRegion, UserRegion.user_id == User.id)
    .outerjoin(FormAssignment, FormAssignment.user_id == User.id)
    .where(CollectorToken.token_hash == bindparam("token_hash")))


def user_for_token(session: Session, token: str) -> TokenLookup:
    """The token's user with its regions and form assignments, in one query (it runs on every request
    from a phone). The user comes back detached, loaded as a query would load it, without the cost of
    the ORM's eager loading (a third of a submission's CPU time on PostgreSQL)."""
    return user_for_token_on(session.connection(), token)


def user_for_token_on(conn: Connection | RawConnection, token: str) -> TokenLookup:
    """user_for_token on a connection (Database.raw_reader's on the phone's hot path)."""
    names = _TOKEN_USER.keys(conn)
    rows = [dict(zip(names, row, strict=True))
            for row in _TOKEN_USER.rows(conn, {"token_hash": tokens.digest(token)})]
    if not rows or not tokens.same(rows[0]["stored_hash"], token):
        return TokenLookup(None, "unknown")
    first = rows[0]
    if first["revoked_at"] is not None:
        return TokenLookup(None, "revoked")
    if not first["active"]:
        return TokenLookup(None, "inactive")
    user = loaded_instance(User, {c.key: first[c.name] for c in User.__table__.columns})
    regions: dict[int, UserRegion] = {}
    assignments: dict[int, FormAssignment] = {}
    for row in rows:
        rid, aid = row["region_id"], row["assignment_id"]
        if rid is not None and rid not in regions:
            regions[rid] = loaded_instance(UserRegion, {"id": rid, "user_id": user.id, "code": row["region_code"]})
        if aid is not None and aid not in assignments:
            assignments[aid] = loaded_instance(FormAssignment, {"id": aid, "user_id": user.id,
                                                        "form_id": row["assignment_form_id"]})
    set_committed_value(user, "regions", sorted(regions.values(), key=lambda r: r.id))
    set_committed_value(user, "assignments", sorted(assignments.values(), key=lambda a: a.id))
    return TokenLookup(user, "ok")


# -- administration (web: app/web/users.py) ---------------------------------------------------


def list_users(session: Session, project_id: int) -> list[User]:
    """Every user of the project: active first, then by role and name."""
    rank = {role: i for i, role in enumerate(ROLES)}
    found = session.scalars(select(User).where(User.project_id == project_id))
    return sorted(found, key=lambda u: (not u.active, rank.get(u.role, 99), u.username.lower()))


def update_user(user: User, *, role: str | None = None, display_name: str | None = None) -> dict[str, list[str]]:
    """Change role and display name; returns {field: [old, new]} for what changed (for the audit log)."""
    changes: dict[str, list[str]] = {}
    if role is not None and role != user.role:
        if role not in ROLES:
            raise problems.UNKNOWN_ROLE(role=role, choices=', '.join(ROLES))
        changes["role"] = [user.role, role]
        user.role = role
        # What the old role allowed must not go on: sessions, API tokens and token URLs end.
        _end_sessions(user)
        revoke_tokens(_session_of(user), user)
    if display_name is not None:
        display_name = display_name.strip() or user.username
        if len(display_name) > 200:
            raise problems.DISPLAY_NAME_TOO_LONG()
        if display_name != user.display_name:
            changes["display_name"] = [user.display_name, display_name]
            user.display_name = display_name
    return changes


def set_regions(session: Session, user: User, codes: list[str]) -> dict[str, list[str]]:
    """Replace the user's region codes (each validated); returns {"regions": [old, new]} when they changed."""
    wanted = sorted(dict.fromkeys(validate_code(c) for c in codes if c.strip()))
    old = user.region_codes
    if wanted == old:
        return {}
    keep = set(wanted)
    for region in list(user.regions):
        if region.code not in keep:
            user.regions.remove(region)
    session.flush()  # the unique (user, code) rows go before new ones come
    have = {r.code for r in user.regions}
    for code in wanted:
        if code not in have:
            user.regions.append(UserRegion(code=code))
    session.flush()
    return {"regions": [", ".join(old), ", ".join(wanted)]}


def set_active(user: User, active: bool) -> bool:
    """Deactivate (no web sign-in, no Digest, no token URL) or reactivate; True when it changed.

    Deactivation ends every web session and API token and revokes the collector token URLs, so
    reactivating does not bring back a QR code that may be on a lost phone: issue a new one."""
    if user.active == active:
        return False
    user.active = active
    _end_sessions(user)
    if not active:
        revoke_tokens(_session_of(user), user)
    return True


def reset_password(session: Session, user: User, password: str, realm: str) -> None:
    """An administrator sets a new password: sessions and API tokens end, and the account's wrong
    passwords are forgotten (no more waiting anywhere)."""
    set_password(user, password, realm)
    forget_failures(session, user.username)
