"""A realistic county for tests that look at what people see: 城关区 (540102) after a year of care work.

Built the way the people who use CareFile build it, over HTTP only (nothing from app.services):

- `carefile init` publishes the five shipped XLSForms (xlsforms/) with their regions.csv; `carefile
  user add` makes the administrator; the administrator adds everyone else on the website (/users/new)
  and ticks *May see identifying details* for one manager;
- collectors' phones download the forms over OpenRosa (formList, the XForm) and send submissions
  (HTTP Digest, multipart, photos and signatures) built from each form's own instance template:
  registrations (some refused, some likely duplicates the server flags), identifications,
  assessments, visits with interviewees and photos, referrals, follow-ups and closures, dated across
  the last year by their own answers (the phones send them now, as a phone that was offline would);
- two phones update the same child from the same list version (an offline conflict); collectors
  send for children outside their regions (held for review);
- the coordinator does case work through the JSON API: merges one likely duplicate pair, marks
  another as different children, moves two children, closes two files; every website user starts an
  export (a job is its starter's own);
- a draft of the visit form is made with `carefile form draft`.

    from tests.support.world import build_world, LiveTarget, Website
    world = build_world(LiveTarget(server))      # server: tests.e2e.live.LiveServer, started
    world.users["mgr"].password, world.busiest_child, world.instances["visit_record"][0]
    page = Website(LiveTarget(server).client(), world.users["mgr_named"]).get(f"/children/{world.busiest_child}")

Everything is seeded (random.Random(SEED)) relative to today's date in Beijing, so two builds on the
same day give the same children, answers and dates (the ids differ). 200 children give about 1,100
submissions: about 20 s against a live server on SQLite on an idle 2-CPU machine (most of it the
server working; up to a minute when the machine is busy); `children=40` builds in a few seconds.

Two targets: `LiveTarget(server)` (tests/e2e/live.py: the `carefile` CLI in a subprocess, HTTP on
its port; start it with CAREFILE_EXPORT_WORKER=true) and `AppTarget(app, cli)` (the tests/app `app`
fixture and tests/support/cli.py's runner: the same requests through Flask's test client, on SQLite
or PostgreSQL; pass wait_exports=False). tests/app/test_world.py shows the in-process use.

`World` lists what other tests need: users and passwords by role, the children (uuid, name, label,
village, status, ...), instance ids by form, the likely duplicate pairs, held changes, export jobs.
"""
from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import random
import re
import struct
import tempfile
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from tests.support.digest_client import authorization, parse_challenge

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "xlsforms"
SEED = 17
COUNTY = "540102"
BEIJING = timezone(timedelta(hours=8))
FORMS = ("child_registration", "identification", "assessment", "visit_record", "referral_followup")
XF = "http://www.w3.org/2002/xforms"
NS_FORMLIST = "{http://openrosa.org/xforms/xformsList}"
PASSWORDS = "world password "  # + user name

# The county's townships and villages used (codes and names from app/data/regions-54.csv).
TOWNSHIPS: dict[str, list[str]] = {
    "540102002": ["540102002001", "540102002002", "540102002003", "540102002004"],  # 八廓街道
    "540102003": ["540102003001", "540102003002", "540102003003"],  # 吉日街道
    "540102004": ["540102004001", "540102004002"],  # 吉崩岗街道
    "540102005": ["540102005001", "540102005002"],  # 扎细街道
    "540102010": ["540102010201", "540102010202", "540102010203"],  # 蔡公堂街道
    "540102012": ["540102012201", "540102012202"],  # 娘热街道
    "540102013": ["540102013201", "540102013203"],  # 纳金街道
}


@dataclass(frozen=True)
class UserSpec:
    name: str
    role: str
    regions: tuple[str, ...]
    display: str
    sees_sensitive: bool = False

    @property
    def password(self) -> str:
        return PASSWORDS + self.name


USERS: tuple[UserSpec, ...] = (
    UserSpec("admin", "admin", (), "系统管理员"),
    UserSpec("coord", "coordinator", (COUNTY,), "城关区民政局 次仁"),
    UserSpec("mgr", "manager", (COUNTY,), "城关区儿童福利科 拉巴"),  # without the identifying-details grant
    UserSpec("mgr_named", "manager", (COUNTY,), "城关区儿童督导 央金", sees_sensitive=True),
    UserSpec("dolma", "collector", ("540102002", "540102003"), "卓玛"),
    UserSpec("tashi", "collector", ("540102004", "540102005"), "扎西"),
    UserSpec("pema", "collector", ("540102010", "540102012", "540102013"), "白玛"),
)
PREFIX = {"identification": "识别", "assessment": "评估", "visit_record": "走访", "referral_followup": "转介"}
COLLECTOR_OF = {t: u.name for u in USERS if u.role == "collector" for t in u.regions}

GIVEN = ["扎西", "卓玛", "次仁", "达瓦", "尼玛", "格桑", "旺姆", "央金", "拉姆", "普布", "边巴", "多吉", "次旦", "白玛",
         "索朗", "德吉", "曲珍", "巴桑", "旦增", "平措", "仁增", "洛桑", "罗布", "琼达", "米玛", "强巴", "顿珠", "益西"]
SECOND = ["卓玛", "多吉", "旺姆", "次仁", "拉姆", "平措", "央宗", "曲珍", "顿珠", "德吉", "桑珠", "措姆", "罗布",
          "加措"]
OBS_TEXT = ["孩子见到工作人员时比较拘谨，说话声音小，和奶奶在一起时放松一些，作业本按时完成。",
            "监护人反映孩子最近晚上睡得晚，常一个人玩手机，白天上课打瞌睡，老师也提到成绩有所下降。",
            "家中卫生条件一般，冬季取暖靠牛粪炉，孩子衣着干净，主动向我们介绍了家里的牦牛和小狗。",
            "孩子父亲在外地务工，半年回家一次；孩子说想念爸爸，提到爸爸时眼睛湿润，但能正常交流。",
            "与同学关系较好，课间参加跳绳；班主任说孩子上学期被几个高年级学生取笑过，已与家长沟通。"]
IV_TEXT = ["奶奶说孩子放学后帮忙做家务，吃饭正常，偶尔因为玩手机和家人争吵，总体比上次好。",
           "班主任反映孩子上课注意力不集中，数学作业经常没有完成，建议家里每天检查作业。",
           "孩子自己说最近和好朋友一起学习，周末去寺庙转经，心情还可以，希望爸爸早点回来。"]


# ---------------------------------------------------------------------------- HTTP, as clients do


class Client(Protocol):
    """One HTTP client with its own cookies: `request(method, path, ...)` → status, headers, content."""

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                data: dict[str, str] | None = None, files: dict[str, tuple[str, bytes, str]] | None = None,
                json_body: Any = None) -> Any: ...


class Target(Protocol):
    """Where the world is built: a running server (LiveTarget) or an in-process app (AppTarget)."""

    def cli(self, *args: str) -> str: ...

    def client(self) -> Client: ...


class _Resp:
    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _RequestsClient:
    def __init__(self, base: str) -> None:
        import requests

        self.base = base
        self.http = requests.Session()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                data: dict[str, str] | None = None, files: dict[str, tuple[str, bytes, str]] | None = None,
                json_body: Any = None) -> _Resp:
        resp = self.http.request(method, self.base + path, headers=headers, data=data, files=files, json=json_body,
                                 allow_redirects=False, timeout=60)
        return _Resp(resp.status_code, resp.headers, resp.content)


class _FlaskClient:
    def __init__(self, app: Any) -> None:
        self.http = app.test_client()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                data: dict[str, str] | None = None, files: dict[str, tuple[str, bytes, str]] | None = None,
                json_body: Any = None) -> _Resp:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if files:
            body: dict[str, Any] = dict(data or {})
            for key, (name, content, ctype) in files.items():
                body[key] = (io.BytesIO(content), name, ctype)
            kwargs.update(data=body, content_type="multipart/form-data")
        elif data is not None:
            kwargs["data"] = data
        elif json_body is not None:
            kwargs["json"] = json_body
        resp = self.http.open(path, method=method, **kwargs)
        return _Resp(resp.status_code, resp.headers, resp.get_data())


class LiveTarget:
    """A LiveServer (tests/e2e/live.py) that runs: its `carefile` CLI and HTTP on its port."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def cli(self, *args: str) -> str:
        return str(self.server.cli(*args, timeout=180).stdout)

    def client(self) -> Client:
        return _RequestsClient(self.server.url)


class AppTarget:
    """An in-process app (the tests/app `app` fixture) and a `carefile` runner on its settings
    (tests/support/cli.py cli_runner)."""

    def __init__(self, app: Any, cli: Callable[..., tuple[int, str, str]]) -> None:
        self.app, self._cli = app, cli

    def cli(self, *args: str) -> str:
        code, out, err = self._cli(*args)
        assert code == 0, f"carefile {' '.join(args)}: {out}\n{err}"
        return out

    def client(self) -> Client:
        return _FlaskClient(self.app)


class Phone:
    """ODK Collect signed in as a collector: HTTP Digest, like OkHttp's authenticator."""

    def __init__(self, client: Client, user: UserSpec) -> None:
        self.client, self.user = client, user
        self.chal: dict[str, str] | None = None
        self.nc = 0
        self.lock = threading.Lock()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"X-OpenRosa-Version": "1.0", **kw.pop("headers", {})}
        resp = None
        for _ in range(2):
            h = dict(headers)
            with self.lock:
                if self.chal is not None:
                    self.nc += 1
                    h["Authorization"] = authorization(self.user.name, self.user.password, method, path, self.chal,
                                                       self.nc)
            resp = self.client.request(method, path, headers=h, **kw)
            challenge = resp.headers.get("WWW-Authenticate", "")
            if resp.status_code != 401 or not challenge.startswith("Digest"):
                return resp
            with self.lock:
                self.chal, self.nc = parse_challenge(challenge), 0
        return resp

    def submit(self, xml: bytes, files: dict[str, bytes]) -> Any:
        parts = {"xml_submission_file": ("submission.xml", xml, "text/xml")}
        for name, content in files.items():
            parts[name] = (name, content, "image/png")
        resp = self.request("POST", "/v1/projects/1/submission", files=parts)
        assert resp.status_code == 201, (resp.status_code, resp.content[:500])
        return resp


class Website:
    """A person at the website: signs in on /login and posts forms with the page's CSRF token."""

    def __init__(self, client: Client, user: UserSpec) -> None:
        self.client, self.user, self.csrf = client, user, ""
        self._remember(self.get("/login"))
        resp = self.post("/login", {"username": user.name, "password": user.password})
        assert resp.status_code == 302, (resp.status_code, resp.content[:300])
        self.get("/")  # the session (and its CSRF token) is new after signing in

    def _remember(self, resp: Any) -> Any:
        m = re.search(rb'name="csrf_token" value="([^"]+)"', resp.content)
        if m:
            self.csrf = m.group(1).decode()
        return resp

    def get(self, path: str) -> Any:
        return self._remember(self.client.request("GET", path))

    def post(self, path: str, data: dict[str, str]) -> Any:
        return self.client.request("POST", path, data={"csrf_token": self.csrf, **data})


class Api:
    """The JSON API with a session token (POST /v1/sessions), as a script or Central client uses it."""

    def __init__(self, client: Client, user: UserSpec) -> None:
        self.client = client
        resp = client.request("POST", "/v1/sessions", json_body={"username": user.name, "password": user.password})
        assert resp.status_code == 200, resp.content
        self.headers = {"Authorization": f"Bearer {resp.json()['token']}"}

    def post(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.client.request("POST", path, headers=self.headers, json_body=body)
        assert resp.status_code in (200, 201, 202), (path, resp.status_code, resp.content[:400])
        return resp.json()

    def get(self, path: str) -> Any:
        resp = self.client.request("GET", path, headers=self.headers)
        assert resp.status_code == 200, (path, resp.status_code, resp.content[:400])
        return resp.json()


# ---------------------------------------------------------------------------- submissions


def png(width: int, height: int, rgb: tuple[int, int, int], stripe: tuple[int, int, int]) -> bytes:
    """A small real PNG (a coloured picture with a stripe), so thumbnails show something."""
    rows = b""
    for y in range(height):
        colour = stripe if height // 3 <= y < height // 3 + max(2, height // 8) else rgb
        rows += b"\x00" + bytes(colour) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


SIGNATURE = png(60, 24, (250, 250, 250), (30, 30, 80))


class Template:
    """A form's primary instance, filled like Collect fills it: answers by question name (groups are
    found by walking the template), repeats as lists of dicts; `meta/instanceID` and the entity block."""

    def __init__(self, xform: bytes) -> None:
        root = ET.fromstring(xform)
        model = root.find(f".//{{{XF}}}model")
        assert model is not None
        instance = model.find(f"{{{XF}}}instance")
        assert instance is not None
        self.data = instance[0]
        self.form_id = self.data.get("id", "")
        self.version = self.data.get("version", "")

    def fill(self, answers: dict[str, Any], instance_id: str, entity: dict[str, str], label: str | None) -> bytes:
        def build(src: ET.Element, into: ET.Element | None, values: dict[str, Any]) -> ET.Element:
            tag = src.tag.split("}")[-1]
            node = ET.Element(tag) if into is None else ET.SubElement(into, tag)
            kids = [k for k in src if "{http://openrosa.org/javarosa}template" not in k.attrib]
            seen_repeats: set[str] = set()
            for kid in kids:
                name = kid.tag.split("}")[-1]
                if name == "meta":
                    continue
                if len(kid):  # a group or a repeat
                    rows = values.get(name)
                    if isinstance(rows, list):
                        if name in seen_repeats:
                            continue
                        seen_repeats.add(name)
                        for row in rows:
                            build(kid, node, {**values, **row})
                    else:
                        build(kid, node, values)
                    continue
                leaf = ET.SubElement(node, name)
                value = values.get(name)
                if value is not None and value != "":
                    leaf.text = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
            return node

        out = build(self.data, None, answers)
        out.set("id", self.form_id)
        out.set("version", self.version)
        meta = ET.SubElement(out, "meta")
        ET.SubElement(meta, "instanceID").text = instance_id
        if answers.get("_instance_name"):
            ET.SubElement(meta, "instanceName").text = answers["_instance_name"]
        ent = ET.SubElement(meta, "entity", {"dataset": "children", **entity})
        if label is not None:
            ET.SubElement(ent, "label").text = label
        return b"<?xml version='1.0' encoding='UTF-8' ?>" + ET.tostring(out, encoding="utf-8")


# ---------------------------------------------------------------------------- the world


@dataclass
class Child:
    uuid: str
    name: str
    gender: str
    birth: date
    village: str
    registered: date
    collector: str
    id_number: str
    version: int = 1  # the entity version the server holds (for the next update's baseVersion)
    status: str = "registered"
    risk: str = "unassessed"
    referral: str = "none"
    due: str = ""
    closed: bool = False
    merged_into: str | None = None
    records: int = 1
    label: str = ""
    rnd: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    @property
    def township(self) -> str:
        return self.village[:9]


@dataclass
class World:
    """What was built, for tests to use (ids are the server's; names and dates are the answers sent)."""

    users: dict[str, UserSpec]
    user_ids: dict[str, int]
    children: list[Child]
    instances: dict[str, list[str]]  # form id → instance ids, in the order sent
    photo_instances: dict[str, list[str]]  # form id → instance ids of submissions with a photo
    busiest_child: str  # the uuid with the longest history (moved, records of every form, a conflict)
    closed_children: list[str]
    moved_children: list[str]
    conflict_children: list[str]
    duplicate_pairs: list[tuple[str, str]]  # still open (coordinators decide them on /children/duplicates)
    merged: tuple[str, str]  # (merged child, survivor)
    distinct: tuple[str, str]
    held: list[str]  # instance ids of submissions held for review
    refused_instances: list[str]  # registrations without consent (no file opened)
    export_jobs: dict[str, int]  # user name → the export job that user started (done)
    draft_form: str
    today: date
    place_names: dict[str, str]
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def child(self, uid: str) -> Child:
        return next(c for c in self.children if c.uuid == uid)

    def by_role(self, role: str) -> list[UserSpec]:
        return [u for u in self.users.values() if u.role == role]


def _names() -> dict[str, str]:
    with open(REPO / "app" / "data" / "regions-54.csv", encoding="utf-8") as fh:
        return {row["code"]: row["name"] for row in csv.DictReader(fh) if row["code"].startswith(COUNTY)}


class _Builder:
    def __init__(self, target: Target, today: date | None) -> None:
        self.target = target
        self.rnd = random.Random(SEED)
        self.today = today or datetime.now(BEIJING).date()
        self.names = _names()
        self.users = {u.name: u for u in USERS}
        self.phones = {u.name: Phone(target.client(), u) for u in USERS if u.role == "collector"}
        self.templates: dict[str, Template] = {}
        self.instances: dict[str, list[str]] = {f: [] for f in FORMS}
        self.photo_instances: dict[str, list[str]] = {f: [] for f in FORMS}
        self.held: list[str] = []
        self.refused: list[str] = []
        self.children: list[Child] = []
        self.locks: dict[str, threading.Lock] = {}

    # -- set-up: forms, users ------------------------------------------------------------------

    def setup(self) -> dict[str, int]:
        admin = self.users["admin"]
        self.target.cli("user", "add", admin.name, "--role", "admin", "--password", admin.password)
        site = Website(self.target.client(), admin)
        ids = {}
        for u in USERS[1:]:
            resp = site.post("/users/new", {"username": u.name, "display_name": u.display, "role": u.role,
                                            "regions": " ".join(u.regions), "password": u.password,
                                            "repeat": u.password})
            assert resp.status_code == 302, (u.name, resp.status_code, resp.content[-600:])
            ids[u.name] = int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[1])
            if u.sees_sensitive:
                resp = site.post(f"/users/{ids[u.name]}", {"display_name": u.display, "role": u.role,
                                                           "regions": " ".join(u.regions),
                                                           "sees_sensitive_shown": "1", "sees_sensitive": "1"})
                assert resp.status_code == 302, resp.content[-600:]
        listing = site.get("/users").content.decode()
        m = re.search(r'href="/users/(\d+)"[^>]*>\s*admin\b', listing)
        ids["admin"] = int(m.group(1)) if m else 0
        # Each phone downloads the forms as Collect does (formList → XForm); all see the same forms.
        phone = self.phones["dolma"]
        listed = ET.fromstring(phone.request("GET", "/v1/projects/1/formList").content)
        for xf in listed.iter(f"{NS_FORMLIST}xform"):
            fid = xf.findtext(f"{NS_FORMLIST}formID") or ""
            if fid in FORMS:
                url = xf.findtext(f"{NS_FORMLIST}downloadUrl") or ""
                path = "/" + url.split("://", 1)[1].split("/", 1)[1]
                resp = phone.request("GET", path)
                assert resp.status_code == 200, resp.content[:300]
                self.templates[fid] = Template(resp.content)
        assert set(self.templates) == set(FORMS), sorted(self.templates)
        return ids

    # -- answers ---------------------------------------------------------------------------------

    def _stamp(self, c: Child, day: date, hour: int | None = None) -> tuple[str, str]:
        hour = c.rnd.randrange(9, 18) if hour is None else hour
        start = datetime(day.year, day.month, day.day, hour, c.rnd.randrange(60), tzinfo=BEIJING)
        end = start + timedelta(minutes=c.rnd.randrange(12, 50))
        return start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds")

    def _region(self, village: str) -> dict[str, str]:
        return {"prefecture": village[:4], "county": village[:6], "township": village[:9], "village": village}

    def _common(self, form: str, c: Child, day: date, user: str) -> dict[str, Any]:
        start, end = self._stamp(c, day)
        age = int((day - c.birth).days // 365.25)
        return {"start": start, "end": end, "today": day.isoformat(), "username": user,
                **self._region(c.village), "child": c.uuid, "child_label": c.label,
                "child_birth": c.birth.isoformat(), "prev_status": c.status, "prev_risk": c.risk,
                "prev_ref_status": c.referral, "prev_due": c.due, "child_short": c.uuid[:8], "age_years": str(age),
                "_instance_name": f"{PREFIX[form]}-{c.village}-{day.isoformat()}-{c.uuid[:8]}"}

    def _send(self, phone: str, form: str, answers: dict[str, Any], entity: dict[str, str], label: str | None,
              files: dict[str, bytes], held: bool = False) -> str:
        instance = f"uuid:{uuid.uuid4()}"
        xml = self.templates[form].fill(answers, instance, entity, label)
        self.phones[phone].submit(xml, files)
        if held:
            self.held.append(instance)
        self.instances[form].append(instance)
        if any(not n.startswith("sig") for n in files):
            self.photo_instances[form].append(instance)
        return instance

    def register(self, c: Child, consent: bool = True, phone: str | None = None) -> str:
        day = c.registered
        start, end = self._stamp(c, day)
        gender_zh = "男" if c.gender == "male" else "女"
        age = int((day - c.birth).days // 365.25)
        village_zh = self.names.get(c.village, "")
        c.label = f"{c.name[0]}*（{gender_zh}，{c.birth.isoformat()[:7]}，{village_zh}）"
        collector = self.users[c.collector]
        answers: dict[str, Any] = {
            "start": start, "end": end, "today": day.isoformat(), "username": c.collector,
            "worker_role": "child_director", "worker_name": collector.display,
            "worker_phone": f"139{c.rnd.randrange(10**8):08d}", **self._region(c.village), "village_zh": village_zh,
            "consent_guardian": "yes" if consent else "no", "birth_date": c.birth.isoformat(), "age_years": str(age),
            "file_ok": "yes" if consent else "no",
            "_instance_name": f"建档-{c.village}-{day.isoformat()}-{c.uuid[:8]}",
        }
        files: dict[str, bytes] = {}
        if not consent:
            answers["refusal_reason"] = "监护人外出务工，电话中表示需要和家里商量后再决定是否建档。"
            return self._send(phone or c.collector, "child_registration", answers,
                              {"id": c.uuid, "create": "0"}, None, files)
        due = day + timedelta(days=30)
        c.due = due.isoformat()
        school = ("kindergarten" if age < 6 else "primary" if age < 12 else "junior" if age < 15 else "senior")
        answers.update({
            "consent_sensitive": "yes", "consent_signature": "sig-guardian.png",
            "child_assent": "yes" if age >= 8 else "", "child_name": c.name, "gender": c.gender,
            "ethnicity": "tibetan", "id_number": c.id_number,
            "child_category": c.rnd.choice([["left_behind"], ["low_income", "left_behind"], ["orphan"],
                                               ["guardianship"], ["disabled"], ["serious_illness"]]),
            "school_status": school,
            "school_name": "" if school == "kindergarten" else
            f"拉萨市城关区第{c.rnd.randrange(1, 9)}小学 {max(1, age - 6)}年级",
            "living_with": c.rnd.choice(["grandparents", "one_parent", "both_parents", "relatives", "boarding"]),
            "address_detail": f"{village_zh}{c.rnd.randrange(1, 9)}组{c.rnd.randrange(1, 60)}号",
            "guardian_name": c.rnd.choice(GIVEN) + c.rnd.choice(SECOND),
            "guardian_relation": c.rnd.choice(["grandparent", "mother", "father", "relative"]),
            "guardian_phone": f"138{c.rnd.randrange(10**8):08d}", "guardian_capacity": "limited",
            "photo_consent": "yes", "home_photo": "home.png", "home_location": "29.6525 91.1321 3650 5",
            "gender_zh": gender_zh, "child_label": c.label, "status_init": "registered", "risk_init": "unassessed",
            "referral_init": "none", "registered_on": day.isoformat(), "first_due": c.due, "reident_init": "no",
            "child_short": c.uuid[:8],
        })
        files = {"sig-guardian.png": SIGNATURE,
                 "home.png": png(96, 64, (170, 140, 100), (90, 120, 170))}
        return self._send(phone or c.collector, "child_registration", answers, {"id": c.uuid, "create": "1"}, c.label,
                          files)

    def _update(self, form: str, c: Child, day: date, answers: dict[str, Any], files: dict[str, bytes],
                phone: str | None = None, base: int | None = None, branch: str | None = None,
                held: bool = False) -> str:
        base = c.version if base is None else base
        entity = {"id": c.uuid, "update": "1", "baseVersion": str(base), "trunkVersion": str(base),
                  "branchId": branch or str(uuid.uuid4())}
        instance = self._send(phone or c.collector, form, answers, entity, None, files, held=held)
        if not held:
            c.version += 1
            c.records += 1
        return instance

    def identify(self, c: Child, day: date, result: str) -> str:
        a = self._common("identification", c, day, c.collector)
        observed = {"healthy": 0, "watch": 1, "refer": 4, "urgent": 4}[result]
        picks = {"obs_emotion": ["e_sad", "e_worry"], "obs_behaviour": ["b_withdraw", "b_screen"],
                 "obs_physical": ["p_sleep"], "obs_school": ["s_grades", "s_bullied"], "obs_family": ["f_alone"]}
        score = 0
        for key, options in picks.items():
            take = options[: max(0, min(len(options), observed - score))]
            score += len(take)
            a[key] = take or ["none"]
        a["obs_redflag"] = ["r_suicide_talk"] if result == "urgent" else ["none"]
        days = {"urgent": 1, "refer": 15, "watch": 30, "healthy": 90}[result]
        due = (day + timedelta(days=days)).isoformat()
        a.update({"worker_role": "child_director", "visit_date": day.isoformat(),
                  "id_methods": ["home_visit", "talk_child", "ask_guardian"], "score": str(score),
                  "redflag_n": "1" if result == "urgent" else "0", "duration": "gt1m" if score else "",
                  "impact": "some" if score else "", "suggested": result, "id_result": result,
                  "guardian_informed": "yes" if result != "healthy" else "",
                  "obs_summary": c.rnd.choice(OBS_TEXT), "worker_signature": "sig-worker.png",
                  "last_identified": day.isoformat(), "id_score": str(score), "reident_clear": "no", "next_due": due})
        if result == "urgent":
            a.update({"reported_to": ["supervisor", "county"],
                      "report_time": f"{day.isoformat()}T16:20:00.000+08:00"})
        inst = self._update("identification", c, day, a, {"sig-worker.png": SIGNATURE})
        c.status, c.due = result, due
        return inst

    def assess(self, c: Child, day: date, risk: str) -> str:
        a = self._common("assessment", c, day, c.collector)
        level = {"green": 0, "yellow": 1, "orange": 2, "red": 3}[risk]
        sev = {k: str(min(3, max(0, level - (i % 2)))) for i, k in enumerate(
            ["ph_sleep", "ph_appetite", "ph_somatic", "ph_illness", "ph_substance", "ps_mood", "ps_anxiety",
             "ps_anger", "ps_selfworth", "ps_attention", "ps_trauma", "ps_withdraw", "ps_reality", "se_care",
             "se_family", "se_loss", "se_school", "se_support", "se_economic"])}
        sev["ps_reality"] = "0"
        days = {"red": 7, "orange": 14, "yellow": 30, "green": 90}[risk]
        due = (day + timedelta(days=days)).isoformat()
        a.update(sev)
        a.update({"assessor_name": c.rnd.choice(["李华", "王芳", "次仁央宗", "张伟"]), "assessor_role": "psychologist",
                  "assessor_org": "拉萨市城关区社会心理服务中心", "assessment_date": day.isoformat(),
                  "assessment_place": c.rnd.choice(["home", "school", "village_centre"]),
                  "guardian_consent": "yes", "consent_signature": "sig-guardian.png",
                  "child_assent": "yes", "consent_ok": "yes", "si_level": "2" if risk == "red" else "0",
                  "tools_used": ["phq9"], "phq_total": str(4 + 5 * level), "protective": ["stable_adult", "teacher"],
                  "impairment": str(min(level, 2)), "total_score": str(sum(int(v) for v in sev.values())),
                  "calc_risk": risk, "final_risk": risk,
                  "assessment_summary": "主要表现为情绪低落和睡眠问题，与父母长期外出、隔代照料有关；孩子懂事，"
                                        "喜欢画画，与班主任关系好，这些是保护因素。",
                  "recommended": ["crisis", "medical"] if risk == "red" else ["counselling", "family_guidance"],
                  "assessor_signature": "sig-assessor.png", "last_assessed": day.isoformat(), "reident_clear": "no",
                  "next_due": due})
        inst = self._update("assessment", c, day, a, {"sig-guardian.png": SIGNATURE, "sig-assessor.png": SIGNATURE})
        c.risk, c.due = risk, due
        return inst

    def visit(self, c: Child, day: date, photo: bool, phone: str | None = None, base: int | None = None,
              held: bool = False) -> str:
        a = self._common("visit_record", c, day, phone or c.collector)
        mode = "home" if photo else c.rnd.choice(["school", "phone", "home"])
        concern = c.rnd.random() < 0.15
        interviews = [{"iv_role": "family", "iv_relation": "grandparent", "iv_method": "face",
                       "iv_summary": IV_TEXT[0], "iv_concern": "no"},
                      {"iv_role": "school", "iv_relation": "teacher", "iv_method": "phone",
                       "iv_summary": IV_TEXT[1], "iv_concern": "no"},
                      {"iv_role": "child", "iv_relation": "self", "iv_method": "face",
                       "iv_summary": IV_TEXT[2], "iv_concern": "yes" if concern else "no"}]
        a.update({"visitor_role": "child_director", "visit_date": day.isoformat(),
                  "visit_purpose": c.rnd.choice(["routine", "followup", "routine"]), "visit_mode": mode,
                  "visit_location": "29.6531 91.1287 3652 8" if mode in ("home", "school") else "",
                  "child_seen": "yes", "child_obs": c.rnd.choice(OBS_TEXT), "interviews": interviews,
                  "n_interviews": "3", "new_concern": "yes" if concern else "no",
                  "concern_detail": "孩子说最近晚上常做噩梦，不想一个人睡，奶奶不知道怎么安慰。" if concern else "",
                  "need_reidentify": "yes" if concern else "", "photo_consent": "yes" if mode == "home" else "",
                  "visit_photo": "visit.png" if photo else "", "visitor_signature": "sig-visitor.png",
                  "last_visit": day.isoformat(), "flag_reidentify": "yes" if concern else "no"})
        files = {"sig-visitor.png": SIGNATURE}
        if photo:
            files["visit.png"] = png(120, 80, (200, 180, 150), (120, 70, 40))
        return self._update("visit_record", c, day, a, files, phone=phone, base=base, held=held)

    def referral(self, c: Child, day: date, kind: str, close_reason: str = "risk_resolved") -> str:
        a = self._common("referral_followup", c, day, c.collector)
        a.update({"worker_role": "child_director", "record_date": day.isoformat(), "record_type": kind,
                  "worker_signature": "sig-worker.png", "last_followup": day.isoformat()})
        files = {"sig-worker.png": SIGNATURE}
        if kind == "referral":
            due = (day + timedelta(days=7)).isoformat()
            a.update({"ref_consent": "yes", "ref_consent_signature": "sig-guardian.png",
                      "ref_target_type": "psych_service", "ref_target_org": "拉萨市城关区社会心理服务中心",
                      "ref_target_contact": "0891-6321234", "urgency": "priority",
                      "ref_reason": "情绪低落两个月以上，睡眠差，需专业心理评估和咨询。",
                      "ref_appointment": (day + timedelta(days=5)).isoformat(), "ref_letter_photo": "slip.png",
                      "new_ref_status": "referred", "new_status": c.status, "new_due": due})
            files.update({"sig-guardian.png": SIGNATURE, "slip.png": png(80, 110, (245, 245, 235), (200, 40, 40))})
            c.referral, c.due = "referred", due
        elif kind == "followup":
            nxt = (day + timedelta(days=30)).isoformat()
            a.update({"fu_method": "home", "fu_service": "receiving", "fu_condition": "improved", "fu_reassess": "no",
                      "fu_notes": "已在服务中心接受三次心理咨询，孩子说睡得比以前好，奶奶也学会了怎么和孩子谈心。",
                      "next_followup_date": nxt, "new_ref_status": "in_service", "new_status": c.status,
                      "new_due": nxt})
            c.referral, c.due = "in_service", nxt
        else:
            a.update({"close_reason": close_reason, "close_note": "经复评风险解除，家庭照料改善，转入常规关爱。",
                      "new_ref_status": "closed", "new_status": "closed", "new_due": ""})
            c.status, c.referral, c.due, c.closed = "closed", "closed", "", True
        return self._update("referral_followup", c, day, a, files)

    # -- the year --------------------------------------------------------------------------------

    def make_children(self, n: int) -> None:
        villages = [v for vs in TOWNSHIPS.values() for v in vs]
        for i in range(n):
            village = villages[i % len(villages)] if i < len(villages) else self.rnd.choice(villages)
            gender = self.rnd.choice(["male", "female"])
            age_days = self.rnd.randrange(4 * 365, 17 * 365)
            if i % 20 == 7:  # turns 18 within the next 90 days
                age_days = 18 * 365 + 4 - self.rnd.randrange(10, 80)
            birth = self.today - timedelta(days=age_days)
            registered = self.today - timedelta(days=self.rnd.randrange(12, 365))
            name = self.rnd.choice(GIVEN) + self.rnd.choice(SECOND)
            id_number = f"540102{birth.strftime('%Y%m%d')}{self.rnd.randrange(1000):03d}{self.rnd.randrange(10)}"
            self.children.append(Child(str(uuid.uuid4()), name, gender, birth, village, registered,
                                       COLLECTOR_OF[village[:9]], id_number, rnd=random.Random(f"{SEED}-{i}")))

    def duplicates(self) -> list[Child]:
        """Second registrations of children already on file, the ways they happen (sent later)."""
        out = []
        later = self.today - timedelta(days=3)
        # the same child registered again: same name and birth date; same ID number in another village
        for src, same_id in ((self.children[3], False), (self.children[11], True)):
            village = src.village if not same_id else next(v for v in TOWNSHIPS[src.township] if v != src.village)
            out.append(Child(str(uuid.uuid4()), src.name, src.gender, src.birth, village,
                             min(later, src.registered + timedelta(days=60)), COLLECTOR_OF[village[:9]],
                             src.id_number if same_id else "", rnd=random.Random(f"{SEED}-dup-{src.uuid}")))
        # a similar name (扎西 / 扎喜) born within a month, in another village of the same township
        for i in (5, 17, 23, 29):
            src = self.children[i]
            rest = src.name[2:] or "卓玛"
            src.name = "扎西" + rest  # the first registration's spelling (not sent yet)
            village = next((v for v in TOWNSHIPS[src.township] if v != src.village), src.village)
            out.append(Child(str(uuid.uuid4()), "扎喜" + rest, src.gender, src.birth + timedelta(days=9), village,
                             min(later, src.registered + timedelta(days=90)), COLLECTOR_OF[village[:9]], "",
                             rnd=random.Random(f"{SEED}-sim-{i}")))
        return out

    def plan(self, c: Child) -> list[tuple[date, str, tuple[Any, ...]]]:
        """The records one child gets over the year, as (day, what, how) in the order sent."""
        rnd = c.rnd
        steps: list[tuple[date, str, tuple[Any, ...]]] = []

        def at(offset: int) -> date:
            return min(self.today, c.registered + timedelta(days=offset))

        result = rnd.choices(["healthy", "watch", "refer", "urgent"], [35, 35, 24, 6])[0]
        t = rnd.randrange(3, 20)
        if at(t) >= self.today:
            return steps
        steps.append((at(t), "identify", (result,)))
        if result in ("refer", "urgent", "watch") and rnd.random() < (0.9 if result != "watch" else 0.35):
            t += rnd.randrange(4, 20)
            risk = {"urgent": rnd.choice(["red", "orange"]), "refer": rnd.choice(["orange", "yellow", "red"]),
                    "watch": rnd.choice(["yellow", "green"])}[result]
            if at(t) < self.today:
                steps.append((at(t), "assess", (risk,)))
                if risk in ("orange", "red") and at(t + 5) < self.today:
                    t += 5
                    steps.append((at(t), "referral", ("referral",)))
                    if at(t + 30) < self.today:
                        t += 30
                        steps.append((at(t), "referral", ("followup",)))
        # visits about every 1–3 months, some with a photo of the home
        while True:
            t += rnd.randrange(25, 95)
            if at(t) >= self.today:
                break
            steps.append((at(t), "visit", (rnd.random() < 0.4,)))
        return steps

    def live(self, c: Child) -> None:
        """One child's year: registered, then its records in date order."""
        self.register(c)
        for day, what, args in sorted(self.plan(c), key=lambda s: s[0]):
            getattr(self, {"identify": "identify", "assess": "assess", "referral": "referral",
                           "visit": "visit"}[what])(c, day, *args)

    def run(self, children: list[Child], life: Callable[[Child], None]) -> None:
        """Each phone sends its children's records in order; the three phones at the same time."""
        by_phone: dict[str, list[Child]] = {}
        for c in children:
            by_phone.setdefault(c.collector, []).append(c)

        def phone(kids: list[Child]) -> None:
            for c in kids:
                life(c)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(by_phone)) as pool:
            for fut in [pool.submit(phone, kids) for kids in by_phone.values()]:
                fut.result()


def build_world(target: Target, *, children: int = 200, today: date | None = None,
                wait_exports: bool = True) -> World:
    """Build the county on a server that has run nothing yet (an empty database, or `carefile init`
    with CAREFILE_XLSFORMS_DIR pointing at xlsforms/; otherwise the shipped forms are published here).

    wait_exports: wait until every user's export job is done (the server must run an export worker:
    under pytest set CAREFILE_EXPORT_WORKER=true)."""
    import time

    assert children >= 30, "the likely duplicates are made from the first 30 children"
    started = time.monotonic()
    b = _Builder(target, today)
    if "child_registration" not in target.cli("form", "list"):
        target.cli("form", "publish", *[str(SHIPPED / f"{f}.xlsx") for f in FORMS])
    user_ids = b.setup()
    b.make_children(children)
    dups = b.duplicates()

    b.run(b.children, b.live)
    # registrations without consent (no file), and the likely duplicates, registered after the originals
    refused = [Child(str(uuid.uuid4()), b.rnd.choice(GIVEN) + b.rnd.choice(SECOND), "female",
                     b.today - timedelta(days=3000 + 97 * i), v, b.today - timedelta(days=30 + 41 * i),
                     COLLECTOR_OF[v[:9]], "") for i, v in enumerate(["540102002001", "540102010202", "540102004002"])]
    for c in refused:
        b.refused.append(b.register(c, consent=False))
    b.run(dups, b.live)
    b.children.extend(dups)

    on_file = list(b.children)  # every child registered with consent (the refused ones are not in it)
    # The busiest file: identified, assessed red, referred, followed up, visited, then two phones offline.
    busy = max((c for c in on_file if c.risk in ("red", "orange") and not c.closed), key=lambda c: c.records)
    # Two phones update the same child from the same list version: the server keeps both, flags a conflict.
    conflicts = [busy] + [c for c in on_file if c.status == "watch" and not c.closed][:1]
    for c in conflicts:
        base = c.version
        b.visit(c, b.today - timedelta(days=2), True, base=base)
        b.visit(c, b.today - timedelta(days=1), False, base=base)  # the second phone's copy is a version behind
    # A few closures by the village director (closure record after a green re-assessment).
    closing = [c for c in on_file if c.status in ("watch", "healthy") and not c.closed and c is not busy][:6]
    for c in closing[:4]:
        b.assess(c, b.today - timedelta(days=20), "green")
        b.referral(c, b.today - timedelta(days=6), "closure")
    # Held for review: a collector registers a child in a village outside her regions, and visits another
    # township's child.
    stray = Child(str(uuid.uuid4()), "格桑拉姆", "female", b.today - timedelta(days=9 * 365), "540102010203",
                  b.today - timedelta(days=4), "dolma", "")
    b.register(stray, phone="dolma")
    b.held.append(b.instances["child_registration"][-1])
    outside = next(c for c in on_file if c.collector == "pema" and not c.closed)
    b.visit(outside, b.today - timedelta(days=1), False, phone="dolma", held=True)

    # Case work by the coordinator (JSON API) and an export by a manager.
    api = Api(target.client(), b.users["coord"])
    pairs = api.get("/v1/projects/1/children/duplicates")
    pair_ids = [(p["children"][0]["uuid"], p["children"][1]["uuid"]) for p in pairs]
    assert len(pair_ids) >= 4, pairs
    merged = pair_ids[0]
    api.post(f"/v1/projects/1/children/{merged[0]}/merge", {"into": merged[1], "note": "同一儿童，重复建档"})
    distinct = pair_ids[1]
    api.post(f"/v1/projects/1/children/{distinct[0]}/distinct", {"other": distinct[1]})
    for c in b.children:
        if c.uuid == merged[0]:
            c.merged_into = merged[1]
    moved = [busy] + [c for c in on_file if not c.closed and c.township == "540102004"][:1]
    for c in moved:
        target_village = next(v for v in TOWNSHIPS["540102003"] if v != c.village)
        api.post(f"/v1/projects/1/children/{c.uuid}/transfer", {"village": target_village,
                                                                "note": "随祖父母搬到吉日街道居住"})
        c.village = target_village
        c.version += 1
    closed_api = closing[4:6]
    for c, reason in zip(closed_api, ("moved", "consent_withdrawn"), strict=True):
        api.post(f"/v1/projects/1/children/{c.uuid}/close", {"reason": reason, "note": "监护人带孩子迁往日喀则市"})
        c.closed, c.status = True, "closed"
    # Every website user starts an export of the visit records (a job is its starter's own); wait for them.
    jobs: dict[str, int] = {}
    for u in USERS:
        if u.role != "collector":
            user_api = api if u.name == "coord" else Api(target.client(), u)
            job = user_api.post("/v1/projects/1/exports", {"form": "visit_record", "format": "csvzip"})
            jobs[u.name] = int(job["id"])
            deadline = time.monotonic() + 120
            while wait_exports and user_api.get(f"/v1/projects/1/exports/{jobs[u.name]}")["status"] != "done":
                assert time.monotonic() < deadline, ("the export job did not finish within 2 minutes: does the server "
                                                     "run an export worker? (CAREFILE_EXPORT_WORKER=true under pytest)")
                time.sleep(0.2)
    # A draft of the visit form (a changed XLSForm, uploaded by the coordinator with the CLI).
    with tempfile.TemporaryDirectory(prefix="carefile-world-") as folder:
        draft = Path(folder) / "visit_record.xlsx"
        _bumped_xlsform(SHIPPED / "visit_record.xlsx", draft)
        target.cli("form", "draft", str(draft))

    open_pairs = [p for p in pair_ids if p not in (merged, distinct)]
    world = World(
        users=b.users, user_ids=user_ids, children=b.children, instances=b.instances,
        photo_instances=b.photo_instances, busiest_child=busy.uuid,
        closed_children=[c.uuid for c in b.children if c.closed], moved_children=[c.uuid for c in moved],
        conflict_children=[c.uuid for c in conflicts], duplicate_pairs=open_pairs, merged=merged, distinct=distinct,
        held=b.held, refused_instances=b.refused, export_jobs=jobs, draft_form="visit_record",
        today=b.today, place_names=b.names, seconds=time.monotonic() - started,
        counts={f: len(v) for f, v in b.instances.items()})
    return world


def _bumped_xlsform(src: Path, dst: Path) -> None:
    """The same XLSForm under a new version string, with one more question at the end (a draft)."""
    import openpyxl

    book = openpyxl.load_workbook(src)
    settings = book["settings"]
    header = [c.value for c in settings[1]]
    col = header.index("version") + 1
    settings.cell(row=2, column=col, value=str(settings.cell(row=2, column=col).value) + "9")
    survey = book["survey"]
    sheader = [c.value for c in survey[1]]
    row = [None] * len(sheader)
    row[sheader.index("type")] = "text"
    row[sheader.index("name")] = "visit_remark"
    for i, h in enumerate(sheader):
        if h and str(h).startswith("label::中文"):
            row[i] = "备注"
        elif h and str(h).startswith("label::English"):
            row[i] = "Remark"
    # before the final calculations, after the signature: append at the end is fine for a draft
    survey.append(row)
    book.save(dst)
