"""Reads off the primary (CAREFILE_READ_DATABASE_URL): exports, OData pages, the county report and the
dashboard's refresh read from a PostgreSQL hot standby started here (pg_basebackup + streaming
replication); a replica that lags says "figures as of"; a replica that is down leaves the primary to
answer. PostgreSQL only."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from tests.app.conftest import PASSWORD, submission_body
from tests.app.web_helpers import Browser
from tests.conftest import BACKENDS
from tests.support.digest_client import DigestClient
from tests.support.pgserver import PgServer, find_bindir, start_postgres, start_standby, wait_for_replay
from tests.support.sample_forms import household_xml

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS or find_bindir() is None,
                                reason="PostgreSQL only (a standby needs its server binaries)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PgServer, PgServer]]:
    primary = start_postgres()
    try:
        admin = create_engine(primary.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE carefile"))
        admin.dispose()
        from tests.conftest import _migrate

        _migrate(primary.url("carefile"))
        standby = start_standby(primary)
        try:
            yield primary, standby
        finally:
            standby.stop()
    finally:
        primary.stop()


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def database_url(cluster: tuple[PgServer, PgServer]) -> str:
    return cluster[0].url("carefile")


@pytest.fixture
def app_config(tmp_path: Path, database_url: str, cluster: tuple[PgServer, PgServer]) -> dict[str, Any]:
    return {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
            "READ_DATABASE_URL": cluster[1].url("carefile"), "STORAGE_URL": str(tmp_path / "blobs"),
            "ODK_VALIDATE": "off", "SECRET_KEY": "test-secret", "XLSFORMS_DIR": str(tmp_path / "no-forms")}


def _caught_up(rt: Any, primary: PgServer, standby: PgServer) -> None:
    wait_for_replay(primary.url("carefile"), standby.url("carefile"))


def _standby_sql(standby: PgServer, sql: str) -> None:
    eng = create_engine(standby.url("carefile"), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(sql))
    eng.dispose()


def _odata_ids(api: Any) -> set[str]:
    resp = api.get("/v1/projects/1/forms/household.svc/Submissions")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {row["__id"] for row in resp.get_json()["value"]}


def test_long_reads_come_from_the_replica_and_say_how_old(app: Any, rt: Any, cluster: Any, household: Any,
                                                          collector: Any, login: Any, make_user: Any) -> None:
    from app.models import DashboardRollup, Submission
    from app.services.reports import rollup

    primary, standby = cluster
    collect = DigestClient(app.test_client(), "tashi", PASSWORD)
    for i in range(3):
        resp = collect.post("/v1/projects/1/submission", data=submission_body(household_xml(f"uuid:r-{i}")),
                            content_type="multipart/form-data")
        assert resp.status_code == 201, resp.get_data(as_text=True)
    api = login("coord", "coordinator", ["54"])
    _caught_up(rt, primary, standby)
    with rt.db.bulk_read() as s:
        assert s.info["replica"] is True and s.info["as_of"] is None
        assert s.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
    assert _odata_ids(api) == {f"uuid:r-{i}" for i in range(3)}

    # The standby stops applying changes: what it serves is as of its last applied change.
    _standby_sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        resp = collect.post("/v1/projects/1/submission", data=submission_body(household_xml("uuid:r-late")),
                            content_type="multipart/form-data")
        assert resp.status_code == 201
        with rt.db.session() as s:  # the primary has it
            assert s.scalar(select(Submission.id).where(Submission.instance_id == "uuid:r-late")) is not None
        assert "uuid:r-late" not in _odata_ids(api)  # OData reads the replica
        csv = api.get("/v1/projects/1/forms/household/submissions.csv")
        assert csv.status_code == 200 and b"uuid:r-0" in csv.data and b"uuid:r-late" not in csv.data
        # A background export, asked for on the primary, renders its rows from the replica.
        job = api.post("/v1/projects/1/exports", {"form": "household", "format": "json"})
        assert job.status_code == 202, job.get_data(as_text=True)
        from app.services.exports import jobs

        assert jobs.run_pending(rt.db, rt.store, "test-worker") == 1
        done = api.get(f"/v1/projects/1/exports/{job.get_json()['id']}/file")
        assert done.status_code == 200 and b"uuid:r-0" in done.data and b"uuid:r-late" not in done.data
        with rt.db.bulk_read() as s:
            as_of = s.info["as_of"]
        assert as_of is not None
        web = Browser(app)
        make_user("coord2", "coordinator", ["54"])
        web.login("coord2")
        page = web.get("/reports?county=540102").get_data(as_text=True)
        assert "报表所读取的数据库副本正在同步" in page  # "Figures as of …: the copy … is catching up"
        with rt.db.write() as w, rt.db.bulk_read() as src:
            rollup.refresh(w, 1, date.today(), source=src)
        with rt.db.session() as s:
            stamped = s.scalars(select(DashboardRollup.computed_at)).first()
        assert stamped is not None and stamped <= as_of
    finally:
        _standby_sql(standby, "SELECT pg_wal_replay_resume()")
    _caught_up(rt, primary, standby)
    assert "uuid:r-late" in _odata_ids(api)

    # The replica goes away: the primary answers the long reads.
    standby_data = standby.root / "data"
    import subprocess

    subprocess.run(standby.runas + [str(standby.bindir / "pg_ctl"), "-D", str(standby_data), "-m", "fast", "-w",
                                    "stop"], check=True, capture_output=True)
    rt.db.read_engine.dispose()
    with rt.db.bulk_read() as s:
        assert not s.info.get("replica")
        assert s.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
    assert len(_odata_ids(api)) == 4
