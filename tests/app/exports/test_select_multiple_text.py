"""A select-multiple's text as submitted: CSV exports write it (as ODK Central does); OData, the JSON export
and every other reader keep the parsed list; an answer sent as its choices joined by one space stores
nothing more. Sent over OpenRosa, read over REST. Both backends."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from app.models import SubmissionVersion
from tests.app.conftest import PASSWORD, submission_body
from tests.app.exports.test_exports import job_file, tables
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient

PICKS_MD = """
| settings |
| | form_id | version | form_title |
| | picks | 1 | Picks |

| survey |
| | type | name | label::English (en) | bind::carefile:sensitive |
| | select_one vil | village | Village | |
| | select_multiple ab | colors | Colors | |
| | begin group | grp | Group | |
| | select_multiple ab | secret | Secret | yes |
| | end group | | | |
| | begin repeat | rounds | Rounds | |
| | select_multiple ab | shades | Shades | |
| | end repeat | | | |

| choices |
| | list_name | name | label::English (en) |
| | vil | 540102002201 | Village A |
| | ab | a | Apple |
| | ab | b | Banana |
"""
VILLAGE = "540102002201"


def picks_xml(iid: str, colors: str, shades: list[str], secret: str = "a") -> bytes:
    rounds = "".join(f"<rounds><shades>{s}</shades></rounds>" for s in shades)
    return (f'<data id="picks" version="1"><village>{VILLAGE}</village><colors>{colors}</colors>'
            f"<grp><secret>{secret}</secret></grp>{rounds}<meta><instanceID>{iid}</instanceID></meta></data>"
            ).encode()


def send(phone: DigestClient, xml: bytes) -> None:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data


@pytest.fixture
def sent(app: Any, make_user: Any, publish: Any) -> None:
    """Three records, received in this order: s1 with the odd texts, s2 and s3 as Collect writes them."""
    publish(PICKS_MD, "picks.md")
    make_user("dolma", "collector", ["54"])
    make_user("boss", "admin")
    make_user("mgr", "manager", ["54"])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    send(phone, picks_xml("uuid:s1", " a  b", [" a  b", "a b", "b"], secret=" b\ta "))
    send(phone, picks_xml("uuid:s2", "a b", ["a b"]))
    send(phone, picks_xml("uuid:s3", "b", ["b"]))


def stored(rt: Any, iid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with rt.db.session() as s:
        sv = s.scalars(select(SubmissionVersion).where(SubmissionVersion.instance_id == iid)).one()
        return dict(sv.data), [dict(r.data) for r in sorted(sv.repeat_rows, key=lambda r: r.ordinal)]


def col(table: list[list[str]], header: str) -> list[str]:
    i = table[0].index(header)
    return [r[i] for r in table[1:]]


def csv_zip(api: ApiClient, query: str = "") -> dict[str, list[list[str]]]:
    resp = api.get(f"/v1/projects/1/forms/picks/submissions.csv.zip?attachments=false{query}")
    assert resp.status_code == 200, resp.data
    return tables(resp.data)


def test_stored_json_keeps_the_text_only_when_it_differs(sent: None, rt: Any) -> None:
    data, rows = stored(rt, "uuid:s1")
    assert data == {"village": VILLAGE, "colors": ["a", "b"], "grp/secret": ["b", "a"],
                    "@odk": {"colors": " a  b", "grp/secret": " b\ta "}, "meta/instanceID": "uuid:s1"}
    assert rows == [{"shades": ["a", "b"], "@odk": {"shades": " a  b"}}, {"shades": ["a", "b"]}, {"shades": ["b"]}]
    # the normal case stores nothing more than the parsed lists
    assert stored(rt, "uuid:s2") == ({"village": VILLAGE, "colors": ["a", "b"], "grp/secret": ["a"],
                                      "meta/instanceID": "uuid:s2"}, [{"shades": ["a", "b"]}])
    assert stored(rt, "uuid:s3") == ({"village": VILLAGE, "colors": ["b"], "grp/secret": ["a"],
                                      "meta/instanceID": "uuid:s3"}, [{"shades": ["b"]}])


def test_csv_writes_the_text_as_sent(sent: None, app: Any) -> None:
    boss = ApiClient(app, "boss")
    got = csv_zip(boss)
    main, rounds = got["picks.csv"], got["picks-rounds.csv"]
    assert col(main, "KEY") == ["uuid:s3", "uuid:s2", "uuid:s1"]  # newest first, as Central
    assert col(main, "colors") == ["b", "a b", " a  b"]
    assert col(main, "grp-secret") == ["***"] * 3  # sensitive: masked unless asked
    assert col(csv_zip(boss, "&sensitive=true")["picks.csv"], "grp-secret") == ["a", "a", " b\ta "]
    by_key = dict(zip(col(rounds, "KEY"), col(rounds, "shades"), strict=True))
    assert by_key == {"uuid:s1/rounds[1]": " a  b", "uuid:s1/rounds[2]": "a b", "uuid:s1/rounds[3]": "b",
                      "uuid:s2/rounds[1]": "a b", "uuid:s3/rounds[1]": "b"}
    # submissions.csv: the main table alone
    text = boss.get("/v1/projects/1/forms/picks/submissions.csv").data.decode("utf-8-sig")
    assert [r["colors"] for r in csv.DictReader(io.StringIO(text))] == ["b", "a b", " a  b"]


def test_split_selects_and_labels(sent: None, app: Any) -> None:
    boss = ApiClient(app, "boss")
    split = csv_zip(boss, "&splitSelectMultiples=true")
    main, rounds = split["picks.csv"], split["picks-rounds.csv"]
    assert main[0][main[0].index("colors"):main[0].index("colors") + 3] == ["colors", "colors/a", "colors/b"]
    assert [[r[main[0].index(h)] for h in ("colors", "colors/a", "colors/b")] for r in main[1:]] == \
        [["b", "0", "1"], ["a b", "1", "1"], [" a  b", "1", "1"]]
    cells = {k: [r[rounds[0].index(h)] for h in ("shades", "shades/a", "shades/b")]
             for k, r in zip(col(rounds, "KEY"), rounds[1:], strict=True)}
    assert [cells[f"uuid:s1/rounds[{n}]"] for n in (1, 2, 3)] == [[" a  b", "1", "1"], ["a b", "1", "1"],
                                                                   ["b", "0", "1"]]
    # labels: the choices' labels joined, whatever spaces were sent
    labelled = csv_zip(boss, "&labels=en")
    assert col(labelled["picks.csv"], "Colors") == ["Banana", "Apple, Banana", "Apple, Banana"]
    shades = dict(zip(col(labelled["picks-rounds.csv"], "KEY"), col(labelled["picks-rounds.csv"], "Shades"),
                      strict=True))
    assert [shades[f"uuid:s1/rounds[{n}]"] for n in (1, 2, 3)] == ["Apple, Banana", "Apple, Banana", "Banana"]


def test_the_text_as_sent_is_made_spreadsheet_safe(app: Any, make_user: Any, publish: Any) -> None:
    publish(PICKS_MD, "picks.md")
    make_user("dolma", "collector", ["54"])
    make_user("boss", "admin")
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    send(phone, picks_xml("uuid:f1", "  =a  b", ["\t-b"]))
    got = csv_zip(ApiClient(app, "boss"), "&splitSelectMultiples=true")
    assert col(got["picks.csv"], "colors") == ["'  =a  b"]
    assert col(got["picks-rounds.csv"], "shades") == ["'\t-b"]
    text = ApiClient(app, "boss").get("/v1/projects/1/forms/picks/submissions.csv").data.decode("utf-8-sig")
    assert [r["colors"] for r in csv.DictReader(io.StringIO(text))] == ["'  =a  b"]


def _no_sent_text(obj: Any) -> bool:
    text = json.dumps(obj)
    return "@odk" not in text and "  " not in text


def test_odata_and_json_keep_the_parsed_answers(sent: None, app: Any, rt: Any) -> None:
    for who, secret in (("boss", "b a"), ("mgr", "***")):
        api = ApiClient(app, who)
        body = api.get("/v1/projects/1/forms/picks.svc/Submissions").get_json()
        rows = {r["__id"]: r for r in body["value"]}
        assert [rows[i]["colors"] for i in ("uuid:s1", "uuid:s2", "uuid:s3")] == ["a b", "a b", "b"]
        assert rows["uuid:s1"]["grp"] == {"secret": secret}
        assert _no_sent_text(body["value"])
        reps = api.get("/v1/projects/1/forms/picks.svc/Submissions.rounds").get_json()["value"]
        assert sorted(r["shades"] for r in reps) == ["a b", "a b", "a b", "b", "b"]
        assert _no_sent_text(reps)
    doc = json.loads(job_file(ApiClient(app, "boss"), rt, {"form": "picks", "format": "json"}))
    s1 = next(s for s in doc["submissions"] if s["__id"] == "uuid:s1")
    assert s1["colors"] == ["a", "b"] and [r["shades"] for r in s1["rounds"]] == [["a", "b"], ["a", "b"], ["b"]]
    assert _no_sent_text(doc["submissions"])
