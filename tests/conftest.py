"""Shared fixtures: database backends (SQLite and a real PostgreSQL), app, clients, users.

CAREFILE_TEST_BACKENDS (default "sqlite,postgresql") selects the database backends the app
tests run against; every app test runs once per backend.
"""
from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.pgserver import PgServer, start_postgres

BACKENDS = [b.strip() for b in os.environ.get("CAREFILE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    yield server
    server.stop()


def _migrate(url: str) -> None:
    from app.db import make_engine
    from app.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    eng = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text("CREATE DATABASE carefile_template"))
    eng.dispose()
    _migrate(pg_server.url("carefile_template"))
    return "carefile_template"


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend; test ids end in [sqlite] / [postgresql] (or -sqlite] after other params)."""
    return str(request.param)


_shown_backend: list[str] = []


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter writes the test's file name
def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """The app tests run once per backend (grouped by backend); say which group the output is in."""
    found = [b for b in BACKENDS if nodeid.endswith(f"[{b}]") or nodeid.endswith(f"-{b}]")]
    if not found or (_shown_backend and _shown_backend[-1] == found[0]):
        return
    _shown_backend.append(found[0])
    import _pytest.config

    config: _pytest.config.Config | None = getattr(pytest_runtest_logstart, "config", None)
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
    if reporter is not None and reporter.verbosity >= 0:
        reporter.ensure_newline()
        reporter.write_sep("-", f"database backend: {found[0]}")
        reporter.currentfspath = None  # the reporter then starts a new line with the file name


def pytest_configure(config: pytest.Config) -> None:
    pytest_runtest_logstart.config = config  # type: ignore[attr-defined]


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "carefile.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    request.getfixturevalue("pg_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE carefile_template"))
    yield server.url(name)
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def app_config(tmp_path: Path, database_url: str) -> dict[str, Any]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "STORAGE_URL": str(tmp_path / "blobs"),
        "ODK_VALIDATE": "off",
        "SECRET_KEY": "test-secret",
        "XLSFORMS_DIR": str(tmp_path / "no-forms"),
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Any]:
    from app import create_app
    from app.services import setup

    application = create_app(app_config)
    rt = application.extensions["carefile"]
    setup.init_schema(rt)
    yield application
    rt.db.dispose()


@pytest.fixture
def rt(app: Any) -> Any:
    return app.extensions["carefile"]
