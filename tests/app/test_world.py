"""The realistic county of tests/support/world.py, built in-process on each database backend, is what its
API says it is — seen as the people who use the website see it.

Other tests (the pages in Chromium, wording and redaction checks) rely on the world: the children it
lists are on file, the pairs it calls likely duplicates are on the duplicates page, the changes it
calls held wait for review, the conflicts and closures show, and the manager without the grant sees
pseudonyms where the manager with it sees the children's labels.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.cli import cli_runner
from tests.support.world import AppTarget, Website, World, build_world


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "EXPORT_WORKER": "false"}


@pytest.fixture
def target(app: Any, app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> AppTarget:
    return AppTarget(app, cli_runner(app_config, monkeypatch, capsys))


@pytest.fixture
def world(target: AppTarget) -> World:
    return build_world(target, children=40, wait_exports=False)


def page(site: Website, path: str) -> str:
    resp = site.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    return str(resp.content.decode())


def test_the_county_as_its_people_see_it(target: AppTarget, world: World) -> None:
    coord = Website(target.client(), world.users["coord"])
    on_file = [c for c in world.children if not c.merged_into]
    assert len(world.children) == 40 + 6  # and six second registrations of children already on file
    assert f"共 {len(on_file)} 名儿童" in page(coord, "/children")  # the merged file is gone from the list

    duplicates = page(coord, "/children/duplicates")
    shown = re.findall(r'data-pair="\d+"', duplicates)
    assert len(shown) == len(world.duplicate_pairs) >= 2
    for a, b in world.duplicate_pairs:
        assert f"/children/{a}" in duplicates and f"/children/{b}" in duplicates
    assert f"/children/{world.merged[0]}\"" not in duplicates

    held = page(coord, "/held")
    assert len(re.findall(r'<tr id="held-\d+"', held)) == len(world.held) == 2

    dashboard = page(coord, "/dashboard")
    # one phone or two: what the count says is that forms were filled from an out-of-date copy
    assert f"有 {len(world.conflict_children)} 名儿童的档案被依据旧版档案（离线）填写的表单更改" in dashboard
    for uid in world.closed_children:
        assert 'id="closed-note"' in page(coord, f"/children/{uid}")

    busy = world.child(world.busiest_child)
    history = page(coord, f"/children/{busy.uuid}")
    assert '<tr class="mgr-conflict">' in history  # two phones updated the file from the same version
    assert busy.label in history and "吉日街道" in history  # moved to a village of 吉日街道

    # identifying details: the manager with the grant sees the child's label and the visit's photo,
    # the manager without it a pseudonym and no photo
    named = Website(target.client(), world.users["mgr_named"])
    plain = Website(target.client(), world.users["mgr"])
    assert busy.label in page(named, f"/children/{busy.uuid}")
    masked = page(plain, f"/children/{busy.uuid}")
    assert busy.label not in masked and f"儿童 {busy.uuid[:4].upper()}" in masked
    # the children turning 18: labels for the grant, pseudonyms without it
    soon = page(named, "/children/turning18")
    assert re.findall(r'<tr data-uuid="', soon), "the world has children turning 18 within 90 days"
    assert re.search(r"\*（", soon)
    assert not re.search(r"\*（", page(plain, "/children/turning18"))
    visit = world.photo_instances["visit_record"][-1]
    photo = f"/submissions/visit_record/{visit}/files/visit.png"
    assert named.get(photo).status_code == 200 and plain.get(photo).status_code == 403
