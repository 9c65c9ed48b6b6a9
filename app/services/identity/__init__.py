"""Identity: accounts, passwords, sign-in and sessions, collectors and their phones.

Inside, one way down: collectors | collect | sessions > signin > users | nonces
- users       accounts, roles, regions, collector token URLs; ending a user's sessions
- signin      every password check (web, API, Digest, Basic), throttled
- sessions    API bearer tokens and web sessions kept on the server
- nonces      Digest nonce counts shared by every worker
- collectors  rosters of village directors (spreadsheet import), their forms and tokens
- collect     ODK Collect's settings QR code
"""
from __future__ import annotations

from app.services.identity import collect, collectors, nonces, sessions, signin, users

__all__ = ["collect", "collectors", "nonces", "sessions", "signin", "users"]
