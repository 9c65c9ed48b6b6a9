"""End to end against a real running CareFile: CLI set-up, gunicorn, HTTP like ODK Collect.

Every server here is started the way an operator would (``carefile init``, ``carefile user
add``, ``carefile form publish``, then ``gunicorn -w 2 wsgi:app`` on a loopback port; see
tests/e2e/live.py). Forms are filled by ODK's own form engine (tests/e2e/engine.py), then sent
with ``requests`` exactly as Collect sends them (docs/odk-protocol.md, *Submissions*, *Authentication*, *Collect's settings QR code*):

1. Digest credentials (Collect configured with URL + user name + password).
2. A token server URL (Collect configured by QR code), then the token revoked.
3. PostgreSQL + S3 (SeaweedFS): photo stored in the bucket; form media served via a 307 to a
   presigned URL.
4. Collect's split upload of a large submission (``*isIncomplete*``) under a low
   ``CAREFILE_MAX_SUBMISSION_BYTES``.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from requests.auth import HTTPDigestAuth
from sqlalchemy import select, text

from tests.e2e import engine
from tests.e2e.live import LiveServer, LiveServerError

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not installed (needed for the ODK form engine)",
)

FORM_ID = "live_visit"
FORM_MD = """
| survey |
| | type | name | label | required | image | parameters |
| | note | intro | Welcome | | logo.png | |
| | text | child_name | Child name | yes | | |
| | integer | age | Age | | | |
| | begin_repeat | siblings | Siblings | | | |
| | text | sname | Sibling name | | | |
| | integer | sage | Sibling age | | | |
| | image | sphoto | Sibling photo | | | max-pixels=1024 |
| | end_repeat | | | | | |
| | image | photo | Photo | | | max-pixels=1024 |
| | geopoint | home | Home location | | | |
| | select_multiple needs | needs | Needs | | | |
| choices |
| | list_name | name | label |
| | needs | food | Food |
| | needs | school | School |
| | needs | health | Health |
| settings |
| | form_id | version | form_title |
| | live_visit | 2024060101 | Home visit |
"""
PASSWORD = "correct horse battery"
OR = {"X-OpenRosa-Version": "1.0"}
NS_LIST = {"x": "http://openrosa.org/xforms/xformsList"}
NS_MANIFEST = {"m": "http://openrosa.org/xforms/xformsManifest"}
NS_RESPONSE = {"r": "http://openrosa.org/http/response"}
DEVICE = "collect:xyz123"


def jpeg_bytes(size: int, seed: int) -> bytes:
    """JPEG-looking bytes: SOI + JFIF APP0 header, random body, EOI."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    body = random.Random(seed).randbytes(max(0, size - len(head) - 2))
    return head + body + b"\xff\xd9"


PHOTO = jpeg_bytes(6 * 1024, seed=1)
LOGO = b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(3000)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def form_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live-forms") / "home_visit.md"
    path.write_text(FORM_MD)
    return path


@pytest.fixture(scope="module")
def logo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live-media") / "logo.png"
    path.write_bytes(LOGO)
    return path


def _provision(srv: LiveServer, form_file: Path, users: tuple[str, ...] = ("alice",)) -> None:
    """`carefile init`, then the users and the form (those at once: they are independent)."""
    # Not `assert`: a set-up failure must never count as the expected failure of an xfail test.
    out = srv.cli("init").stdout
    if "Database ready" not in out:
        raise LiveServerError(f"carefile init: {out}")
    results = srv.cli_parallel(["form", "publish", str(form_file)],
                               *(["user", "add", u, "--role", "collector", "--password", PASSWORD] for u in users))
    if f"{FORM_ID} version 2024060101: published" not in results[0].stdout:
        raise LiveServerError(f"carefile form publish: {results[0].stdout}")


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory, form_file: Path) -> Iterator[LiveServer]:
    """SQLite + local blob folder: the default installation."""
    srv = LiveServer.prepare(tmp_path_factory.mktemp("live-local"))
    try:
        _provision(srv, form_file, users=("alice", "carol"))
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.s3server import SeaweedError, start_seaweedfs

    try:
        server = start_seaweedfs(tmp_path_factory.mktemp("live-s3"))
    except SeaweedError as exc:
        pytest.skip(f"SeaweedFS unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_database(request: pytest.FixtureRequest) -> str:
    from tests.support.pgserver import find_bindir

    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    from tests.support.pgserver import fresh_database

    # pg_server: the session fixture in tests/conftest.py
    return fresh_database(request.getfixturevalue("pg_server"), "carefile_live")


S3_PREFIX = "live-blobs"


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory, form_file: Path, logo_file: Path,
                 pg_database: str, s3: Any) -> Iterator[LiveServer]:
    """PostgreSQL + S3 (SeaweedFS), the form's media file uploaded with `carefile form attach`."""
    srv = LiveServer.prepare(tmp_path_factory.mktemp("live-cloud"), {
        "CAREFILE_DATABASE_URL": pg_database,
        "CAREFILE_STORAGE_URL": f"s3://{s3.bucket}/{S3_PREFIX}",
        "CAREFILE_S3_ENDPOINT_URL": s3.endpoint_url,
        "CAREFILE_S3_REGION": s3.region,
        "CAREFILE_S3_ACCESS_KEY": s3.access_key,
        "CAREFILE_S3_SECRET_KEY": s3.secret_key,
    })
    try:
        _provision(srv, form_file)
        out = srv.cli("form", "attach", FORM_ID, str(logo_file)).stdout
        if f"logo.png: stored ({len(LOGO)} bytes)" not in out:
            raise LiveServerError(f"carefile form attach: {out}")
        srv.start()
        yield srv
    finally:
        srv.stop()


SMALL_LIMIT = 5_000_000


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory, form_file: Path) -> Iterator[LiveServer]:
    srv = LiveServer.prepare(tmp_path_factory.mktemp("live-small"),
                             {"CAREFILE_MAX_SUBMISSION_BYTES": str(SMALL_LIMIT)})
    try:
        _provision(srv, form_file)
        srv.start()
        yield srv
    finally:
        srv.stop()


# -- a Collect-like client ------------------------------------------------------------------------


class Collect:
    """What ODK Collect does over HTTP, with `requests` (one Session, like one OkHttp client)."""

    def __init__(self, server_url: str, username: str | None = None, password: str | None = None) -> None:
        self.server_url = server_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update(OR)
        self.http.headers["User-Agent"] = "org.odk.collect.android/v2024.2.0 (live-test)"
        if username is not None:
            self.http.auth = HTTPDigestAuth(username, password or "")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Collect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def form_list(self) -> tuple[requests.Response, list[dict[str, str]]]:
        resp = self.http.get(f"{self.server_url}/formList", params={"deviceID": DEVICE}, timeout=30)
        forms = []
        if resp.status_code == 200:
            root = etree.fromstring(resp.content)
            for x in root.findall("x:xform", NS_LIST):
                forms.append({etree.QName(c).localname: (c.text or "") for c in x})
        return resp, forms

    def download_form(self, entry: dict[str, str]) -> bytes:
        resp = self.http.get(entry["downloadUrl"], timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.content

    def head_submission(self) -> requests.Response:
        return self.http.head(f"{self.server_url}/submission", params={"deviceID": DEVICE}, timeout=30)

    def post_submission(self, xml: bytes, files: list[tuple[str, bytes]], incomplete: bool = False,
                        xml_name: str = "Home visit_2024-06-01_10-00-00.xml") -> requests.Response:
        parts: list[tuple[str, tuple[str, bytes, str]]] = [("xml_submission_file", (xml_name, xml, "text/xml"))]
        for name, content in files:
            ctype = "image/jpeg" if name.endswith(".jpg") else "application/octet-stream"
            parts.append((name, (name, content, ctype)))
        fields = {"*isIncomplete*": "yes"} if incomplete else None
        return self.http.post(f"{self.server_url}/submission", params={"deviceID": DEVICE},
                              files=parts, data=fields, timeout=120)

    def limit(self) -> int:
        """HEAD preflight: Collect needs 204 and reads X-OpenRosa-Accept-Content-Length."""
        head = self.head_submission()
        assert head.status_code == 204, head.text
        try:
            return int(head.headers["X-OpenRosa-Accept-Content-Length"])
        except (KeyError, ValueError):
            return 10_000_000  # Collect's default

    def send(self, xml: bytes, files: dict[str, bytes]) -> list[requests.Response]:
        """Collect's upload of one instance: HEAD, then as many POSTs as the limit needs."""
        responses = []
        batches = collect_batches(len(xml), files, self.limit())
        for i, batch in enumerate(batches):
            resp = self.post_submission(xml, batch, incomplete=i < len(batches) - 1)
            responses.append(resp)
            if resp.status_code not in (201, 202):
                break  # Collect aborts the remaining POSTs
        return responses


def collect_batches(xml_size: int, files: dict[str, bytes], limit: int) -> list[list[tuple[str, bytes]]]:
    """How Collect splits one instance's files over POSTs (CL OkHttpConnection.uploadSubmissionAndFiles).

    Each POST repeats the XML; the next file goes into a new POST when this one would have more
    than 100 files or exceed ``limit`` bytes; the first file of a POST is always included.
    """
    batches: list[list[tuple[str, bytes]]] = [[]]
    size = xml_size
    for name, data in files.items():
        if batches[-1] and (len(batches[-1]) >= 100 or size + len(data) > limit):
            batches.append([])
            size = xml_size
        batches[-1].append((name, data))
        size += len(data)
    return batches


def fill_visit(form_xml: bytes, photo: bytes, sibling_photo: bytes | None = None,
               name: str = "Tashi") -> engine.FilledSubmission:
    answers: list[dict[str, Any]] = [
        {"ref": "/data/child_name", "value": name},
        {"ref": "/data/age", "value": "9"},
        {"ref": "/data/siblings", "repeat_count": 2},
        {"ref": "/data/siblings[1]/sname", "value": "Dawa"},
        {"ref": "/data/siblings[1]/sage", "value": "12"},
        {"ref": "/data/siblings[2]/sname", "value": "Pema"},
        {"ref": "/data/siblings[2]/sage", "value": "4"},
        {"ref": "/data/photo", "file": photo, "name": "photo.jpg", "type": "image/jpeg"},
        {"ref": "/data/home", "value": "29.65 91.13 3650 5"},
        {"ref": "/data/needs", "values": ["food", "health"]},
    ]
    if sibling_photo is not None:
        answers.append({"ref": "/data/siblings[1]/sphoto", "file": sibling_photo, "name": "sibling.jpg",
                        "type": "image/jpeg"})
    return engine.fill(form_xml, answers, attachments={"logo.png": LOGO})


def openrosa_message(resp: requests.Response) -> tuple[str, str]:
    root = etree.fromstring(resp.content)
    assert etree.QName(root).localname == "OpenRosaResponse", resp.text
    msg = root.find("r:message", NS_RESPONSE)
    assert msg is not None, resp.text
    return msg.get("nature", ""), msg.text or ""


class RefusedAsTooLarge(Exception):
    """The server answered 413 to a POST Collect made within the advertised limit."""


def assert_created(resp: requests.Response) -> None:
    if resp.status_code == 413:
        raise RefusedAsTooLarge(f"413 {resp.text}")
    assert resp.status_code == 201, f"{resp.status_code} {resp.text}"
    assert resp.headers["Content-Type"].startswith("text/xml")
    assert resp.headers["X-OpenRosa-Version"] == "1.0"
    nature, text_ = openrosa_message(resp)
    assert nature == ""
    assert text_


def stored_submission(srv: LiveServer, instance_id: str) -> dict[str, Any]:
    """What the database and blob store hold for instance_id (read with the app's own models)."""
    from app.models import Form, Submission, SubmissionVersion, User

    rt = srv.app().extensions["carefile"]
    with rt.db.session() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == FORM_ID))
        assert form is not None
        subs = list(s.scalars(select(Submission).where(Submission.form_id == form.id,
                                                       Submission.instance_id == instance_id)))
        versions = list(s.scalars(select(SubmissionVersion).where(SubmissionVersion.form_id == form.id,
                                                                  SubmissionVersion.instance_id == instance_id)))
        assert len(subs) == 1 and len(versions) == 1, (subs, versions)
        sub, ver = subs[0], versions[0]
        submitter = s.get(User, sub.submitter_id) if sub.submitter_id else None
        files = {}
        for att in ver.attachments:
            data = None
            if att.blob_key:
                with rt.store.open(att.blob_key) as fh:
                    data = fh.read()
            files[att.name] = {"blob_key": att.blob_key, "md5": att.md5, "size": att.size,
                               "content_type": att.content_type, "bytes": data}
        return {
            "submission_count": s.scalar(select(text("count(*)")).select_from(Submission)
                                         .where(Submission.form_id == form.id)),
            "current": sub.current_version_id == ver.id,
            "device_id": sub.device_id,
            "submitter": submitter.username if submitter else None,
            "values": dict(ver.data),
            "repeat_rows": [(r.repeat, r.ordinal, dict(r.data)) for r in ver.repeat_rows],
            "files": files,
            "user_agent": ver.user_agent,
        }


def check_visit_values(stored: dict[str, Any], filled: engine.FilledSubmission) -> None:
    v = stored["values"]
    assert v["child_name"] == "Tashi"
    assert v["age"] == 9  # typed: int
    assert v["needs"] == ["food", "health"]  # select_multiple → list
    # stored as GeoJSON with the text as submitted (CSV exports write it back as it came; OData leaves it out)
    assert v["home"] == {"type": "Point", "coordinates": [91.13, 29.65, 3650.0],
                         "properties": {"accuracy": 5.0, "odk": "29.65 91.13 3650.0 5.0"}}
    assert v["photo"] == "photo.jpg"
    assert v["meta/instanceID"] == filled.instance_id
    rows = stored["repeat_rows"]
    assert [(r, o) for r, o, _ in rows] == [("/data/siblings", 1), ("/data/siblings", 2)]
    assert rows[0][2]["sname"] == "Dawa" and rows[0][2]["sage"] == 12
    assert rows[1][2]["sname"] == "Pema" and rows[1][2]["sage"] == 4


# -- 1. Digest ------------------------------------------------------------------------------------


def test_digest_challenge(local_server: LiveServer) -> None:
    """Without credentials: 401 with a Digest challenge Collect can answer (qop=auth)."""
    with requests.get(f"{local_server.url}/v1/projects/1/formList", headers=OR, timeout=10) as resp:
        assert resp.status_code == 401
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("Digest ")
        assert 'realm="CareFile"' in challenge and 'qop="auth"' in challenge and "nonce=" in challenge
        assert "Basic" not in challenge  # plain http: no Basic offered
    with Collect(f"{local_server.url}/v1/projects/1", "alice", "wrong password") as phone:
        resp, _ = phone.form_list()
        assert resp.status_code == 401


def test_digest_collect_flow(local_server: LiveServer) -> None:
    base = f"{local_server.url}/v1/projects/1"
    with Collect(base, "alice", PASSWORD) as phone:
        # formList, hash = md5 of the form document served at downloadUrl
        resp, forms = phone.form_list()
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-OpenRosa-Version"] == "1.0"
        assert [f["formID"] for f in forms] == [FORM_ID]
        entry = forms[0]
        assert entry["name"] == "Home visit" and entry["version"] == "2024060101"
        assert entry["downloadUrl"] == f"{base}/forms/{FORM_ID}.xml"
        assert entry["manifestUrl"] == f"{base}/forms/{FORM_ID}/manifest"
        form_xml = phone.download_form(entry)
        assert entry["hash"] == "md5:" + hashlib.md5(form_xml).hexdigest()

        filled = fill_visit(form_xml, PHOTO)
        assert filled.files == {"photo.jpg": PHOTO}

        head = phone.head_submission()
        assert head.status_code == 204
        assert head.headers["X-OpenRosa-Version"] == "1.0"
        assert int(head.headers["X-OpenRosa-Accept-Content-Length"]) == 100 * 1024 * 1024

        assert_created(phone.post_submission(filled.xml, [("photo.jpg", PHOTO)]))

        stored = stored_submission(local_server, filled.instance_id)
        assert stored["submission_count"] == 1
        assert stored["current"] and stored["submitter"] == "alice" and stored["device_id"] == DEVICE
        assert "live-test" in (stored["user_agent"] or "")
        check_visit_values(stored, filled)
        photo = stored["files"]["photo.jpg"]
        assert photo["bytes"] == PHOTO
        assert photo["md5"] == hashlib.md5(PHOTO).hexdigest() and photo["size"] == len(PHOTO)
        assert photo["content_type"] == "image/jpeg"
        assert set(stored["files"]) == {"photo.jpg"}

        # Collect resends after a lost response: identical POST → 201, still one submission
        assert_created(phone.post_submission(filled.xml, [("photo.jpg", PHOTO)]))
        again = stored_submission(local_server, filled.instance_id)
        assert again["submission_count"] == 1
        assert again["files"]["photo.jpg"]["bytes"] == PHOTO


# -- 2. Token URL (QR code) -----------------------------------------------------------------------


def test_token_url_flow_and_revocation(local_server: LiveServer) -> None:
    out = local_server.cli("user", "token", "carol").stdout
    m = re.search(r"^(http://\S+/v1/key/(\S+)/projects/1)$", out, re.M)
    assert m, out
    token_url, token = m.group(1), m.group(2)
    assert token_url.startswith(local_server.url + "/")
    assert len(token) == 64

    with Collect(token_url) as phone:  # no credentials at all
        resp, forms = phone.form_list()
        assert resp.status_code == 200, resp.text
        entry = next(f for f in forms if f["formID"] == FORM_ID)
        assert entry["downloadUrl"] == f"{token_url}/forms/{FORM_ID}.xml"  # links keep the token
        form_xml = phone.download_form(entry)
        assert entry["hash"] == "md5:" + hashlib.md5(form_xml).hexdigest()
        filled = fill_visit(form_xml, PHOTO)
        responses = phone.send(filled.xml, filled.files)
        assert len(responses) == 1
        assert_created(responses[0])
        stored = stored_submission(local_server, filled.instance_id)
        assert stored["submitter"] == "carol"
        check_visit_values(stored, filled)
        assert stored["files"]["photo.jpg"]["bytes"] == PHOTO

        out = local_server.cli("user", "revoke", "carol").stdout
        assert "Revoked 1 token(s)" in out
        resp, _ = phone.form_list()
        assert resp.status_code == 403, resp.text
        assert "WWW-Authenticate" not in resp.headers  # Collect must not ask for a password
        assert openrosa_message(resp)[0] == "error"
        resp = phone.head_submission()
        assert resp.status_code == 403


# -- 3. PostgreSQL + S3 ---------------------------------------------------------------------------


def test_postgres_s3_flow(cloud_server: LiveServer, s3: Any) -> None:
    from storage import open_store

    base = f"{cloud_server.url}/v1/projects/1"
    rt = cloud_server.app().extensions["carefile"]
    assert rt.db.engine.dialect.name == "postgresql"

    with Collect(base, "alice", PASSWORD) as phone:
        resp, forms = phone.form_list()
        assert resp.status_code == 200, resp.text
        entry = forms[0]
        form_xml = phone.download_form(entry)
        assert entry["hash"] == "md5:" + hashlib.md5(form_xml).hexdigest()

        # Form media: the manifest lists logo.png; its download is a 307 to a presigned S3 URL
        man = phone.http.get(entry["manifestUrl"], timeout=30)
        assert man.status_code == 200, man.text
        media = [{etree.QName(c).localname: c.text for c in mf}
                 for mf in etree.fromstring(man.content).findall("m:mediaFile", NS_MANIFEST)]
        assert [m["filename"] for m in media] == ["logo.png"]
        assert media[0]["hash"] == "md5:" + hashlib.md5(LOGO).hexdigest()
        att_url = media[0]["downloadUrl"]
        assert att_url == f"{base}/forms/{FORM_ID}/attachments/logo.png"
        redirect = phone.http.get(att_url, allow_redirects=False, timeout=30)
        assert redirect.status_code == 307, redirect.text
        location = redirect.headers["Location"]
        assert location.startswith(f"{s3.endpoint_url}/{s3.bucket}/{S3_PREFIX}/")
        assert "X-Amz-Signature=" in location
        with requests.get(location, timeout=30) as direct:  # no credentials: the URL is the grant
            assert direct.status_code == 200
            assert direct.content == LOGO
            assert "logo.png" in direct.headers.get("Content-Disposition", "")
        tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        with requests.get(tampered, timeout=30) as bad:
            assert bad.status_code == 403
        followed = phone.http.get(att_url, timeout=30)  # as OkHttp would: follow the redirect
        assert followed.status_code == 200 and followed.content == LOGO

        # Submission with a photo
        filled = fill_visit(form_xml, PHOTO)
        responses = phone.send(filled.xml, filled.files)
        assert len(responses) == 1
        assert_created(responses[0])

    stored = stored_submission(cloud_server, filled.instance_id)
    check_visit_values(stored, filled)
    photo = stored["files"]["photo.jpg"]
    assert photo["bytes"] == PHOTO
    # the object is really in the bucket, under the configured prefix
    store = open_store(f"s3://{s3.bucket}/{S3_PREFIX}", **s3.store_options())
    assert store.exists(photo["blob_key"])
    with store.open(photo["blob_key"]) as fh:
        assert fh.read() == PHOTO
    head = s3.client().head_object(Bucket=s3.bucket, Key=f"{S3_PREFIX}/{photo['blob_key']}")
    assert head["ContentLength"] == len(PHOTO)
    # nothing written to the local data folder's blob directory
    local_blobs = cloud_server.root / "data" / "blobs"
    assert not local_blobs.exists() or not any(local_blobs.rglob("*"))


# -- 4. Split upload ------------------------------------------------------------------------------


def _split_upload(srv: LiveServer, big_photo: bytes) -> None:
    """Collect's split upload of one instance: XML + small file + *isIncomplete*, then XML + big file."""
    small = jpeg_bytes(20 * 1024, seed=3)
    with Collect(f"{srv.url}/v1/projects/1", "alice", PASSWORD) as phone:
        resp, forms = phone.form_list()
        assert resp.status_code == 200, resp.text
        form_xml = phone.download_form(forms[0])
        filled = fill_visit(form_xml, big_photo, sibling_photo=small)
        assert filled.files == {"photo.jpg": big_photo, "sibling.jpg": small}

        limit = phone.limit()
        assert limit == SMALL_LIMIT
        # Collect sends the files in folder order; with the small one first the big one is split off.
        batches = collect_batches(len(filled.xml), {"sibling.jpg": small, "photo.jpg": big_photo}, limit)
        assert [[name for name, _ in b] for b in batches] == [["sibling.jpg"], ["photo.jpg"]]

        first = phone.post_submission(filled.xml, batches[0], incomplete=True)
        assert_created(first)
        mid = stored_submission(srv, filled.instance_id)
        assert mid["files"]["sibling.jpg"]["bytes"] == small
        assert mid["files"]["photo.jpg"]["blob_key"] is None  # not arrived yet

        second = phone.post_submission(filled.xml, batches[1])
        assert_created(second)

    stored = stored_submission(srv, filled.instance_id)
    assert stored["current"]
    check_visit_values(stored, filled)
    assert stored["files"]["sibling.jpg"]["bytes"] == small
    assert stored["files"]["photo.jpg"]["bytes"] == big_photo
    assert stored["files"]["photo.jpg"]["size"] == len(big_photo)


def test_split_upload_parts_within_limit(small_limit_server: LiveServer) -> None:
    """Every POST fits under the advertised limit, but not both files together."""
    _split_upload(small_limit_server, jpeg_bytes(SMALL_LIMIT - 10_000, seed=4))


def test_single_file_over_the_limit_is_refused_clearly(small_limit_server: LiveServer) -> None:
    """A 12 MB photo with a 5 MB limit: Collect sends it alone; the server says why it cannot take it."""
    with pytest.raises(RefusedAsTooLarge) as refused:
        _split_upload(small_limit_server, jpeg_bytes(12 * 1024 * 1024, seed=5))
    assert "5 MB" in str(refused.value) and "smaller" in str(refused.value)


def test_post_exactly_at_advertised_limit(small_limit_server: LiveServer) -> None:
    """XML + photo == the advertised limit: Collect sends one POST; multipart framing adds ~500 bytes."""
    with Collect(f"{small_limit_server.url}/v1/projects/1", "alice", PASSWORD) as phone:
        resp, forms = phone.form_list()
        assert resp.status_code == 200, resp.text
        filled = fill_visit(phone.download_form(forms[0]), b"placeholder")  # the XML names photo.jpg
        limit = phone.limit()
        photo = jpeg_bytes(limit - len(filled.xml), seed=6)
        batches = collect_batches(len(filled.xml), {"photo.jpg": photo}, limit)
        assert batches == [[("photo.jpg", photo)]]  # Collect: it fits, one POST
        assert_created(phone.post_submission(filled.xml, batches[0]))
    assert stored_submission(small_limit_server, filled.instance_id)["files"]["photo.jpg"]["bytes"] == photo
