"""Faults no request can fix — the database or the blob store unreachable, a full disk — answered as 503.

`unavailable(exc)` says whether an exception is such a fault and gives the Problem (a 503 with a stable
code and a message saying that nothing was saved and when to try again); `register(bp, render)` installs
one handler per blueprint that renders it in that blueprint's protocol (OpenRosaResponse XML for
Collect, JSON for the API, a page for the web) with `Retry-After`. Anything else is not touched: a
programming error stays a 500 with its traceback in the log.

Nothing is lost by answering 503: a submission is acknowledged (201) only after its rows are committed
and its files are stored, and the phone keeps an unacknowledged form and sends it again.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ConnectionClosedError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import problems
from app.errors import Problem

if TYPE_CHECKING:
    from flask import Blueprint, Response

log = logging.getLogger("carefile.faults")

RETRY_AFTER_SECONDS = 30
DISK_FULL_RETRY_AFTER_SECONDS = 300
# Disk full, quota exceeded, read-only or failing disk: the local blob folder or the spool cannot be written.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})

# (code, English, Chinese), the kinds of app/problems.py with the sentence Collect shows first. The English text
# is also the key of app/translations/faults.json (web pages).
DATABASE = (problems.DATABASE_UNAVAILABLE.code, problems.DATABASE_UNAVAILABLE.template,
            "服务器暂时无法连接数据库，本次没有保存任何内容。请几分钟后重试；手机上的表单会一直保留，直到服务器接收为止。")
BLOB_STORE = (problems.BLOB_STORE_UNAVAILABLE.code, problems.BLOB_STORE_UNAVAILABLE.template,
              "服务器暂时无法连接文件存储，本次没有保存任何内容。请几分钟后重试；手机上的表单会一直保留，直到服务器接收为止。")
DISK_FULL = (problems.DISK_FULL.code, problems.DISK_FULL.template,
             "服务器磁盘已满，本次没有保存任何内容。请告知管理员清理磁盘空间；手机上的表单会一直保留，直到服务器接收为止。")

# What the handlers are registered for (each blueprint once); unavailable() then decides.
HANDLED: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeout, BotoConnectionError,
                                            HTTPClientError, ClientError, OSError)


def _s3_upload_failed() -> type[BaseException] | None:
    try:
        from boto3.exceptions import S3UploadFailedError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    return S3UploadFailedError


def classify(exc: BaseException) -> tuple[str, str, str] | None:
    """(code, English, Chinese) when exc is a fault of the database, the blob store or the disk; else None."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return DATABASE
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionClosedError)):
        return BLOB_STORE
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return BLOB_STORE if isinstance(status, int) and status >= 500 else None
    upload_failed = _s3_upload_failed()
    if upload_failed is not None and isinstance(exc, upload_failed):
        return BLOB_STORE  # boto3's upload_file wraps the S3 error it got
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return DISK_FULL
    return None


def unavailable(exc: BaseException, bilingual: bool = False) -> Problem | None:
    """The 503 Problem for a fault (message in Chinese then English when bilingual), or None."""
    found = classify(exc)
    if found is None:
        return None
    code, english, chinese = found
    retry = DISK_FULL_RETRY_AFTER_SECONDS if code == DISK_FULL[0] else RETRY_AFTER_SECONDS
    kinds = (problems.DATABASE_UNAVAILABLE, problems.BLOB_STORE_UNAVAILABLE, problems.DISK_FULL)
    problem = next(kind for kind in kinds if kind.code == code)().add(retry_after=retry)
    if bilingual:
        problem.message = f"{chinese} {english}"
    return problem


def respond(exc: BaseException, render: Callable[[Problem], Response], bilingual: bool = False) -> Response | None:
    """The 503 answer to a fault (render(Problem) as 503 with Retry-After, never stored), None when `exc` is not a
    fault of the environment. Used by `register` and by the submission fast path (app/lean.py)."""
    problem = unavailable(exc, bilingual=bilingual)
    if problem is None:
        return None
    # The class name only: what an operator needs here (readyz logs the full reason).
    log.warning("answered 503 (%s) after %s", problem.code, type(exc).__name__)
    retry = problem.details.pop("retry_after", RETRY_AFTER_SECONDS)
    resp = render(problem)
    resp.status_code = 503
    resp.headers["Retry-After"] = str(retry)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register(bp: Blueprint, render: Callable[[Problem], Response | tuple[Any, int]], bilingual: bool = False
             ) -> None:
    """Answer faults raised in bp's views (and its before_request hooks) with render(503 Problem)."""
    from flask import make_response

    def handler(exc: BaseException) -> Response:
        resp = respond(exc, lambda problem: make_response(render(problem)), bilingual=bilingual)
        if resp is None:
            raise exc  # not a fault of the environment: Flask's usual 500 (and traceback in the log)
        return resp

    for kind in HANDLED:
        bp.register_error_handler(kind, handler)
