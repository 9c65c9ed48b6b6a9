"""Region codes are checked on every write that does not come from a phone (issue 19, Build 7)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.app.api.test_api_app_users_entities import ENTITIES, children  # noqa: F401  (fixture)
from tests.support.api_client import ApiClient


@pytest.mark.parametrize("data,field,message", [
    ({"village": "540102002001x"}, "village", "not a village code: a village code has 12 digits"),
    ({"village": "54010200200"}, "village", "12 digits"),
    ({"village": "５４０１０２００２００１"}, "village", "12 digits"),  # full-width digits
    ({"village": "549999002001"}, "village", "no place with the code '549999'"),
])
def test_entity_writes_check_region_codes(children: ApiClient, data: dict[str, str], field: str,  # noqa: F811
                                          message: str) -> None:
    api = children
    created = api.post(ENTITIES, json={"label": "Pema", "data": {"village": "540102002202"}})
    assert created.status_code == 200
    uid = created.get_json()["uuid"]
    for resp in (api.patch(f"{ENTITIES}/{uid}?force=true", json={"data": data}),
                 api.post(ENTITIES, json={"label": "Nyima", "data": data})):
        body = resp.get_json()
        assert resp.status_code == 400, body
        assert message in body["message"] and body["details"]["field"] == field
    assert api.get(f"{ENTITIES}/{uid}").get_json()["currentVersion"]["data"]["village"] == "540102002202"


def test_a_valid_move_still_works(children: ApiClient, app: Any) -> None:  # noqa: F811
    api = children
    uid = api.post(ENTITIES, json={"label": "Pema", "data": {"village": "540102002202"}}).get_json()["uuid"]
    resp = api.patch(f"{ENTITIES}/{uid}?force=true", json={"data": {"village": "540102002201"}})
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("data,ok", [
    ({"township": "540102002"}, True), ({"township": ""}, True), ({"county": "540102"}, True), ({}, True),
    ({"township": "540102002001"}, False), ({"county": "54010"}, False), ({"prefecture": "54x1"}, False),
    ({"county": "549999"}, False), ({"village": " 540102002001"}, False),
])
def test_every_region_property_is_checked(data: dict[str, str], ok: bool) -> None:
    from app.errors import Problem
    from app.services import regions

    if ok:
        regions.check_properties(data)
    else:
        with pytest.raises(Problem) as exc:
            regions.check_properties(data)
        assert exc.value.status == 400 and exc.value.details["field"] == next(iter(data))
