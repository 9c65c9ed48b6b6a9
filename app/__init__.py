"""CareFile: an ODK-compatible form collection server for child-welfare care files."""
from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import rawpath
from .config import load_config
from .db import Database
from .runtime import MULTIPART_MARGIN, Runtime, make_store


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application. With no configuration: SQLite and blobs under ./instance."""
    # Everything this process creates is its owner's alone (README "Files on disk"): the data folder, the
    # database and its WAL/SHM, blobs, the secret key, exports, backups. The places that create them set
    # 0600/0700 themselves too; the umask also covers what libraries create (SQLite, pg_dump's output).
    os.umask(0o077)
    cfg = load_config(config)
    app = Flask(__name__, instance_path=cfg["DATA_DIR"], static_folder="static", template_folder="templates")
    app.config["SECRET_KEY"] = cfg["SECRET_KEY"]
    # Collect splits submissions by the advertised MAX_SUBMISSION_BYTES but does not count the
    # multipart framing, so the hard cap on a request body leaves room for it.
    app.config["MAX_CONTENT_LENGTH"] = cfg["MAX_SUBMISSION_BYTES"] + MULTIPART_MARGIN
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 * 1024 * 1024
    app.config["CAREFILE"] = cfg

    from .services import effects, regions

    effects.install()  # after-effects of events (app/services/effects.py)
    regions.use_data_dir(cfg["DATA_DIR"])  # provinces added with `carefile regions load`
    db = Database(cfg["DATABASE_URL"], echo=cfg["SQL_ECHO"], pool_size=cfg["DB_POOL_SIZE"],
                  max_overflow=cfg["DB_MAX_OVERFLOW"], read_url=cfg["READ_DATABASE_URL"] or None)
    app.extensions["carefile"] = Runtime(config=cfg, db=db, store=make_store(cfg))

    from . import params
    from .openrosa.render import problem_response

    # bounded <int:> ids and the request check, before any route is added
    params.install(app, renderers={"openrosa": problem_response})
    rawpath.install(app)  # a `%2F` inside a path value (a form id with `/`) stays in its segment
    from .api import bp as api_bp
    from .openrosa import bp as openrosa_bp
    from .ops import init_app as init_ops

    init_ops(app)  # logging, request ids, metrics hooks, /healthz /readyz /metrics
    from .web import init_app as init_web

    app.register_blueprint(openrosa_bp)
    app.register_blueprint(api_bp)
    init_web(app)
    from .api.exports import install_worker

    start_exports = install_worker(app)  # background export jobs (CAREFILE_EXPORT_WORKER)
    from .lean import LeanSubmissions

    # Outermost first: the scheme (or a trusted proxy's headers), encoded slashes, then the OpenRosa submission
    # POST answered in front of Flask (app/lean.py), then Flask.
    app.wsgi_app = LeanSubmissions(app, app.wsgi_app, start_exports)  # type: ignore[method-assign]
    app.wsgi_app = rawpath.EncodedSlashes(app.wsgi_app)  # type: ignore[method-assign]
    if cfg["TRUST_PROXY"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]
    else:
        app.wsgi_app = _OwnScheme(app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def _no_store(resp: Any) -> Any:
        # Every answer but the static files may be personal (pages behind sign-in, the API's and Collect's
        # answers, records' files): no browser, proxy or phone keeps a copy. Conditional requests (ETag) still
        # work; Collect decides what to download from the manifest's hashes, not from its HTTP cache.
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.after_request
    def _retry_after(resp: Any) -> Any:
        # Sign-in throttling of the API (app/api): the HTTP layer that refused noted the wait in g.
        wait = g.get("retry_after")
        if resp.status_code == 429 and wait:
            resp.headers["Retry-After"] = str(wait)
        return resp

    return app


class _OwnScheme:
    """Without CAREFILE_TRUST_PROXY, https means TLS on this very connection, nothing else.

    gunicorn trusts X-Forwarded-Proto (and -Protocol, -Ssl) from 127.0.0.1 by default and then
    reports the request as https. `carefile serve` turns that off (forwarded_allow_ips empty), but
    `gunicorn wsgi:app` started by hand does not; so under gunicorn the scheme is taken from the
    socket: https only when it is a TLS socket (gunicorn --certfile)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None and environ.get("wsgi.url_scheme") == "https" and not isinstance(sock, ssl.SSLSocket):
            environ["wsgi.url_scheme"] = "http"
        return self.wsgi_app(environ, start_response)
