"""HTTP Digest (RFC 2617, MD5, qop=auth) as ODK Collect speaks it, with stateless nonces.

A nonce is "<time>.<random>.<mac>": the HMAC of time and random under the server's secret, so
every worker process, and the server after a restart, can check a nonce it did not issue. A
nonce older than its lifetime is answered with `stale=true` so Collect silently retries with a
fresh one. Replays (a nonce count not higher than one already seen) are refused with a fresh
challenge, also `stale=true`: OkHttp re-sends requests unchanged after some network failures,
and a stale challenge lets it recover without bothering the user (docs/odk-protocol.md, *Authentication*).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def make_nonce(secret: str, now: float | None = None) -> str:
    ts = format(int(now if now is not None else time.time()), "x")
    rand = secrets.token_hex(8)
    mac = hmac.new(secret.encode(), f"{ts}.{rand}".encode(), hashlib.sha256).digest()[:12]
    return f"{ts}.{rand}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def nonce_age(secret: str, nonce: str, now: float | None = None) -> float | None:
    """Seconds since the nonce was issued, or None when it is not one of ours."""
    try:
        ts, rand, mac = nonce.split(".")
        issued = int(ts, 16)
    except ValueError:
        return None
    expect = hmac.new(secret.encode(), f"{ts}.{rand}".encode(), hashlib.sha256).digest()[:12]
    if not hmac.compare_digest(base64.urlsafe_b64encode(expect).decode().rstrip("="), mac):
        return None
    return (now if now is not None else time.time()) - issued


def challenge(realm: str, secret: str, stale: bool = False) -> str:
    parts = [f'realm="{realm}"', 'qop="auth"', f'nonce="{make_nonce(secret)}"',
             f'opaque="{hashlib.md5(realm.encode()).hexdigest()}"', "algorithm=MD5", 'domain="/"',
             "charset=UTF-8"]
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None
    nc: str | None
    cnonce: str | None
    algorithm: str


def parse(params: dict[str, str]) -> DigestCredentials | None:
    """Credentials from a parsed Authorization: Digest header, or None when incomplete."""
    try:
        creds = DigestCredentials(
            username=params["username"], realm=params["realm"], nonce=params["nonce"], uri=params["uri"],
            response=params["response"].lower(), qop=params.get("qop"), nc=params.get("nc"),
            cnonce=params.get("cnonce"), algorithm=params.get("algorithm", "MD5").upper(),
        )
    except KeyError:
        return None
    if creds.algorithm not in ("MD5", "MD5-SESS"):
        return None
    if creds.qop is not None and (creds.qop != "auth" or not creds.nc or not creds.cnonce):
        return None
    return creds


def expected_response(creds: DigestCredentials, ha1: str, method: str) -> str:
    if creds.algorithm == "MD5-SESS":
        ha1 = md5_hex(f"{ha1}:{creds.nonce}:{creds.cnonce}")
    ha2 = md5_hex(f"{method}:{creds.uri}")
    if creds.qop == "auth":
        return md5_hex(f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:{creds.qop}:{ha2}")
    return md5_hex(f"{ha1}:{creds.nonce}:{ha2}")


def response_ok(creds: DigestCredentials, ha1: str, method: str) -> bool:
    return hmac.compare_digest(expected_response(creds, ha1, method), creds.response)
