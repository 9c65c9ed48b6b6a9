"""The care file end to end: ODK's own form engine fills the SERVED shipped forms, phones talk
OpenRosa to the server exactly like ODK Collect.

The five shipped XLSForms (xlsforms/) are published with the app's own publish_form. Each phone
(`Phone` below) does what Collect does: formList → form XML download (hash checked) → manifest →
children.csv download when the manifest hash changed → HEAD preflight → multipart POST of the
engine's submission. Runs on SQLite and on a real PostgreSQL (the `app` fixture).

1. A (region 540102) registers a child with consent: the masked child is in A's children.csv at
   version 1, not in B's (region 540121); B's manifest hash is unchanged, A's changed.
2. A identifies the child, picked from the children.csv A downloaded: version 2, new status.
3. A and A2 (both 540102) sync, go offline and both identify the child from the same list
   (same baseVersion, each phone its own branchId): both updates are kept, the entity is flagged.
4. A registration without consent stores the submission but creates no entity (CSV unchanged).
"""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
import uuid
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select

from app.models import Entity, EntityEvent, EntityVersion, Submission
from tests.app.conftest import PASSWORD
from tests.e2e import engine
from tests.support.digest_client import DigestClient

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not installed (needed for the ODK form engine)",
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["child_registration", "identification", "assessment", "visit_record", "referral_followup"]
NS_FORMLIST = "{http://openrosa.org/xforms/xformsList}"
NS_MANIFEST = "{http://openrosa.org/xforms/xformsManifest}"
NS_ENTITIES = "http://www.opendatakit.org/xforms/entities"
VILLAGE_A = "540102002001"  # 绕赛社区居委会, 八廓街道, 城关区
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


# ------------------------------------------------------------------------------------ the phone


class Phone:
    """ODK Collect on one device: its blank forms, media and local entity store.

    Local entity store (Collect's LocalEntityUseCases / EntitiesRepository, docs/odk-protocol.md, *Entities*):
    the form does not read the server's children.csv directly, it reads Collect's entity
    database, where each row carries `__trunkVersion` and `__branchId`. When a server list
    arrives, a new row — or one whose server version is higher, or equal while the local copy
    was changed offline — is stored with trunkVersion = server version and a FRESH RANDOM
    branchId (Collect's `updateLocalEntitiesFromServer`); a row whose local version is ahead
    (offline updates not yet on the server) is kept. After a form is finalised, its update is
    applied locally (version + 1, same trunk/branch). The server's own `__trunkVersion` /
    `__branchId` columns are ignored, as Collect does (its `__branchId` is blank). So the CSV
    handed to the engine is the one Collect would present, and the engine computes
    baseVersion / trunkVersion / branchId from it itself — no post-editing of the XML.
    """

    def __init__(self, app: Any, username: str) -> None:
        self.http = DigestClient(app.test_client(), username, PASSWORD)
        self.device_id = f"collect:{uuid.uuid4().hex[:16]}"
        self.forms: dict[str, bytes] = {}
        self.manifest_urls: dict[str, str] = {}
        self.list_hash: dict[str, str] = {}  # entity list → manifest hash of the copy we hold
        self.server_csv: dict[str, bytes] = {}  # entity list → the bytes last downloaded
        self.columns: dict[str, list[str]] = {}  # entity list → property columns
        self.local: dict[str, dict[str, dict[str, Any]]] = {}  # list → entity id → local row
        self.media: dict[str, bytes] = {}  # other form media (regions.csv) by file name

    # -- HTTP as Collect does it: paths (the Digest uri is path + query), X-OpenRosa-Version
    @staticmethod
    def _path(url: str) -> str:
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https") and parts.netloc, url
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def get(self, url: str, **kw: Any) -> Any:
        return self.http.get(self._path(url) if "://" in url else url, **kw)

    def sync(self) -> None:
        """'Get Blank Form' / 'Update forms' (match exactly): forms, manifests, entity lists."""
        resp = self.get("/v1/projects/1/formList")
        assert resp.status_code == 200, resp.data
        assert resp.headers["X-OpenRosa-Version"] == "1.0"
        root = ET.fromstring(resp.data)
        listed = {xf.findtext(f"{NS_FORMLIST}formID") or "": xf for xf in root.iter(f"{NS_FORMLIST}xform")}
        assert set(SHIPPED) <= set(listed), sorted(listed)
        for fid in SHIPPED:
            xf = listed[fid]
            want = xf.findtext(f"{NS_FORMLIST}hash")
            assert want and want.startswith("md5:")
            if fid not in self.forms or hashlib.md5(self.forms[fid]).hexdigest() != want[4:]:
                got = self.get(xf.findtext(f"{NS_FORMLIST}downloadUrl") or "")
                assert got.status_code == 200, got.data
                assert hashlib.md5(got.data).hexdigest() == want[4:]
                self.forms[fid] = got.data
            murl = xf.findtext(f"{NS_FORMLIST}manifestUrl")
            assert murl, f"{fid} has children.csv: it must have a manifest"
            self.manifest_urls[fid] = murl
            self._media(fid)

    def manifest(self, fid: str) -> dict[str, dict[str, str | None]]:
        resp = self.get(self.manifest_urls[fid])
        assert resp.status_code == 200, resp.data
        assert resp.headers["X-OpenRosa-Version"] == "1.0"
        out = {}
        for mf in ET.fromstring(resp.data).iter(f"{NS_MANIFEST}mediaFile"):
            name = mf.findtext(f"{NS_MANIFEST}filename") or ""
            out[name] = {"type": mf.get("type"), "hash": mf.findtext(f"{NS_MANIFEST}hash"),
                         "url": mf.findtext(f"{NS_MANIFEST}downloadUrl"),
                         "integrity": mf.findtext(f"{NS_MANIFEST}integrityUrl")}
        return out

    def children_hash(self, fid: str = "identification") -> str:
        entry = self.manifest(fid)["children.csv"]
        assert entry["type"] == "entityList" and entry["integrity"]
        return str(entry["hash"])

    def _media(self, fid: str) -> None:
        for name, mf in self.manifest(fid).items():
            if name == "regions.csv":  # plain media: downloaded when its hash changed
                assert mf["type"] is None and str(mf["hash"]).startswith("md5:")
                if hashlib.md5(self.media.get(name, b"")).hexdigest() != str(mf["hash"])[4:]:
                    resp = self.get(str(mf["url"]))
                    assert resp.status_code == 200, resp.data
                    assert hashlib.md5(resp.data).hexdigest() == str(mf["hash"])[4:]
                    self.media[name] = resp.data
                continue
            assert name == "children.csv" and mf["type"] == "entityList", (name, mf)
            hash_ = str(mf["hash"])
            assert hash_.startswith("md5:")  # Collect strips 4 characters unconditionally
            lst = name.removesuffix(".csv")
            if self.list_hash.get(lst) == hash_:
                continue  # Collect: same list hash → nothing to download
            resp = self.get(f"{mf['url']}?deviceID={self.device_id}")
            assert resp.status_code == 200, resp.data
            assert resp.headers["Content-Type"].startswith("text/csv")
            assert resp.headers["ETag"].strip('"') == hash_[4:] == hashlib.md5(resp.data).hexdigest()
            self._import(lst, resp.data)
            self.list_hash[lst] = hash_

    def _import(self, lst: str, body: bytes) -> None:
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
        header = next(csv.reader(io.StringIO(body.decode("utf-8"))))
        assert header[:3] == ["name", "label", "__version"]
        self.server_csv[lst] = body
        self.columns[lst] = [c for c in header if c not in ("name", "label") and not c.startswith("__")]
        local = self.local.setdefault(lst, {})
        seen = set()
        for row in rows:
            uid, version = row["name"], int(row["__version"])
            seen.add(uid)
            mine = local.get(uid)
            if mine is None or mine["version"] < version or (mine["version"] == version and mine["dirty"]):
                local[uid] = {"label": row["label"], "version": version, "trunk": version,
                              "branch": str(uuid.uuid4()), "dirty": False,
                              "props": {c: row.get(c, "") for c in self.columns[lst]}}
        for uid in [u for u, r in local.items() if u not in seen and not r["dirty"]]:
            del local[uid]  # online entity gone from the server list (deleted / out of scope)

    def local_csv(self, lst: str = "children") -> bytes:
        """The list as the form sees it on this phone (Collect's entity database)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["name", "label", "__version", "__trunkVersion", "__branchId", *self.columns[lst]])
        for uid, r in self.local[lst].items():
            w.writerow([uid, r["label"], r["version"], r["trunk"] or "", r["branch"],
                        *[r["props"].get(c, "") for c in self.columns[lst]]])
        return out.getvalue().encode("utf-8")

    def fill(self, fid: str, answers: list[dict[str, Any]]) -> engine.FilledSubmission:
        assert "regions.csv" in self.media, "the places list was not served with the form"
        sub = engine.fill(self.forms[fid], answers, attachments={"children.csv": self.local_csv(), **self.media})
        self._apply_locally(fid, sub)
        return sub

    def _apply_locally(self, fid: str, sub: engine.FilledSubmission) -> None:
        """Collect's updateLocalEntitiesFromForm after finalisation (forms ≥ 2024.1)."""
        root = ET.fromstring(sub.xml)
        ent = root.find("meta/entity")
        if ent is None:
            return
        form = ET.fromstring(self.forms[fid])
        saveto = {}
        for bind in form.iter("{http://www.w3.org/2002/xforms}bind"):
            prop = bind.get(f"{{{NS_ENTITIES}}}saveto")
            if prop:
                saveto[prop] = root.findtext(bind.get("nodeset", "").removeprefix("/data/")) or ""
        local = self.local.setdefault("children", {})
        label = ent.findtext("label") or ""
        uid = ent.get("id") or ""
        if ent.get("update") in ("1", "true") and uid in local:
            r = local[uid]
            r["version"] += 1
            r["label"] = label or r["label"]
            r["props"].update(saveto)
            r["dirty"] = True
        elif ent.get("create") in ("1", "true") and uid:
            local[uid] = {"label": label, "version": 1, "trunk": None,
                                    "branch": str(uuid.uuid4()), "dirty": True, "props": saveto}

    def send(self, sub: engine.FilledSubmission) -> Any:
        """Collect's upload: HEAD preflight (204), then one multipart POST."""
        url = f"/v1/projects/1/submission?deviceID={self.device_id}"
        head = self.http.head(url)
        assert head.status_code == 204, head.data
        assert int(head.headers["X-OpenRosa-Accept-Content-Length"]) > len(sub.xml)

        def body() -> dict[str, Any]:
            data: dict[str, Any] = {"xml_submission_file": (BytesIO(sub.xml), "submission.xml", "text/xml")}
            for name, content in sub.files.items():
                data[name] = (BytesIO(content), name, "image/png")
            return data

        resp = self.http.post(url, data=body, content_type="multipart/form-data")
        assert resp.status_code == 201, resp.data
        return resp

    def children(self, fid: str = "identification") -> list[dict[str, str]]:
        """Download children.csv now (as Collect does after a changed manifest hash)."""
        url = self.manifest(fid)["children.csv"]["url"]
        resp = self.get(str(url))
        assert resp.status_code == 200, resp.data
        return list(csv.DictReader(io.StringIO(resp.data.decode("utf-8"))))


# ------------------------------------------------------------------------------------ answers


def years_ago(years: int, months: int = 0) -> str:
    t = date.today()
    m = t.month - months
    y = t.year - years + (m - 1) // 12
    m = (m - 1) % 12 + 1
    return date(y, m, min(t.day, 28)).isoformat()


def days_ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).isoformat()


BIRTH = years_ago(12, 1)
MASKED_LABEL = f"扎*（男，{BIRTH[:7]}，绕赛社区居委会）"


def region(prefix: str = "/data/grp_region") -> list[dict[str, str]]:
    return [
        {"ref": f"{prefix}/prefecture", "value": "5401"},
        {"ref": f"{prefix}/county", "value": "540102"},
        {"ref": f"{prefix}/township", "value": "540102002"},
        {"ref": f"{prefix}/village", "value": VILLAGE_A},
    ]


def sig(ref: str) -> dict[str, Any]:
    return {"ref": ref, "file": PNG, "name": "sig.png", "type": "image/png"}


def registration(consent: str = "yes") -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = [
        {"ref": "/data/grp_worker/worker_role", "value": "child_director"},
        {"ref": "/data/grp_worker/worker_name", "value": "卓玛"},
        {"ref": "/data/grp_worker/worker_phone", "value": "13800000000"},
        *region(),
        {"ref": "/data/grp_consent/consent_guardian", "value": consent},
    ]
    if consent != "yes":
        return answers + [{"ref": "/data/grp_consent/refusal_reason", "value": "监护人暂不同意"}]
    return answers + [
        {"ref": "/data/grp_consent/consent_sensitive", "value": "yes"},
        sig("/data/grp_consent/consent_signature"),
        {"ref": "/data/grp_age/birth_date", "value": BIRTH},
        {"ref": "/data/grp_assent/child_assent", "value": "yes"},
        {"ref": "/data/grp_child/child_name", "value": "扎西次仁"},
        {"ref": "/data/grp_child/gender", "value": "male"},
        {"ref": "/data/grp_child/ethnicity", "value": "tibetan"},
        {"ref": "/data/grp_child/child_category", "values": ["left_behind", "low_income"]},
        {"ref": "/data/grp_child/school_status", "value": "dropout"},
        {"ref": "/data/grp_child/living_with", "value": "grandparents"},
        {"ref": "/data/grp_guardian/guardian_name", "value": "次仁"},
        {"ref": "/data/grp_guardian/guardian_relation", "value": "grandparent"},
        {"ref": "/data/grp_guardian/guardian_phone", "value": "13912345678"},
        {"ref": "/data/grp_guardian/guardian_capacity", "value": "limited"},
        {"ref": "/data/photo_consent", "value": "no"},
    ]


def identification(child: str, result: str, visit_date: str) -> list[dict[str, Any]]:
    """An identification whose score suggests `result` ('refer' or 'watch'), which is chosen."""
    if result == "refer":  # score 3
        emotion, behaviour, duration, impact = ["e_sad", "e_interest"], ["b_withdraw"], "gt1m", "some"
    else:  # watch
        emotion, behaviour, duration, impact = ["e_sad"], ["none"], "lt2w", "no_impact"
    return [
        {"ref": "/data/worker_role", "value": "child_director"},
        *region(),
        {"ref": "/data/child", "value": child},
        {"ref": "/data/visit_date", "value": visit_date},
        {"ref": "/data/id_methods", "values": ["home_visit", "talk_child"]},
        {"ref": "/data/grp_obs/obs_emotion", "values": emotion},
        {"ref": "/data/grp_obs/obs_behaviour", "values": behaviour},
        {"ref": "/data/grp_obs/obs_physical", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_school", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_family", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_redflag", "values": ["none"]},
        {"ref": "/data/duration", "value": duration},
        {"ref": "/data/impact", "value": impact},
        {"ref": "/data/id_result", "value": result},
        {"ref": "/data/guardian_informed", "value": "yes"},
        {"ref": "/data/obs_summary", "value": "儿童近一个月情绪低落，与奶奶交流少。"},
        sig("/data/worker_signature"),
    ]


def entity_block(sub: engine.FilledSubmission) -> ET.Element:
    ent = ET.fromstring(sub.xml).find("meta/entity")
    assert ent is not None and ent.get("dataset") == "children"
    return ent


# ------------------------------------------------------------------------------------ the test


@pytest.fixture
def phones(app: Any, rt: Any) -> dict[str, Phone]:
    from app.services.identity import users
    from app.services.ops import setup

    for name in SHIPPED:  # as `carefile init` publishes them (regions.csv is made for each phone)
        outcome = setup.publish_file(rt, ROOT / "xlsforms" / f"{name}.xlsx")
        assert outcome.ok, outcome.message
    for name, regions in (("dolma", ["540102"]), ("lhamo", ["540102"]), ("pema", ["540121"])):
        with rt.db.write() as s:
            users.create_user(s, project_id=1, username=name, role="collector", password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"], regions=regions)
    return {"A": Phone(app, "dolma"), "A2": Phone(app, "lhamo"), "B": Phone(app, "pema")}


def test_care_file_end_to_end(phones: dict[str, Phone], rt: Any) -> None:
    a, a2, b = phones["A"], phones["A2"], phones["B"]
    for phone in (a, a2, b):
        phone.sync()
    hash_a0, hash_b0 = a.children_hash(), b.children_hash()
    empty_csv = a.server_csv["children"]

    # 1. A registers a child with consent → in A's list (masked, version 1), not in B's.
    reg = a.fill("child_registration", registration())
    ent = entity_block(reg)
    assert ent.get("create") in ("1", "true")
    child = ent.get("id") or ""
    assert uuid.UUID(child).version == 4
    a.send(reg)
    rows = a.children()
    assert [(r["name"], r["label"], r["__version"], r["village"], r["status"]) for r in rows] == [
        (child, MASKED_LABEL, "1", VILLAGE_A, "registered")]
    assert "扎西次仁" not in rows[0]["label"] and "次仁" not in rows[0].values()
    assert b.children() == []
    assert a.children_hash() != hash_a0
    assert b.children_hash() == hash_b0  # nothing changed for B's phone
    for phone in (a, b):
        phone.sync()
    assert child in a.local["children"] and b.local.get("children") == {}
    integ = b.get(f"/v1/projects/1/datasets/children/integrity?id={child}")
    assert f'<entity id="{child}"><deleted>true</deleted></entity>' in integ.data.decode()

    # 2. A identifies the child, picked from the list A downloaded → version 2, status "refer".
    ident = a.fill("identification", identification(child, "refer", days_ago(9)))
    ent = entity_block(ident)
    assert (ent.get("id"), ent.get("update"), ent.get("baseVersion")) == (child, "1", "1")
    a.send(ident)
    (row,) = a.children()
    assert (row["__version"], row["status"], row["id_score"]) == ("2", "refer", "3")
    assert row["label"] == MASKED_LABEL and row["village"] == VILLAGE_A  # not sent: kept

    # 3. A and A2 sync, go offline, both identify the child from the same version 2.
    a.sync()
    a2.sync()
    assert a.server_csv["children"] == a2.server_csv["children"]
    assert a.local["children"][child]["version"] == a2.local["children"][child]["version"] == 2
    sub_a = a.fill("identification", identification(child, "watch", days_ago(2)))
    sub_a2 = a2.fill("identification", identification(child, "refer", days_ago(1)))
    ent_a, ent_a2 = entity_block(sub_a), entity_block(sub_a2)
    for e in (ent_a, ent_a2):
        assert (e.get("baseVersion"), e.get("trunkVersion")) == ("2", "2")
    branch_a, branch_a2 = ent_a.get("branchId") or "", ent_a2.get("branchId") or ""
    assert uuid.UUID(branch_a) != uuid.UUID(branch_a2)  # the engine read them from each phone's list
    a.send(sub_a)
    a2.send(sub_a2)
    with rt.db.session() as s:
        entity = s.scalars(select(Entity).where(Entity.uuid == child)).one()
        history = s.scalars(select(EntityVersion).where(EntityVersion.entity_id == entity.id)
                            .order_by(EntityVersion.version)).all()
        events = s.scalars(select(EntityEvent).where(EntityEvent.entity_uuid == child)).all()
        assert entity.version == 4 and entity.conflict == "hard"
        assert [(v.version, v.data["status"]) for v in history] == [
            (1, "registered"), (2, "refer"), (3, "watch"), (4, "refer")]
        v3, v4 = history[2], history[3]
        assert (v3.base_version, v3.branch_id, v3.conflict) == (2, branch_a, None)
        assert (v4.base_version, v4.branch_id, v4.conflict) == (2, branch_a2, "hard")
        assert v4.data_received["status"] == "refer" and v3.data_received["status"] == "watch"
        assert "status" in (v4.conflicting_properties or [])
        assert v3.submission_id != v4.submission_id
        assert sorted(e.status for e in events) == ["applied"] * 4
    (row,) = a2.children()
    assert (row["__version"], row["status"]) == ("4", "refer")

    # 4. A registration without consent: submission stored, no entity, CSV unchanged.
    a.sync()
    b.sync()
    before_a, before_b = a.children_hash(), b.children_hash()
    csv_a = a.server_csv["children"]
    refused = a.fill("child_registration", registration(consent="no"))
    assert entity_block(refused).get("create") in ("0", "false", "")
    a.send(refused)
    assert a.children_hash() == before_a and b.children_hash() == before_b == hash_b0
    a.sync()
    assert a.server_csv["children"] == csv_a != empty_csv
    with rt.db.session() as s:
        stored = s.scalars(select(Submission).where(Submission.instance_id == refused.instance_id)).one()
        assert stored.deleted_at is None
        assert [e.uuid for e in s.scalars(select(Entity))] == [child]
