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

# Password hashes in the test process: the same algorithm (scrypt) and code path as in production, at a
# work factor of N=2^10 instead of werkzeug's 2^15. A full-cost hash takes ~0.15 s of CPU and the app tests
# make and check a few thousand of them; check_password_hash reads the parameters from the stored hash, so
# nothing else changes. Servers the tests start as subprocesses (tests/e2e) hash at full cost what they are
# given (`carefile user add`, password changes) and check whatever is stored, cheap or not.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"


def _cheap_password_hashes() -> None:
    import werkzeug.security

    from app.services.identity import users

    original = werkzeug.security.generate_password_hash
    if getattr(original, "carefile_test_cost", False):
        return

    def generate_password_hash(password: str, method: str = TEST_PASSWORD_HASH, salt_length: int = 16) -> str:
        return original(password, method if method != "scrypt" else TEST_PASSWORD_HASH, salt_length)

    generate_password_hash.carefile_test_cost = True  # type: ignore[attr-defined]
    werkzeug.security.generate_password_hash = generate_password_hash  # type: ignore[assignment]
    users.generate_password_hash = generate_password_hash  # type: ignore[assignment]  # imported by name


def _reuse_url_builders() -> None:
    """Every create_app() registers the same ~190 routes, and werkzeug compiles two URL-builder functions
    per route from a generated syntax tree (~0.2 s per app, about half of create_app); the app tests make
    one app per test. The generated code depends only on the rule text, its defaults and append_unknown
    (the rule object is passed in as an argument), so a compiled builder is reused for an identical rule."""
    from werkzeug.routing.rules import Rule

    original = Rule._compile_builder
    if getattr(original, "carefile_cached", False):
        return
    cache: dict[Any, Any] = {}

    def _compile_builder(self: Rule, append_unknown: bool = True) -> Any:
        try:
            key = (self.rule, self.host, self.subdomain, self.merge_slashes, tuple(self._trace),
                   tuple(sorted((self.defaults or {}).items())), append_unknown,
                   tuple((k, type(v)) for k, v in self._converters.items()))
            hash(key)
        except TypeError:  # an unhashable default: compile as usual
            return original(self, append_unknown)
        if key not in cache:
            cache[key] = original(self, append_unknown)
        return cache[key]

    _compile_builder.carefile_cached = True  # type: ignore[attr-defined]
    Rule._compile_builder = _compile_builder  # type: ignore[method-assign]


_cheap_password_hashes()
_reuse_url_builders()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    yield server
    server.stop()


def _migrate(url: str) -> None:
    """Migrate a template database and add the default project, as `carefile init` does (init_schema).

    Every test database is a copy of the template, so the `app` fixture need not run init_schema (an
    Alembic run that finds nothing to do, ~0.1 s) for each test."""
    from types import SimpleNamespace

    from app.db import make_engine
    from app.services.ops.setup import init_schema

    engine = make_engine(url)
    init_schema(SimpleNamespace(db=SimpleNamespace(engine=engine), config={"SECRET_KEY": None}))  # type: ignore[arg-type]
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
    # In parallel (pytest-xdist: scripts/test.sh) the workers' tests arrive interleaved: no groups to name.
    parallel = config is not None and bool(getattr(config.option, "numprocesses", None))
    if reporter is not None and reporter.verbosity >= 0 and not parallel:
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

    application = create_app(app_config)  # on a copy of the template: migrated, default project added
    rt = application.extensions["carefile"]
    yield application
    rt.db.dispose()


@pytest.fixture
def rt(app: Any) -> Any:
    return app.extensions["carefile"]
