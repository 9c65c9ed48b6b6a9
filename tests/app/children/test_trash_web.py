"""The trash on the website (issue 20, A and B): delete a child's file or a submission with a confirmation,
see them on the trash page with the day they are purged, restore one or several; coordinators and admins
only, in their regions."""
from __future__ import annotations

import uuid
from html import unescape
from typing import Any

import pytest

from tests.app.children.casework_helpers import REG_MD, phone, post, reg_xml
from tests.app.web_helpers import Browser

VILLAGE = "540102002001"


@pytest.fixture
def kids(app: Any, make_user: Any, publish: Any) -> dict[str, str]:
    publish(REG_MD, "reg.md")
    make_user("dolma", "collector", ["540102"])
    make_user("coord", "coordinator", ["540102"])
    make_user("far", "coordinator", ["540121"])
    make_user("mgr", "manager", ["540102"])
    uids = {k: str(uuid.uuid4()) for k in ("a", "b")}
    post(phone(app, "dolma"), reg_xml("uuid:wa", uids["a"], "扎西", "2012-01-01", VILLAGE))
    post(phone(app, "dolma"), reg_xml("uuid:wb", uids["b"], "卓玛", "2013-01-01", VILLAGE))
    return uids


def _browser(app: Any, name: str) -> Browser:
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")  # the signed-in session's CSRF token
    return b


def _page(b: Browser, url: str) -> str:
    resp = b.get(url)
    assert resp.status_code == 200, resp.status_code
    return unescape(resp.get_data(as_text=True))


def test_delete_a_childs_file_and_restore_it(app: Any, kids: dict[str, str]) -> None:
    a, b = kids["a"], kids["b"]
    web = _browser(app, "coord")
    file_page = _page(web, f"/children/{a}")
    assert 'id="delete"' in file_page and f"/children/{a}/delete" in file_page
    # without the confirmation nothing happens
    resp = web.post(f"/children/{a}/delete", {})
    assert resp.status_code == 302 and resp.location.endswith(f"/children/{a}#delete")
    assert web.get(f"/children/{a}").status_code == 200
    resp = web.post(f"/children/{a}/delete", {"confirm": "yes"})
    assert resp.status_code == 302 and resp.location.endswith("/trash")
    assert web.get(f"/children/{a}").status_code == 404
    assert a not in _page(web, "/children")
    trash = _page(web, "/trash")
    assert f'data-uuid="{a}"' in trash and "扎*" in trash and f'data-uuid="{b}"' not in trash
    # another county's coordinator sees nothing of it and cannot restore it
    far = _browser(app, "far")
    assert f'data-uuid="{a}"' not in _page(far, "/trash")
    assert far.post("/trash/children/restore", {"only": a}).status_code == 404
    # the row's button restores that one child
    resp = web.post("/trash/children/restore", {"only": a})
    assert resp.status_code == 302 and resp.location.endswith(f"/children/{a}")
    assert web.get(f"/children/{a}").status_code == 200
    assert f'data-uuid="{a}"' not in _page(web, "/trash")


def test_restore_several_children_at_once(app: Any, kids: dict[str, str]) -> None:
    web = _browser(app, "coord")
    for uid in kids.values():
        assert web.post(f"/children/{uid}/delete", {"confirm": "yes"}).status_code == 302
    assert web.post("/trash/children/restore", {}).status_code == 302  # nothing ticked: told so
    resp = web.client.post("/trash/children/restore", data={"csrf_token": web.csrf, "uid": list(kids.values())})
    assert resp.status_code == 302 and resp.location.endswith("/trash")
    for uid in kids.values():
        assert web.get(f"/children/{uid}").status_code == 200


def test_delete_several_children_from_the_list(app: Any, kids: dict[str, str]) -> None:
    web = _browser(app, "coord")
    listing = _page(web, "/children")
    assert 'id="bulk-delete"' in listing and f'name="uid" value="{kids["a"]}"' in listing
    ticked = {"csrf_token": web.csrf, "uid": list(kids.values())}
    # without the confirmation: nothing
    resp = web.client.post("/children/delete", data=ticked)
    assert resp.status_code == 302 and resp.location.endswith("/children")
    assert all(web.get(f"/children/{uid}").status_code == 200 for uid in kids.values())
    resp = web.client.post("/children/delete", data={**ticked, "confirm": "yes"})
    assert resp.status_code == 302 and resp.location.endswith("/trash")
    assert all(web.get(f"/children/{uid}").status_code == 404 for uid in kids.values())
    trash = _page(web, "/trash")
    assert all(f'data-uuid="{uid}"' in trash for uid in kids.values())
    # another county's coordinator ticking these children deletes nothing (they are not theirs)
    web.post("/trash/children/restore", {"only": kids["a"]})
    far = _browser(app, "far")
    resp = far.client.post("/children/delete", data={"csrf_token": far.csrf, "uid": [kids["a"]], "confirm": "yes"})
    assert resp.status_code == 404
    assert web.get(f"/children/{kids['a']}").status_code == 200


def test_managers_neither_delete_nor_see_the_trash(app: Any, kids: dict[str, str]) -> None:
    mgr = _browser(app, "mgr")
    assert 'id="delete"' not in _page(mgr, f"/children/{kids['a']}")
    assert 'id="bulk-delete"' not in _page(mgr, "/children")
    assert mgr.post("/children/delete", {"uid": kids["a"], "confirm": "yes"}).status_code == 403
    assert mgr.get("/trash").status_code == 403
    assert mgr.post(f"/children/{kids['a']}/delete", {"confirm": "yes"}).status_code == 403
    assert mgr.get(f"/children/{kids['a']}").status_code == 200


def test_delete_a_submission_from_its_page_and_restore_it(app: Any, kids: dict[str, str]) -> None:
    web = _browser(app, "coord")
    url = "/submissions/child_registration/uuid:wa"
    assert 'id="delete"' in _page(web, url)
    assert web.post(f"{url}/delete", {}).status_code == 302
    assert web.get(url).status_code == 200
    resp = web.post(f"{url}/delete", {"confirm": "yes"})
    assert resp.status_code == 302 and resp.location.endswith("/submissions/child_registration")
    assert web.get(url).status_code == 404
    assert "uuid:wa" not in _page(web, "/submissions/child_registration")
    trash = _page(web, "/trash")
    assert 'data-instance="uuid:wa"' in trash
    assert 'data-instance="uuid:wa"' not in _page(_browser(app, "far"), "/trash")
    mgr = _browser(app, "mgr")
    assert mgr.post(f"{url}/restore", {}).status_code == 403
    resp = web.post(f"{url}/restore", {})
    assert resp.status_code == 302 and web.get(url).status_code == 200
    # the child the record registered was never touched
    assert web.get(f"/children/{kids['a']}").status_code == 200
