"""Configuration: defaults, then CAREFILE_* environment variables, then explicit overrides.

Every setting is documented in README.md ("Settings").
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": "instance",
    "DATABASE_URL": None,  # default: sqlite:///<DATA_DIR>/carefile.db
    "READ_DATABASE_URL": None,  # a PostgreSQL streaming replica for exports, OData, reports (app/db.py)
    "STORAGE_URL": None,  # default: <DATA_DIR>/blobs ; or s3://bucket/prefix
    "S3_ENDPOINT_URL": None,
    "S3_REGION": None,
    "S3_ACCESS_KEY": None,
    "S3_SECRET_KEY": None,
    "S3_CREATE_BUCKET": False,
    "SECRET_KEY": None,  # default: generated once into <DATA_DIR>/secret_key
    "PUBLIC_URL": None,  # e.g. https://carefile.example.org ; default: taken from the request
    "XLSFORMS_DIR": str(PROJECT_ROOT / "xlsforms"),
    "MAX_SUBMISSION_BYTES": 100 * 1024 * 1024,
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,  # XLSForm and form attachment uploads
    "ALLOW_BASIC_OVER_HTTP": False,
    "TRUST_PROXY": False,  # honour X-Forwarded-Proto/Host from one reverse proxy
    "SECURE_COOKIES": None,  # None: secure cookies when PUBLIC_URL is https
    "DIGEST_REALM": "CareFile",
    "DIGEST_NONCE_LIFETIME": 6 * 3600,
    "ODK_VALIDATE": "auto",  # auto | on | off
    "SQL_ECHO": False,
    "EXPORT_PROCESSES": None,  # processes per large CSV zip job (default min(2, CPUs); exports/parallel.py)
    # Years after a case's closure before `carefile retention run` anonymises the file (README: why 10).
    "RETENTION_YEARS": 10,
    # Days a finished export's file is kept; then it is deleted and the job says "expired" (0 = at once).
    "EXPORT_KEEP_DAYS": 7,
    # Seconds the figures of `carefile dashboard refresh` serve the dashboard (app/services/rollup.py); 0 = always live.
    "DASHBOARD_MAX_AGE": 1800,
    # Scopes of at most this many children get a live dashboard even when stored figures exist (exact at once).
    "DASHBOARD_LIVE_UP_TO": 2000,
    "EXPORT_WORKER": "auto",  # auto | true | false: run queued export jobs in this process (app/api/exports.py)
    "DB_POOL_SIZE": None,  # connections kept per process (default app/db.py POOL_SIZE)
    "DB_MAX_OVERFLOW": None,  # extra connections per process in a burst (default app/db.py MAX_OVERFLOW)
    "LOG_FORMAT": "text",  # text | json (app/ops/logs.py)
    "METRICS_TOKEN": None,  # Bearer token Prometheus sends to /metrics
    "METRICS_ALLOW": None,  # comma-separated addresses/networks allowed to read /metrics without the token
}

_BOOL_KEYS = {"ALLOW_BASIC_OVER_HTTP", "TRUST_PROXY", "S3_CREATE_BUCKET", "SQL_ECHO", "SECURE_COOKIES"}
_INT_KEYS = {"MAX_SUBMISSION_BYTES", "MAX_UPLOAD_BYTES", "DIGEST_NONCE_LIFETIME", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
             "RETENTION_YEARS", "DASHBOARD_MAX_AGE", "DASHBOARD_LIVE_UP_TO", "EXPORT_KEEP_DAYS"}


def _coerce(key: str, value: Any) -> Any:
    if key in _BOOL_KEYS and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if key in _INT_KEYS and isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise ValueError(f"CAREFILE_{key} must be a whole number, got {value!r}") from exc
    return value


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge defaults, CAREFILE_* environment variables and overrides; fill derived values."""
    cfg: dict[str, Any] = dict(DEFAULTS)
    for key in DEFAULTS:
        env = os.environ.get(f"CAREFILE_{key}")
        if env is not None and env != "":
            cfg[key] = _coerce(key, env)
    for key, value in (overrides or {}).items():
        cfg[key] = _coerce(key, value)
    data_dir = Path(cfg["DATA_DIR"]).expanduser().resolve()
    cfg["DATA_DIR"] = str(data_dir)
    private_dir(data_dir)  # owner only (0700), whatever the umask: it holds the database, files and secret key
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{data_dir / 'carefile.db'}"
    if not cfg["STORAGE_URL"]:
        cfg["STORAGE_URL"] = str(data_dir / "blobs")
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _stored_secret(data_dir)
    return cfg


def private_dir(path: Path) -> None:
    """Create `path` (and its missing parents) for its owner only (0700); tighten it if it is ours and open
    to others."""
    for folder in reversed([p for p in (path, *path.parents) if not p.exists()]):
        folder.mkdir(mode=0o700, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o700)


def _stored_secret(data_dir: Path) -> str:
    """A random secret kept in the data folder, so nonces and sessions survive restarts."""
    private_dir(data_dir)
    path = data_dir / "secret_key"
    if not path.exists():
        # One temporary name per process: workers starting together must not share (and unlink) it.
        tmp = path.with_name(f"secret_key.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:  # owner only
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first worker wins, others read its key
        except FileExistsError:
            pass
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
