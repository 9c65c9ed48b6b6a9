"""Real places: the shipped division table of Tibet, region fields and `--region` that accept only
real codes, the search behind the picker, loading another province, names on the child file."""
from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from app.errors import Problem
from app.services import regions
from tests.app.children.test_entities import post
from tests.app.identity.test_web_collectors import signed_in, users
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import REGISTER_MD, register_xml

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_table_of_tibet_has_the_2023_counts() -> None:
    names = regions.table().names
    by_length = {n: sorted(c for c in names if c.startswith("54") and len(c) == n) for n in (2, 4, 6, 9, 12)}
    # 2023 edition: 7 prefectures, 74 counties/districts + 4 development zones of Lhasa, 705 townships, 5,580 villages
    assert [len(by_length[n]) for n in (2, 4, 6, 9, 12)] == [1, 7, 78, 705, 5580]
    assert by_length[4] == ["5401", "5402", "5403", "5404", "5405", "5406", "5425"]
    assert names["54"] == "西藏自治区" and names["5425"] == "阿里地区" and names["540102"] == "城关区"
    assert regions.full_name("540102002001") == "拉萨市 城关区 八廓街道 绕赛社区居委会"
    # every place hangs under a parent that exists
    orphans = [c for c in names if len(c) > 2 and c[:regions.PARENT_LENGTH[len(c)]] not in names]
    assert orphans == []
    assert [r.code for r in regions.children("540102002")][:2] == ["540102002001", "540102002002"]


def test_codes_are_checked_for_shape_and_existence() -> None:
    assert regions.validate_code(" 540102002 ") == "540102002"
    with pytest.raises(Exception, match="not a region code"):
        regions.validate_code("54010")
    with pytest.raises(Exception, match="no place with the code '540102002201'"):
        regions.validate_code("540102002201")  # the old placeholder village
    found = [r.code for r in regions.search("八廓")]
    assert found[0] == "540102002" and "540102002004" in found
    assert [r.code for r in regions.search("540102", within=["540102"], limit=3)] == ["540102", "540102002",
                                                                                     "540102003"]


def test_build_script_refuses_a_tarball_with_another_checksum() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_regions", ROOT / "scripts" / "build_regions.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        body = "code,name,provinceCode\n5401,\"拉萨市\",54\n".encode()
        info = tarfile.TarInfo("package/dist/cities.csv")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    with pytest.raises(SystemExit, match="checksum mismatch"):
        mod.verify(buf.getvalue())
    assert mod.SHA512 == "4uUPAT+1WfqDh5jytq7omdCmHNk3j+k76zEG/2IqaGcYB90c2SwcixttcypdsZ3T/9tN1TTpBDoeZn+Yw/qBEA=="
    assert len(base64.b64decode(mod.SHA512)) == hashlib.sha512().digest_size


def test_cli_region_accepts_only_real_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    monkeypatch.setenv("CAREFILE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CAREFILE_XLSFORMS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("CAREFILE_ODK_VALIDATE", "off")
    assert main(["user", "add", "dolma", "--role", "manager", "--password", "a long password",
                 "--region", "540102001"]) == 1
    err = capsys.readouterr().err
    assert "no place with the code '540102001'" in err
    assert main(["user", "add", "dolma", "--role", "manager", "--password", "a long password",
                 "--region", "540102002"]) == 0
    assert "regions 540102002" in capsys.readouterr().out
    # another province: refused until its table is loaded
    csv_file = tmp_path / "regions-63.csv"
    csv_file.write_text("code,name\n63,青海省\n6301,西宁市\n630102,城东区\n630102001,东关大街街道\n", encoding="utf-8")
    assert main(["user", "add", "pema", "--role", "manager", "--password", "a long password",
                 "--region", "630102"]) == 1
    capsys.readouterr()
    assert main(["regions", "load", str(csv_file)]) == 0
    assert "Province 63 added: 1 province, 1 prefecture, 1 county, 1 township, 0 village" in capsys.readouterr().out
    assert main(["user", "add", "pema", "--role", "manager", "--password", "a long password",
                 "--region", "630102"]) == 0
    assert main(["regions", "find", "东关"]) == 0
    assert "630102001     青海省 西宁市 城东区 东关大街街道" in capsys.readouterr().out
    regions.use_data_dir(None)


def test_loading_a_table_checks_it(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no parent 6301 in the file"):
        regions.load_file("code,name\n63,青海省\n630102,城东区\n".encode(), tmp_path)
    with pytest.raises(Exception, match="ships with CareFile"):
        regions.load_file("code,name\n54,西藏\n".encode(), tmp_path)
    with pytest.raises(Exception, match="one province"):
        regions.load_file("code,name\n63,青海省\n64,宁夏\n".encode(), tmp_path)
    with pytest.raises(Exception, match="columns code and name"):
        regions.load_file(b"id;label\n63;x\n", tmp_path)
    assert not (tmp_path / "regions").exists() or list((tmp_path / "regions").iterdir()) == []


def test_web_region_fields_reject_unknown_codes(app: Any, make_user: Any, rt: Any) -> None:
    b = signed_in(app, make_user, lang="zh")
    resp = b.post("/collectors/new", {"username": "dolma", "display_name": "卓玛", "password": "",
                                      "regions": "540102002 540102099"})
    page = unescape(resp.get_data(as_text=True))
    assert resp.status_code == 400 and "区划代码表中没有代码为“540102099”的地方" in page
    assert "dolma" not in users(rt)
    ok = b.post("/collectors/new", {"username": "dolma", "display_name": "卓玛", "password": "",
                                    "regions": "540102002"})
    assert ok.status_code == 302 and users(rt)["dolma"].region_codes == ["540102002"]
    edit = b.get("/collectors/dolma/edit").get_data(as_text=True)
    assert "八廓街道" in edit and 'class="rp-search"' in edit  # names of the codes given, and the picker
    bad = b.post("/collectors/dolma/edit", {"display_name": "卓玛", "regions": "540102002201"})
    assert bad.status_code == 400 and "540102002201" in unescape(bad.get_data(as_text=True))
    assert users(rt)["dolma"].region_codes == ["540102002"]


def test_admin_user_form_rejects_unknown_codes(app: Any, make_user: Any, rt: Any) -> None:
    b = signed_in(app, make_user, name="root", role="admin")
    form = {"username": "pema", "role": "manager", "password": "a good password", "repeat": "a good password"}
    resp = b.post("/users/new", {**form, "regions": "5401 549999"})
    assert resp.status_code == 400 and "no place with the code '549999'" in unescape(resp.get_data(as_text=True))
    assert b.post("/users/new", {**form, "regions": "5401"}).status_code == 302
    pema = users(rt)["pema"]
    resp = b.post(f"/users/{pema.id}", {"role": "manager", "display_name": "", "regions": "5401 5401x"})
    assert resp.status_code == 400 and "'5401x' is not a region code" in unescape(resp.get_data(as_text=True))
    assert users(rt)["pema"].region_codes == ["5401"]
    assert "拉萨市" in b.get("/users").get_data(as_text=True)


def test_region_search_for_the_picker(app: Any, make_user: Any) -> None:
    anonymous = app.test_client().get("/regions/search?q=八廓")
    assert anonymous.status_code == 302  # sign in first
    b = signed_in(app, make_user)
    rows = b.get("/regions/search?q=八廓").get_json()
    assert rows[0] == {"code": "540102002", "name": "八廓街道", "full": "拉萨市 城关区 八廓街道", "level": "township"}
    assert len(b.get("/regions/search?q=村委会").get_json()) == 20
    assert b.get("/regions/search?q=").get_json() == []


def test_child_file_shows_place_names(app: Any, make_user: Any, publish: Any) -> None:
    publish(REGISTER_MD, "register.md")
    make_user("dolma", "collector", ["540102"])
    phone = DigestClient(app.test_client(), "dolma", "correct horse")
    uid = str(uuid.uuid4())
    post(phone, register_xml("uuid:r1", uid, "Dolkar", "540102002001"))
    make_user("mgr", "manager", ["540102"])
    b = Browser(app)
    assert b.login("mgr").status_code == 302
    b.get("/")
    assert b.post("/language", {"lang": "zh", "next": "/"}).status_code == 302
    page = unescape(b.get(f"/children/{uid}").get_data(as_text=True))
    assert "拉萨市 城关区 八廓街道 绕赛社区居委会" in page
    assert "绕赛社区居委会 (540102002001)" in page  # the village property: its name, the code beside
    assert "540102002001</dd>" not in page
    listing = unescape(b.get("/children").get_data(as_text=True))
    assert "绕赛社区居委会 (540102002001)" in listing


PLACES_MD = """
| settings |
| | form_id | version |
| | places | 1 |

| survey |
| | type | name | label | choice_filter |
| | select_one_from_file regions.csv | county | County | level='county' |
| | select_one_from_file regions.csv | village | Village | level='village' and starts-with(name, ${county}) |
"""


def _village_lines(client: DigestClient) -> list[str]:
    body = client.get("/v1/projects/1/forms/places/attachments/regions.csv", openrosa=False)
    assert body.status_code == 200
    return [line for line in body.data.decode("utf-8").splitlines() if ",village," in line]


def test_the_places_list_is_made_for_each_user(app: Any, rt: Any, collect: DigestClient, make_user: Any,
                                               publish: Any) -> None:
    """Whatever published the form (here the website's and the API's publish service, not `carefile init`),
    regions.csv is made for each user from the division table: a collector's phone gets the places of the
    collector's regions and those above them, with the hash of that copy in the manifest."""
    publish(PLACES_MD, "places.md")
    manifest = collect.get("/v1/projects/1/forms/places/manifest").get_data(as_text=True)
    assert "<filename>regions.csv</filename>" in manifest
    body = collect.get("/v1/projects/1/forms/places/attachments/regions.csv", openrosa=False)
    assert body.status_code == 200
    assert f"<hash>md5:{hashlib.md5(body.data).hexdigest()}</hash>" in manifest  # the hash of that copy
    lines = body.data.decode("utf-8").splitlines()
    assert lines[0] == "name,label,level,parent" and "540102002001,绕赛社区居委会,village,540102002" in lines
    assert "5401,拉萨市,prefecture,54" in lines and not any(line.startswith(("540121", "5402")) for line in lines)
    villages = [c for c in regions.table().names if len(c) == 12 and c.startswith("540102")]
    assert len(_village_lines(collect)) == len(villages) > 50
    # an administrator gets the whole table
    make_user("root", "admin")
    root = DigestClient(app.test_client(), "root", "correct horse")
    assert len(_village_lines(root)) == 5580
    # an uploaded copy is refused: the server makes it
    with rt.db.write() as s:
        from app.services import forms as form_service

        fv = form_service.get_form(s, 1, "places").current_version
        with pytest.raises(Problem) as refused:
            form_service.upload_attachment(s, rt.store, fv, "regions.csv", io.BytesIO(b"name,label\n"), 1000, user=None)
    assert "made by the server for each user" in refused.value.message
    # the form's page says so, instead of "uploaded"
    make_user("coord_p", "coordinator", ["54"])
    page = Browser(app)
    assert page.login("coord_p").status_code == 302
    html = unescape(page.get("/forms/places").get_data(as_text=True))
    assert "Made for each user" in html or "按用户生成" in html


def test_the_places_list_stays_scoped_after_another_province_is_loaded(
        app: Any, rt: Any, collect: DigestClient, make_user: Any, publish: Any, tmp_path: Path) -> None:
    publish(PLACES_MD, "places.md")
    mine = _village_lines(collect)
    before = collect.get("/v1/projects/1/forms/places/manifest").get_data(as_text=True)
    regions.load_file("code,name\n63,青海省\n6301,西宁市\n630102,城东区\n630102001,东关大街街道\n"
                      "630102001001,清真巷社区\n".encode(), rt.config["DATA_DIR"])
    try:
        assert _village_lines(collect) == mine  # the collector's copy: still only the own county
        assert collect.get("/v1/projects/1/forms/places/manifest").get_data(as_text=True) == before
        make_user("root", "admin")
        everything = _village_lines(DigestClient(app.test_client(), "root", "correct horse"))
        assert len(everything) == 5581 and any(line.startswith("630102001001,") for line in everything)
    finally:
        (Path(rt.config["DATA_DIR"]) / "regions" / "regions-63.csv").unlink(missing_ok=True)
        regions.use_data_dir(rt.config["DATA_DIR"])


def test_exports_name_the_places_picked_from_regions_csv(app: Any, rt: Any, collect: DigestClient,
                                                         make_user: Any, tmp_path: Path) -> None:
    from app.services.ops import setup
    from tests.app.exports.test_exports import Api, col, tables

    path = tmp_path / "places.md"
    path.write_text(PLACES_MD, encoding="utf-8")
    assert setup.publish_file(rt, path).ok
    xml = (b'<data id="places" version="1"><county>540102</county><village>540102002001</village>'
           b"<meta><instanceID>uuid:p1</instanceID></meta></data>")
    post(collect, xml)
    make_user("coord", "coordinator", ["54"])
    api = Api(app, "coord")
    resp = api.get("/v1/projects/1/forms/places/submissions.csv.zip?labels=zh")
    assert resp.status_code == 200
    table = tables(resp.data)["places.csv"]
    assert col(table, "Village") == ["绕赛社区居委会"] and col(table, "County") == ["城关区"]
    codes = tables(api.get("/v1/projects/1/forms/places/submissions.csv.zip").data)["places.csv"]
    assert col(codes, "village") == ["540102002001"]
