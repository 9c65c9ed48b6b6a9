"""Every password check goes through here: web sign-in, POST /v1/sessions, OpenRosa Digest, Basic.

Throttling (README "Sign-in throttling"). Each wrong password is a `LoginFailure` row (user name as
typed, client address, time), shared by every worker and node through the database. Three counters
over the last `WINDOW`:

- **account at this address** (user name, address): `PAIR_FREE` wrong passwords, then a wait that
  doubles with each further wrong password (`FIRST_WAIT` … `MAX_WAIT`), counted from the last one;
- **this address** (any user name): `ADDRESS_FREE` wrong passwords, then the same growing wait for
  every account the address has never signed in to (password spraying from one place);
- **this account** (any address): `ACCOUNT_FREE` wrong passwords, then the growing wait for every
  address the account has never signed in from (a storm from many addresses).

While a wait runs, no password is checked at all: even the right one is refused with 429 and a
Retry-After. A right password at an address forgets that pair's failures and marks the address
as *known* for the account (`SigninKnownAddress`, kept `KNOWN_FOR`). A known address is never
held back by the address-wide or account-wide ceilings, only by its own pair counter, so a
wrong-password storm from elsewhere cannot lock the rightful user out of the phone or office they
use; and a storm from their own address can only make that address wait. The website also gives a
browser that signed in a signed "known device" cookie (web/auth.py), which counts like a known
address when the user's address changes (mobile networks). Failures for user names
that do not exist count the same way (no hint which names exist). An administrator's password
reset forgets the account's failures.

Attempts at one account take turns (`Database.keyed_lock`, shared by every worker and node): the counters
are read, the password checked and a failure recorded before the next attempt starts, so 20 parallel
wrong passwords get `PAIR_FREE` checks, not more. Unknown, deactivated and active accounts cost the same
work (one password check each: a stand-in for an unknown name), so the answer time tells nothing.

The same counters guard other secrets that can be guessed (`guard`): a managed encryption key's
passphrase, per user and form.
"""
from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from werkzeug import security

from app import problems
from app.db import Database
from app.errors import Problem
from app.models import LoginFailure, SigninKnownAddress, User, utcnow
from app.services import audit
from app.services.identity import users as user_service
from app.services.metrics import LOGIN_FAILURES

WINDOW = timedelta(hours=24)  # wrong passwords older than this are forgotten
PAIR_FREE = 5  # wrong passwords for one account from one address before waits begin
ADDRESS_FREE = 20  # ... from one address for any accounts (applies to accounts unknown there)
ACCOUNT_FREE = 50  # ... for one account from all addresses (applies to addresses unknown to it)
FIRST_WAIT = timedelta(minutes=1)  # doubles with each further wrong password
MAX_WAIT = timedelta(minutes=15)
KNOWN_FOR = timedelta(days=60)  # a right password makes the address known to the account for this long
KNOWN_REFRESH = timedelta(hours=12)  # re-stamp a known address at most this often (no write per request)

CHANNELS = ("web", "api", "digest", "basic")
T = TypeVar("T")


class Throttled(Problem):
    """429: too many wrong passwords; `retry_after` seconds until a password is checked again."""

    def __init__(self, retry_after: int, what: str = "password") -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        kind = problems.PASSPHRASE_THROTTLED if what == "passphrase" else problems.SIGNIN_THROTTLED
        super().__init__(kind.status, kind.code, kind.format(minutes=minutes), template=kind.template,
                         fields={"minutes": minutes}, retryAfter=retry_after)
        self.retry_after = retry_after
        self.minutes = minutes


class WrongPassword(Problem):
    def __init__(self) -> None:
        kind = problems.WRONG_PASSWORD
        super().__init__(kind.status, kind.code, kind.format(), template=kind.template)


@dataclass(frozen=True)
class _Counter:
    count: int
    last: datetime | None

    def wait(self, free: int, now: datetime) -> float:
        """Seconds until the next password may be checked (0: now)."""
        if self.count < free or self.last is None:
            return 0.0
        step = min(FIRST_WAIT * 2 ** min(self.count - free, 20), MAX_WAIT)
        return max(0.0, (self.last + step - now).total_seconds())


@dataclass(frozen=True)
class SigninState:
    pair: _Counter
    address: _Counter
    account: _Counter
    known_at: datetime | None

    def wait(self, now: datetime, known_device: bool = False) -> float:
        waits = [self.pair.wait(PAIR_FREE, now)]
        if not known_device and (self.known_at is None or self.known_at < now - KNOWN_FOR):
            waits += [self.address.wait(ADDRESS_FREE, now), self.account.wait(ACCOUNT_FREE, now)]
        return max(waits)


def _key(username: str, ip: str) -> tuple[str, str]:
    # Counted without regard to case, as sign-in finds the account: `Tashi` and `tashi` are one account.
    return username.strip().lower()[:150], (ip or "")[:64]


def state(session: Session, username: str, ip: str) -> SigninState:
    """The three counters and whether the address is known to the account (one query)."""
    username, ip = _key(username, ip)
    since = utcnow() - WINDOW

    def counter(*where: Any) -> tuple[Any, Any]:
        cond = and_(LoginFailure.at >= since, *where)
        return (select(func.count()).select_from(LoginFailure).where(cond).scalar_subquery(),
                select(func.max(LoginFailure.at)).where(cond).scalar_subquery())

    known = select(SigninKnownAddress.last_ok_at).where(
        SigninKnownAddress.username == username, SigninKnownAddress.ip == ip).scalar_subquery()
    row = session.execute(select(
        *counter(LoginFailure.username == username, LoginFailure.ip == ip),
        *counter(LoginFailure.ip == ip),
        *counter(LoginFailure.username == username),
        known)).one()
    return SigninState(_Counter(int(row[0] or 0), row[1]), _Counter(int(row[2] or 0), row[3]),
                       _Counter(int(row[4] or 0), row[5]), row[6])


def verify(db: Database, username: str, ip: str, check: Callable[[User], bool], *, channel: str,
           options: Sequence[Any] = (), audit_success: bool = False, known_device: bool = False) -> User:
    """The user whose `check` (a password or Digest response test) passes, detached from its session.

    `known_device`: the client proved it signed in to this account before (the website's signed
    device cookie): like a known address, only its own pair counter holds it back.

    Raises Throttled (429) without checking anything while the account or address must wait, and
    WrongPassword (401) for an unknown, inactive or wrong user name/password, after recording it.
    """
    assert channel in CHANNELS
    username, ip = _key(username, ip)
    with db.keyed_lock(f"signin:{username}"):
        return _verify(db, username, ip, check, channel=channel, options=options, audit_success=audit_success,
                       known_device=known_device)


def _verify(db: Database, username: str, ip: str, check: Callable[[User], bool], *, channel: str,
            options: Sequence[Any], audit_success: bool, known_device: bool) -> User:
    with db.reader() as session:
        current = state(session, username, ip)
        wait = current.wait(utcnow(), known_device)
        user = None
        if wait <= 0:
            user = session.execute(select(User).options(*options).where(user_service.same_name(username))
                                   ).unique().scalar_one_or_none()
            if user is not None:
                session.expunge(user)
    if wait > 0:
        if channel == "web":  # each refused web attempt is in the audit log; phones retry too often for that
            with db.write() as session:
                audit.record(session, None, "login.failed", ip=ip, username=username, reason="throttled",
                             channel=channel)
        LOGIN_FAILURES.labels("throttled").inc()
        raise Throttled(math.ceil(wait))
    # One check whatever the account: a stand-in for an unknown name, the real one for a deactivated account
    # too, so the answer time tells neither which names exist nor which are deactivated.
    matched = check(user if user is not None else _stand_in())
    if user is None or not user.active or not matched:
        with db.write() as session:
            now = utcnow()
            session.add(LoginFailure(username=username, ip=ip, at=now))
            session.execute(delete(LoginFailure).where(LoginFailure.at < now - WINDOW))
            audit.record(session, None, "login.failed", ip=ip, username=username, channel=channel)
        LOGIN_FAILURES.labels("password").inc()
        raise WrongPassword()
    now = utcnow()
    if audit_success or current.pair.count or current.known_at is None or current.known_at < now - KNOWN_REFRESH:
        with db.write() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.ip == ip))
            _mark_known(db, session, username, ip, now)
            if audit_success:
                audit.record(session, user, "login.ok", ip=ip, channel=channel)
    return user


@functools.cache
def _stand_in() -> User:
    """A user no password matches (a random one, hashed like real ones), never stored."""
    return User(username="", password_hash=security.generate_password_hash(secrets.token_urlsafe(16)),
                digest_ha1=secrets.token_hex(16), active=False)


def _mark_known(db: Database, session: Session, username: str, ip: str, now: datetime) -> None:
    insert = sqlite_insert if db.is_sqlite else pg_insert
    stmt = insert(SigninKnownAddress).values(username=username, ip=ip, last_ok_at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[SigninKnownAddress.username, SigninKnownAddress.ip], set_={"last_ok_at": now}))
    session.execute(delete(SigninKnownAddress).where(SigninKnownAddress.last_ok_at < now - KNOWN_FOR))


def guard(db: Database, subject: str, who: str, attempt: Callable[[], T], *, what: str) -> T:
    """Run `attempt` — a test of a secret other than a password, raising Problem when it is wrong — under
    the sign-in counters: `subject` names the secret ("managed-key:<id>"; never a user name, which has no
    ':'), `who` the guesser ("user:<id>"), in the places of user name and address. Attempts at one subject
    take turns; while a wait runs nothing is tested (Throttled, 429)."""
    subject, who = _key(subject, who)
    with db.keyed_lock(f"signin:{subject}"):
        with db.reader() as session:
            current = state(session, subject, who)
        now = utcnow()
        wait = current.wait(now)
        if wait > 0:
            LOGIN_FAILURES.labels("throttled").inc()
            raise Throttled(math.ceil(wait), what=what)
        try:
            result = attempt()
        except Problem:
            with db.write() as session:
                session.add(LoginFailure(username=subject, ip=who, at=now))
            LOGIN_FAILURES.labels("password").inc()
            raise
        if current.pair.count or current.known_at is None or current.known_at < now - KNOWN_REFRESH:
            with db.write() as session:
                session.execute(delete(LoginFailure).where(LoginFailure.username == subject, LoginFailure.ip == who))
                _mark_known(db, session, subject, who, now)
        return result


def sign_in(db: Database, username: str, password: str, ip: str, known_device: bool = False) -> User:
    """Web sign-in: the user, or Throttled / WrongPassword (the failure already recorded)."""
    return verify(db, username, ip, lambda user: user_service.password_matches(user, password), channel="web",
                  audit_success=True, known_device=known_device)
