"""A small two-county world for the access tests: users of every role, a child and records in
county A (540102) and in county B (540121), sensitive answers and files, export jobs, a held change.

Names are chosen so a leak is easy to spot in any response body: the county-A child is called
甲OWNNAME, the county-B child 乙FARNAME; their labels are built from the names (so they are
sensitive too): 甲* and 乙*.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from io import BytesIO
from typing import Any

from tests.app.conftest import PASSWORD

REG_MD = """
| settings |
| | form_id | version | instance_name |
| | reg | 1 | concat('INST-', ${child_name}) |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive | calculation |
| | text | child_name | Name | | yes | |
| | text | id_number | ID number | | yes | |
| | begin_group | grp_guardian | Guardian | | | |
| | text | guardian_name | Guardian | | yes | |
| | text | guardian_phone | Guardian's phone | | yes | |
| | end_group | grp_guardian | | | | |
| | text | village | Village code | village | | |
| | date | birth_date | Date of birth | birth_date | | |
| | image | photo | Photo of the child | | yes | |
| | image | house | Photo of the house | | | |
| | text | note | Note | | | |
| | calculate | child_label | | | | concat(substr(${child_name}, 0, 1), '*') |

| entities |
| | list_name | label |
| | children | ${child_label} |
"""

VISIT_MD = """
| settings |
| | form_id | version |
| | visit | 1 |

| survey |
| | type | name | label | save_to | bind::carefile:sensitive |
| | select_one_from_file children.csv | child | Child | | |
| | text | observation | What you saw | | yes |
| | text | status | Status | status | |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""

VILLAGE_A, VILLAGE_B = "540102001001", "540121001001"
PHOTO_A = b"\xff\xd8\xff\xe0OWN-CHILD-FACE" + bytes(range(64))
PHOTO_B = b"\xff\xd8\xff\xe0FAR-CHILD-FACE" + bytes(range(64))


def identifying(name: str) -> dict[str, str]:
    """The identifying answers of a child in this world: each a value nobody without the grant may see."""
    tag = "OWN" if name.startswith("甲") else ("FAR" if name.startswith("乙") else "HELD")
    digit = {"OWN": "1", "FAR": "2", "HELD": "3"}[tag] + str(ord(name[0]) % 10)
    return {"id_number": f"IDNO{tag}54019X", "guardian_name": f"{name[0]}GUARDIAN{tag}",
            "guardian_phone": f"1390000{digit}77", "instance_name": f"INST-{name}"}


def turning_18_soon() -> str:
    """A date of birth 18 years before a month from now: the child is on the turning-18 list."""
    soon = date.today() + timedelta(days=30)
    return (soon.replace(year=soon.year - 18) if not (soon.month == 2 and soon.day == 29)
            else date(soon.year - 18, 2, 28)).isoformat()


def reg_xml(instance: str, child: str, name: str, village: str, deprecated: str | None = None,
            note: str = "") -> bytes:
    dep = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    born = f"<birth_date>{turning_18_soon()}</birth_date>"
    create = "0" if deprecated else "1"
    who = identifying(name)
    return (f'<data id="reg" version="1"><child_name>{name}</child_name><id_number>{who["id_number"]}</id_number>'
            f"<grp_guardian><guardian_name>{who['guardian_name']}</guardian_name><guardian_phone>"
            f"{who['guardian_phone']}</guardian_phone></grp_guardian><village>{village}</village>{born}"
            f"<photo>p.jpg</photo><house>h.jpg</house><note>{note}</note><child_label>{name[0]}*</child_label>"
            f"<meta><instanceID>{instance}</instanceID>{dep}<instanceName>{who['instance_name']}</instanceName>"
            f'<entity dataset="children" id="{child}" create="{create}"><label>{name[0]}*</label></entity>'
            "</meta></data>").encode()


def visit_xml(instance: str, child: str, base: int, observation: str = "cries at night",
              status: str = "watch", village: str | None = None, label: str = "") -> bytes:
    extra = f"<village>{village}</village>" if village else ""
    return (f'<data id="visit" version="1"><child>{child}</child><observation>{observation}</observation>'
            f"<status>{status}</status>{extra}<meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{child}" update="1" baseVersion="{base}" trunkVersion="" branchId="">'
            f"<label>{label}</label></entity></meta></data>").encode()


def basic(name: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{PASSWORD}".encode()).decode(),
            "X-OpenRosa-Version": "1.0"}


def post_submission(client: Any, user: str, xml: bytes, files: dict[str, bytes] | None = None,
                    base: str = "/v1/projects/1") -> Any:
    data: dict[str, Any] = {"xml_submission_file": (BytesIO(xml), "submission.xml", "text/xml")}
    for name, content in (files or {}).items():
        data[name] = (BytesIO(content), name, "image/jpeg")
    return client.post(f"{base}/submission", data=data, content_type="multipart/form-data", headers=basic(user))


@dataclass
class Side:
    """One county's records."""

    child: str
    name: str
    label: str
    instance: str
    job_id: int = 0
    held_id: int = 0
    collector: str = ""
    secrets: list[str] = field(default_factory=list)  # values nobody outside the county may see
    identifying: list[str] = field(default_factory=list)  # what only readers with the grant may see


@dataclass
class World:
    a: Side
    b: Side
    tokens: dict[str, str]
    user_ids: dict[str, int]
    version_id: int


USERS = {
    # name: (role, regions, may see sensitive details)
    "root": ("admin", [], False),
    "coord_a": ("coordinator", ["540102"], False),
    "coord_b": ("coordinator", ["540121"], False),
    "coord_none": ("coordinator", [], False),
    "mgr_a": ("manager", ["540102"], False),
    "mgr_s": ("manager", ["540102"], True),
    "mgr_b": ("manager", ["540121"], False),
    "mgr_none": ("manager", [], False),
    "col_a": ("collector", ["540102"], False),
    "col_b": ("collector", ["540121"], False),
}


def build_world(app: Any, rt: Any, publish: Any) -> World:
    from sqlalchemy import select

    from app.models import FormVersion, User
    from app.services.identity import users as user_service

    publish(REG_MD, "reg.md")
    publish(VISIT_MD, "visit.md")
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with rt.db.write() as s:
        for name, (role, regions, sensitive) in USERS.items():
            u = user_service.create_user(s, project_id=1, username=name, role=role, password=PASSWORD,
                                         realm=rt.config["DIGEST_REALM"], regions=regions)
            u.sees_sensitive = sensitive
            s.flush()
            ids[name] = u.id
            if role == "collector":
                tokens[name] = user_service.issue_token(s, u, rt.config["SECRET_KEY"]).token
        version_id = s.scalar(select(FormVersion.id).order_by(FormVersion.id))
        assert version_id is not None
        assert s.scalar(select(User).where(User.username == "mgr_s")).sees_sensitive  # type: ignore[union-attr]
    client = app.test_client()
    a = Side(child=str(uuid.uuid4()), name="甲OWNNAME", label="甲*", instance=f"uuid:{uuid.uuid4()}",
             collector="col_a")
    b = Side(child=str(uuid.uuid4()), name="乙FARNAME", label="乙*", instance=f"uuid:{uuid.uuid4()}",
             collector="col_b")
    for side, user, village, photo in ((a, "col_a", VILLAGE_A, PHOTO_A), (b, "col_b", VILLAGE_B, PHOTO_B)):
        resp = post_submission(client, user, reg_xml(side.instance, side.child, side.name, village),
                               {"p.jpg": photo, "h.jpg": b"\xff\xd8house"})
        assert resp.status_code == 201, resp.data
        side.identifying = [side.name, side.label, *identifying(side.name).values()]
        side.secrets = [side.child, side.instance, *side.identifying]
    # One export job per county manager.
    for side, mgr in ((a, "mgr_a"), (b, "mgr_b")):
        resp = client.post("/v1/projects/1/exports", json={"form": "reg", "format": "csvzip"}, headers=basic(mgr))
        assert resp.status_code in (201, 202), resp.data
        side.job_id = int(resp.get_json()["id"])
    # A collector of county A registers a child in county B: stored, held for county B's coordinator.
    held_child = str(uuid.uuid4())
    resp = post_submission(client, "col_a", reg_xml(f"uuid:{uuid.uuid4()}", held_child, "丙HELDNAME", VILLAGE_B))
    assert resp.status_code == 201, resp.data
    resp = post_submission(client, "col_b", reg_xml(f"uuid:{uuid.uuid4()}", str(uuid.uuid4()), "丁HELDNAME",
                                                    VILLAGE_A))
    assert resp.status_code == 201, resp.data
    from app.models import HeldChange

    with rt.db.session() as s:
        for h in s.scalars(select(HeldChange)):
            if h.regions == [VILLAGE_B]:
                b.held_id = h.id
            elif h.regions == [VILLAGE_A]:
                a.held_id = h.id
    assert a.held_id and b.held_id
    return World(a=a, b=b, tokens=tokens, user_ids=ids, version_id=version_id)
