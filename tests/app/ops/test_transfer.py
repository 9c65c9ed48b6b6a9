"""carefile transfer: SQLite + local files → PostgreSQL + S3 (and back), proven by counts, hashes, exports."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.app.conftest import submission_body
from tests.app.ops.test_backup import seaweed  # noqa: F401 - the SeaweedFS fixture
from tests.conftest import BACKENDS
from tests.support.cli import cli_runner
from tests.support.digest_client import DigestClient
from tests.support.sample_forms import household_xml

PHOTOS = [b"\xff\xd8\xff" + os.urandom(2000 + i) for i in range(3)]


@pytest.fixture
def destination(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The other backend, empty: PostgreSQL + S3 for a SQLite source, SQLite + a folder for PostgreSQL."""
    if "postgresql" not in BACKENDS:
        pytest.skip("needs PostgreSQL (CAREFILE_TEST_BACKENDS)")
    if backend == "postgresql":
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'moved' / 'carefile.db'}",
               "STORAGE_URL": str(tmp_path / "moved")}
        return
    server = request.getfixturevalue("pg_server")
    s3 = request.getfixturevalue("seaweed")
    name = f"moved_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield {"DATABASE_URL": server.url(name), "STORAGE_URL": f"s3://{s3.bucket}/moved-{name}",
           "S3_ENDPOINT_URL": s3.endpoint_url, "S3_ACCESS_KEY": s3.access_key, "S3_SECRET_KEY": s3.secret_key,
           "S3_REGION": s3.region}
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_transfer_moves_and_proves_the_copy(app: Any, rt: Any, submit: Callable[..., Any], app_config: dict[str, Any],
                                            destination: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from app import create_app
    from app.models import Submission, SubmissionAttachment

    for i, photo in enumerate(PHOTOS):
        assert submit(household_xml(f"uuid:t-{i}", name=f"Child {i}"), files={"photo.jpg": photo}).status_code == 201
    for key in ("S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION"):
        if key in destination:
            monkeypatch.setenv(f"CAREFILE_{key}", destination[key])
    run = cli_runner(app_config, monkeypatch, capsys)
    code, out, err = run("transfer", "--to-database", destination["DATABASE_URL"],
                         "--to-storage", destination["STORAGE_URL"])
    assert code == 0, out + err
    assert "identical before and after" in out and "Transferred and proven" in out
    assert "submission " in out and "         3 rows" in out

    moved = create_app({**app_config, **destination})
    rt2 = moved.extensions["carefile"]
    try:
        with rt2.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == 3
            keys = set(s.scalars(select(SubmissionAttachment.blob_key)
                                 .where(SubmissionAttachment.blob_key.is_not(None))))
        assert len(keys) == 3
        for key in keys:
            with rt2.store.open(key) as fh:
                assert fh.read() in PHOTOS
        # The moved deployment keeps working: a collector signs in and a new submission gets new ids.
        client = DigestClient(moved.test_client(), "tashi", "correct horse")
        resp = client.post("/v1/projects/1/submission", content_type="multipart/form-data",
                           data=submission_body(household_xml("uuid:after")))
        assert resp.status_code == 201, resp.data
        with rt2.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == 4
            # the per-form SQL view was generated in the destination too
            assert s.execute(text("SELECT COUNT(*) FROM form_household")).scalar_one() == 4
    finally:
        rt2.db.dispose()

    # A second transfer into the now non-empty destination is refused.
    code, out, err = run("transfer", "--to-database", destination["DATABASE_URL"],
                         "--to-storage", destination["STORAGE_URL"])
    assert code == 1 and "already holds" in err
