"""Who is calling an OpenRosa endpoint: token URL, HTTP Digest, or Basic over HTTPS.

Each function takes the request (`req`: Flask's `request` in the views, a plain werkzeug request in the
submission fast path, app/openrosa/lean.py), so both paths check credentials with the same code."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from flask import Response
from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Request

from app import problems
from app.errors import Problem
from app.models import User
from app.rawpath import SLASH
from app.runtime import Runtime
from app.services.identity import nonces as auth_service
from app.services.identity import signin
from app.services.identity import users as user_service

from . import digest
from .render import XML_TYPE, bilingual, openrosa_message


class AuthChallenge(Exception):
    """Raised to answer 401 with WWW-Authenticate challenges."""

    def __init__(self, problem: Problem, stale: bool = False) -> None:
        super().__init__(problem.message)
        self.message = problem.message
        self.stale = stale
        self.code = problem.code


def challenge_response(rt: Runtime, exc: AuthChallenge, req: Request) -> Response:
    cfg = rt.config
    resp = Response(openrosa_message(bilingual(exc.code, exc.message), "error"), status=401,
                    content_type=XML_TYPE)
    # Digest first: Collect answers the first challenge whose scheme it supports, and it only
    # supports Basic over https (docs/odk-protocol.md, *Authentication*).
    resp.headers.add("WWW-Authenticate", digest.challenge(cfg["DIGEST_REALM"], cfg["SECRET_KEY"], exc.stale))
    if req.is_secure or cfg["ALLOW_BASIC_OVER_HTTP"]:
        resp.headers.add("WWW-Authenticate", f'Basic realm="{cfg["DIGEST_REALM"]}", charset="UTF-8"')
    return resp


def user_from_token(rt: Runtime, token: str) -> User:
    if not user_service.is_well_formed_token(token):
        raise problems.TOKEN_URL_INVALID()
    with rt.db.raw_reader() as conn:
        found = user_service.user_for_token_on(conn, token)
        if found.user is None:
            # Well-formed but unknown or revoked: 403, not 401, so Collect does not ask for a password.
            raise problems.TOKEN_URL_REVOKED()
        return found.user  # detached


def _basic_latin1(req: Request) -> Authorization | None:
    """Basic credentials Werkzeug could not read as UTF-8: OkHttp (Collect) encodes ISO-8859-1."""
    header = req.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = base64.b64decode(rest.strip(), validate=True).decode("latin-1").partition(":")
    except binascii.Error:
        return None
    return Authorization("basic", {"username": username, "password": password}) if sep else None


def user_from_credentials(rt: Runtime, req: Request) -> User:
    auth = req.authorization or _basic_latin1(req)
    cfg = rt.config
    if auth is None:
        raise AuthChallenge(problems.SIGN_IN_REQUIRED())
    if auth.type == "bearer" and auth.token:
        # An API session (pyodk downloads form XML from this shared URL).
        from app.services.identity import sessions as session_service

        with rt.db.reader() as session:
            found = session_service.user_for_session(session, auth.token)
            if found is None:
                raise problems.AUTHENTICATION_FAILED()
            session.expunge(found)
        return found
    if auth.type == "digest":
        creds = digest.parse({k: v for k, v in auth.parameters.items() if v is not None})
        if creds is None or creds.realm != cfg["DIGEST_REALM"]:
            raise AuthChallenge(problems.DIGEST_INCOMPLETE())
        age = digest.nonce_age(cfg["SECRET_KEY"], creds.nonce)
        if age is None:
            raise AuthChallenge(problems.DIGEST_INVALID())
        if age > cfg["DIGEST_NONCE_LIFETIME"] or age < -60:
            raise AuthChallenge(problems.DIGEST_EXPIRED(), stale=True)
        if not _uri_matches(req, creds.uri):
            raise AuthChallenge(problems.DIGEST_WRONG_ADDRESS())
        method = req.method
        user = _verified(rt, req, creds.username, lambda u: digest.response_ok(creds, u.digest_ha1, method), "digest",
                         problems.COLLECT_WRONG_PASSWORD)
        nc = int(creds.nc, 16) if creds.nc else 0
        if not auth_service.record_nonce_count(rt.db, creds.nonce, nc, cfg["DIGEST_NONCE_LIFETIME"]):
            raise AuthChallenge(problems.DIGEST_REPLAYED(), stale=True)
        return user
    if auth.type == "basic":
        if not (req.is_secure or cfg["ALLOW_BASIC_OVER_HTTP"]):
            raise AuthChallenge(problems.BASIC_OVER_HTTP())
        password = auth.password or ""
        return _verified(rt, req, auth.username or "", lambda u: user_service.password_matches(u, password), "basic",
                         problems.WRONG_PASSWORD)
    raise AuthChallenge(problems.AUTH_METHOD_UNSUPPORTED())


def _verified(rt: Runtime, req: Request, username: str, check: Callable[[User], bool], channel: str,
              wrong: problems.Kind) -> User:
    """The user, through the sign-in throttle: 429 while the account or address must wait (Collect shows
    the message), a new challenge for a wrong user name or password."""
    try:
        return signin.verify(rt.db, username, req.remote_addr or "", check, channel=channel,
                             options=user_service.phone_user_options())
    except signin.Throttled as exc:
        zh = (f"密码错误次数过多，请等待 {exc.minutes} 分钟后再试（在此之前即使密码正确也无法登录），"
              "或请协调员重置密码。")
        raise problems.SIGNIN_THROTTLED_RELAYED(zh=zh, message=exc.message).add(retryAfter=exc.retry_after) from None
    except signin.WrongPassword:
        raise AuthChallenge(wrong()) from None


def _uri_matches(req: Request, uri: str) -> bool:
    """The Digest uri must name this request's path (query strings may differ in encoding)."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(uri).path)
    here = req.path.replace(SLASH, "/")  # a form id's `%2F` decoded as the client's uri is
    return path == here or path == req.script_root + here

