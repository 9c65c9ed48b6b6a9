"""CareFile: an ODK-compatible form collection server for child-welfare care files."""
from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .db import Database
from .runtime import MULTIPART_MARGIN, Runtime, make_store


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application. With no configuration: SQLite and blobs under ./instance."""
    cfg = load_config(config)
    app = Flask(__name__, instance_path=cfg["DATA_DIR"], static_folder="static", template_folder="templates")
    app.config["SECRET_KEY"] = cfg["SECRET_KEY"]
    # Collect splits submissions by the advertised MAX_SUBMISSION_BYTES but does not count the
    # multipart framing, so the hard cap on a request body leaves room for it.
    app.config["MAX_CONTENT_LENGTH"] = cfg["MAX_SUBMISSION_BYTES"] + MULTIPART_MARGIN
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 * 1024 * 1024
    app.config["CAREFILE"] = cfg
    if cfg["TRUST_PROXY"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]

    db = Database(cfg["DATABASE_URL"], echo=cfg["SQL_ECHO"], pool_size=cfg["DB_POOL_SIZE"],
                  max_overflow=cfg["DB_MAX_OVERFLOW"])
    app.extensions["carefile"] = Runtime(config=cfg, db=db, store=make_store(cfg))

    from .api import bp as api_bp
    from .openrosa import bp as openrosa_bp
    from .ops import init_app as init_ops

    init_ops(app)  # logging, request ids, metrics hooks, /healthz /readyz /metrics
    from .web import init_app as init_web

    app.register_blueprint(openrosa_bp)
    app.register_blueprint(api_bp)
    init_web(app)
    from .api.exports import install_worker

    install_worker(app)  # background export jobs (CAREFILE_EXPORT_WORKER)

    return app
