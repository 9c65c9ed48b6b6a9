"""`carefile cluster` (app/services/exports/layout.py): a county's records stored together on PostgreSQL —
the exports give the same rows afterwards, and the rows lie in (form, county, received) order."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.cli import main as cli_main
from app.services.exports import layout
from tests.app.exports.test_exports import Api, arriving, direct


@pytest.fixture
def mixed(app: Any, rt: Any, make_user: Any, publish: Any) -> list[str]:
    """Six records arriving day by day, alternately from two counties (as records arrive)."""
    return arriving(app, rt, make_user, publish, [f"uuid:m{i}" for i in range(6)], [1 + i for i in range(6)])


def test_cluster_keeps_every_export_row_and_stores_a_county_together(app: Any, rt: Any, make_user: Any,
                                                                      mixed: list[str]) -> None:
    make_user("admin1", "admin")
    api = Api(app, "admin1")
    queries = ("", "?region=540121", "?region=540102", "?date_from=2026-03-03")
    before = {q: direct(api, q) for q in queries}
    said: list[str] = []
    took = layout.cluster_by_region(rt.db.engine, say=said.append)
    assert {q: direct(api, q) for q in queries} == before
    assert len(before["?region=540121"]["care.csv"]) == 4  # header + the three records of Village B
    if rt.db.is_sqlite:
        assert took == {} and said == ["Nothing to do: only PostgreSQL keeps a table in an order."]
        return
    assert set(took) == {"submission", "submission_version", "submission_repeat_row"}
    with rt.db.session() as s:
        stored = list(s.execute(text(
            "SELECT s.instance_id FROM submission_version v JOIN submission s ON s.id = v.submission_id "
            "ORDER BY v.ctid")).scalars())
        repeat_rows = list(s.execute(text(
            "SELECT s.instance_id FROM submission_repeat_row r JOIN submission_version v ON v.id = r.version_id "
            "JOIN submission s ON s.id = v.submission_id ORDER BY r.ctid")).scalars())
        leftovers = s.execute(text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'carefile_cluster%'")).scalar()
    by_county = [iid for i, iid in enumerate(mixed) if i % 2] + [iid for i, iid in enumerate(mixed) if not i % 2]
    assert stored == by_county  # 540102 (Village A) first, each county in the order received
    assert repeat_rows == sorted(repeat_rows, key=by_county.index)
    assert leftovers == 0  # the command's helper function and index are gone


def test_the_command_runs(capsys: Any, monkeypatch: Any, rt: Any) -> None:
    monkeypatch.setattr("app.cli._runtime", lambda: rt)
    assert cli_main(["cluster"]) == 0
    out = capsys.readouterr().out
    assert ("Nothing to do" in out) if rt.db.is_sqlite else ("Records stored in (form, county, received) order" in out)
