"""Fill the shipped forms with ODK's form engine (tests/e2e/engine) and check the logic:
consent gates the entity creation, the label is masked, scoring suggests the right result,
updates target the picked child.  Skipped when node / the engine is unavailable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from pyxform.xls2xform import convert

from tests.e2e import engine

FORMS_DIR = Path(__file__).resolve().parents[2] / "xlsforms"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
CHILD_ID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
CSV_HEADER = ("name,label,__version,prefecture,county,township,village,gender,birth_date,category,status,"
              "risk_level,referral_status,next_followup_due,registered_on,flag_reidentify")


@pytest.fixture(scope="module", autouse=True)
def _engine_available():
    try:
        engine.ensure_installed()
    except engine.EngineUnavailable as exc:
        pytest.skip(f"ODK form engine unavailable: {exc}")


@cache
def _form(name: str) -> bytes:
    return convert(xlsform=str(FORMS_DIR / f"{name}.xlsx"), validate=False).xform.encode("utf-8")


def _years_ago(years: int, months: int = 0) -> str:
    """A birth date `years` (+ `months`) before today (ages stay valid whenever the tests run)."""
    t = date.today()
    m = t.month - months
    y = t.year - years + (m - 1) // 12
    m = (m - 1) % 12 + 1
    return date(y, m, min(t.day, 28)).isoformat()


def _children_csv(status="registered", risk="unassessed", ref="none", birth=None) -> bytes:
    birth = birth or _years_ago(14, 2)
    row = (f"{CHILD_ID},扎*（男，绕赛社区居委会）,1,5401,540102,540102002,540102002001,male,{birth},"
           f"left_behind,{status},{risk},{ref},2026-12-01,2026-11-01,no")
    return (CSV_HEADER + "\n" + row + "\n").encode("utf-8")


def _region():
    return [
        {"ref": "/data/grp_region/prefecture", "value": "5401"},
        {"ref": "/data/grp_region/county", "value": "540102"},
        {"ref": "/data/grp_region/township", "value": "540102002"},
        {"ref": "/data/grp_region/village", "value": "540102002001"},
    ]


def _sig(ref):
    return {"ref": ref, "file": PNG, "name": "sig.png", "type": "image/png"}


@cache
def _regions_csv() -> bytes:
    from app.services.regions import form_csv  # what the server attaches when it publishes the forms

    return form_csv()


def _fill(form, answers, csv=None, allow_pending=False):
    attachments = {"children.csv": csv if csv is not None else (CSV_HEADER + "\n").encode(),
                   "regions.csv": _regions_csv()}
    sub = engine.fill(_form(form), answers, attachments=attachments, allow_pending=allow_pending)
    return sub, ET.fromstring(sub.xml)


def _text(root, path):
    el = root.find(path)
    return None if el is None else (el.text or "")


def _entity(root):
    return root.find("meta/entity")


# ---------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------

BIRTH_12 = _years_ago(12, 1)


def _registration(consent="yes", sensitive="yes", birth=BIRTH_12, assent="yes", extra=()):
    answers = [
        {"ref": "/data/grp_worker/worker_role", "value": "child_director"},
        {"ref": "/data/grp_worker/worker_name", "value": "卓玛"},
        {"ref": "/data/grp_worker/worker_phone", "value": "13800000000"},
        *_region(),
        {"ref": "/data/grp_consent/consent_guardian", "value": consent},
    ]
    if consent != "yes":
        answers.append({"ref": "/data/grp_consent/refusal_reason", "value": "监护人暂不同意"})
        return answers
    answers.append({"ref": "/data/grp_consent/consent_sensitive", "value": sensitive})
    if sensitive != "yes":
        answers.append({"ref": "/data/grp_consent/refusal_reason", "value": "不同意处理敏感信息"})
        return answers
    answers += [_sig("/data/grp_consent/consent_signature"), {"ref": "/data/grp_age/birth_date", "value": birth}]
    if assent is not None:
        answers.append({"ref": "/data/grp_assent/child_assent", "value": assent})
    if assent == "no":  # used with a child of 14+: no file, no further questions
        return answers
    answers += [
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
        *extra,
        {"ref": "/data/photo_consent", "value": "no"},
    ]
    return answers


def household(kids, consent="yes"):
    """The household registration filled for these children: (name, sex, birth date, assent or None)."""
    answers = [
        {"ref": "/data/grp_worker/worker_role", "value": "child_director"},
        {"ref": "/data/grp_worker/worker_name", "value": "卓玛"},
        {"ref": "/data/grp_worker/worker_phone", "value": "13800000000"},
        *_region(),
        {"ref": "/data/grp_consent/consent_guardian", "value": consent},
    ]
    if consent != "yes":
        return answers + [{"ref": "/data/grp_consent/refusal_reason", "value": "监护人暂不同意"}]
    answers += [
        {"ref": "/data/grp_consent/consent_sensitive", "value": "yes"},
        _sig("/data/grp_consent/consent_signature"),
        {"ref": "/data/grp_guardian/guardian_name", "value": "次仁"},
        {"ref": "/data/grp_guardian/guardian_phone", "value": "13912345678"},
        {"ref": "/data/grp_guardian/guardian_capacity", "value": "limited"},
        {"ref": "/data/child", "repeat_count": len(kids)},
    ]
    for n, (name, sex, birth, assent) in enumerate(kids, start=1):
        at = f"/data/child[{n}]"
        answers.append({"ref": f"{at}/birth_date", "value": birth})
        if assent is not None:
            answers.append({"ref": f"{at}/child_assent", "value": assent})
        if assent == "no":
            continue
        answers += [
            {"ref": f"{at}/grp_child/child_name", "value": name},
            {"ref": f"{at}/grp_child/gender", "value": sex},
            {"ref": f"{at}/grp_child/ethnicity", "value": "tibetan"},
            {"ref": f"{at}/grp_child/child_category", "values": ["left_behind"]},
            {"ref": f"{at}/grp_child/school_status", "value": "primary"},
            {"ref": f"{at}/grp_child/school_name", "value": "城关小学三年级"},
            {"ref": f"{at}/grp_child/living_with", "value": "grandparents"},
            {"ref": f"{at}/grp_child/guardian_relation", "value": "grandparent"},
        ]
    return answers + [{"ref": "/data/photo_consent", "value": "no"}]


def test_household_registration_makes_one_entity_per_child():
    kids = [("扎西次仁", "male", BIRTH_12, "yes"), ("卓玛拉姆", "female", _years_ago(6), None),
            ("次旦", "male", _years_ago(15, 2), "no")]
    sub, root = _fill("household_registration", household(kids))
    assert root.find("meta/entity") is None  # the household itself is no entity
    children = root.findall("child")
    assert len(children) == 3
    blocks = [c.find("meta/entity") for c in children]
    assert [b.get("dataset") for b in blocks] == ["children"] * 3
    assert [b.get("create") for b in blocks] == ["true", "true", "false"]  # the 15-year-old said no
    ids = [b.get("id") for b in blocks]
    assert len(set(ids)) == 3 and all(i.startswith("uuid:") or len(i) == 36 for i in ids)
    assert blocks[0].find("label").text.startswith("扎*（男，")
    assert blocks[1].find("label").text.startswith("卓*（女，")
    for child in children[:2]:  # the household's place and the initial status, in each child
        assert _text(child, "child_village") == "540102002001" and _text(child, "status_init") == "registered"
    assert _text(children[0], "birth_date") == BIRTH_12


def test_household_registration_without_consent_asks_nothing_about_children():
    sub, root = _fill("household_registration", household([], consent="no"))
    assert not [b for b in root.findall("child/meta/entity") if b.get("create") in ("1", "true")]
    assert _text(root, "grp_consent/refusal_reason") == "监护人暂不同意"


def test_registration_with_consent_creates_masked_entity():
    sub, root = _fill("child_registration", _registration())
    entity = _entity(root)
    assert entity.get("dataset") == "children"
    assert entity.get("create") in ("1", "true")
    label = entity.findtext("label")
    assert label == f"扎*（男，{BIRTH_12[:7]}，绕赛社区居委会）"
    assert "扎西次仁" not in label
    assert _text(root, "status_init") == "registered"
    assert _text(root, "risk_init") == "unassessed"
    assert _text(root, "referral_init") == "none"
    name = _text(root, "meta/instanceName")
    assert name.startswith("建档-540102002001-") and name.endswith(entity.get("id")[:8])
    assert "扎" not in name


@pytest.mark.parametrize("consent,sensitive", [("no", None), ("unreachable", None), ("yes", "no")])
def test_registration_without_consent_creates_no_entity(consent, sensitive):
    sub, root = _fill("child_registration", _registration(consent=consent, sensitive=sensitive or "yes"))
    assert _entity(root).get("create") in ("0", "false", "")
    assert _text(root, "file_ok") == "no"
    # Nothing about the child is recorded.
    assert not _text(root, "grp_child/child_name")
    assert not _text(root, "grp_age/birth_date")
    assert _text(root, "grp_consent/refusal_reason")


def test_registration_child_14_plus_must_agree():
    sub, root = _fill("child_registration", _registration(birth=_years_ago(15), assent="no"))
    assert _entity(root).get("create") in ("0", "false", "")
    assert not _text(root, "grp_child/child_name")


def test_registration_child_under_8_not_asked():
    sub, root = _fill("child_registration", _registration(birth=_years_ago(5), assent=None))
    assert _entity(root).get("create") in ("1", "true")


def test_registration_warns_about_duplicate():
    csv = (CSV_HEADER + "\nabc,扎*（男）,1,5401,540102,540102002,540102002001,male,"
           f"{BIRTH_12},left_behind,registered,unassessed,none,2026-12-01,2026-11-01,no\n").encode()
    answers = _registration(extra=[{"ref": "/data/dup_checked", "value": "no"}])
    sub, root = _fill("child_registration", answers, csv=csv, allow_pending=True)
    assert _text(root, "dup_n") == "1"
    assert sub.status == "pending"
    assert any("dup_checked" in str(v) for v in sub.violations)


# ---------------------------------------------------------------------------------------
# Identification
# ---------------------------------------------------------------------------------------

def _identification(emotion, behaviour, redflag=("none",), duration=None, impact=None, result=None, reason=None):
    answers = [
        {"ref": "/data/worker_role", "value": "child_director"},
        *_region(),
        {"ref": "/data/child", "value": CHILD_ID},
        {"ref": "/data/visit_date", "value": "2026-11-20"},
        {"ref": "/data/id_methods", "values": ["home_visit", "talk_child"]},
        {"ref": "/data/grp_obs/obs_emotion", "values": list(emotion)},
        {"ref": "/data/grp_obs/obs_behaviour", "values": list(behaviour)},
        {"ref": "/data/grp_obs/obs_physical", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_school", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_family", "values": ["none"]},
        {"ref": "/data/grp_obs/obs_redflag", "values": list(redflag)},
    ]
    if duration:
        answers += [{"ref": "/data/duration", "value": duration}, {"ref": "/data/impact", "value": impact}]
    if result:
        answers.append({"ref": "/data/id_result", "value": result})
    if reason:
        answers.append({"ref": "/data/override_reason", "value": reason})
    return answers


def _finish_identification(answers, urgent=False, informed=True):
    if urgent:
        answers += [
            {"ref": "/data/grp_urgent/reported_to", "values": ["supervisor", "police"]},
            {"ref": "/data/grp_urgent/report_time", "value": "2026-11-20T10:00:00.000+08:00"},
        ]
    if informed:
        answers.append({"ref": "/data/guardian_informed", "value": "yes"})
    answers += [
        {"ref": "/data/obs_summary", "value": "儿童近一个月情绪低落，不愿上学，与奶奶交流少。"},
        _sig("/data/worker_signature"),
    ]
    return answers


def test_identification_suggests_refer_and_updates_status():
    answers = _identification(["e_sad", "e_interest"], ["b_withdraw"], duration="gt1m", impact="some", result="refer")
    sub, root = _fill("identification", _finish_identification(answers), csv=_children_csv())
    assert _text(root, "score") == "3"
    assert _text(root, "suggested") == "refer"
    entity = _entity(root)
    assert entity.get("id") == CHILD_ID and entity.get("update") in ("1", "true")
    assert entity.get("baseVersion") == "1"
    assert _text(root, "id_result") == "refer"
    assert _text(root, "next_due") == "2026-12-05"
    assert _text(root, "meta/instanceName") == "识别-540102002001-2026-11-20-3f2a9c1e"


def test_identification_override_needs_reason():
    answers = _identification(["e_sad"], ["none"], duration="lt2w", impact="no_impact", result="refer")
    sub, root = _fill("identification", _finish_identification(answers), csv=_children_csv(), allow_pending=True)
    assert _text(root, "suggested") == "watch"
    assert sub.status == "pending"
    assert any("override_reason" in str(v) for v in sub.violations)


def test_identification_danger_sign_forces_urgent():
    answers = _identification(["none"], ["none"], redflag=["r_selfharm"], result="watch")
    sub, root = _fill("identification", _finish_identification(answers), csv=_children_csv(), allow_pending=True)
    assert _text(root, "suggested") == "urgent"
    assert any("id_result" in str(v) for v in sub.violations)


# ---------------------------------------------------------------------------------------
# Assessment
# ---------------------------------------------------------------------------------------

SEV = ["ph_sleep", "ph_appetite", "ph_somatic", "ph_illness", "ph_substance"]
PSY = ["ps_mood", "ps_anxiety", "ps_anger", "ps_selfworth", "ps_attention", "ps_trauma", "ps_withdraw", "ps_reality"]
SOC = ["se_care", "se_family", "se_loss", "se_school", "se_support", "se_economic"]


def _assessment(consent="yes", assent="yes", si="0", psy=1, impairment="0", final=None, reason=None):
    answers = [
        *_region(),
        {"ref": "/data/child", "value": CHILD_ID},
        {"ref": "/data/grp_assessor/assessor_name", "value": "王医生"},
        {"ref": "/data/grp_assessor/assessor_role", "value": "psychologist"},
        {"ref": "/data/grp_assessor/assessor_org", "value": "拉萨市某心理服务中心"},
        {"ref": "/data/grp_assessor/assessment_date", "value": "2026-11-25"},
        {"ref": "/data/grp_assessor/assessment_place", "value": "home"},
        {"ref": "/data/grp_consent/guardian_consent", "value": consent},
    ]
    if consent != "yes":
        return answers + [{"ref": "/data/grp_consent/no_consent_reason", "value": "监护人外出务工，无法联系"}]
    answers += [_sig("/data/grp_consent/consent_signature"), {"ref": "/data/grp_consent/child_assent", "value": assent}]
    answers += [{"ref": f"/data/grp_phys/{n}", "value": "0"} for n in SEV]
    answers += [{"ref": f"/data/grp_psy/{n}", "value": str(psy)} for n in PSY]
    answers += [
        {"ref": "/data/grp_psy/si_level", "value": si},
        {"ref": "/data/grp_psy/tools_used", "values": ["phq9"]},
        {"ref": "/data/grp_psy/phq_total", "value": "8"},
    ]
    answers += [{"ref": f"/data/grp_soc/{n}", "value": "1"} for n in SOC]
    answers += [
        {"ref": "/data/grp_soc/protective", "values": ["stable_adult"]},
        {"ref": "/data/grp_soc/impairment", "value": impairment},
    ]
    if final:
        answers.append({"ref": "/data/grp_result/final_risk", "value": final})
        if reason:
            answers.append({"ref": "/data/grp_result/risk_reason", "value": reason})
        answers += [
            {"ref": "/data/grp_result/assessment_summary", "value": "情绪低落，祖辈照料，学校支持较好。"},
            {"ref": "/data/grp_result/recommended", "values": ["counselling", "crisis"]},
            _sig("/data/grp_result/assessor_signature"),
        ]
    return answers


def test_assessment_red_on_self_harm():
    sub, root = _fill("assessment", _assessment(si="2", final="red"), csv=_children_csv(status="refer"))
    assert _text(root, "psych_score") == "8"
    assert _text(root, "total_score") == "14"
    assert _text(root, "calc_risk") == "red"
    assert _text(root, "grp_consent/consent_ok") == "yes"
    assert _entity(root).get("update") in ("1", "true")
    assert _text(root, "next_due") == "2026-12-02"


def test_assessment_yellow_by_total_score():
    sub, root = _fill("assessment", _assessment(final="yellow"), csv=_children_csv(status="refer"))
    assert _text(root, "calc_risk") == "yellow"


def test_assessment_without_consent_does_not_update():
    sub, root = _fill("assessment", _assessment(consent="no"), csv=_children_csv(status="refer"))
    assert _text(root, "grp_consent/consent_ok") == "no"
    assert _entity(root).get("update") in ("0", "false", "")


def test_assessment_14_plus_child_must_agree():
    answers = _assessment(assent="no")
    answers = answers[:answers.index({"ref": "/data/grp_consent/child_assent", "value": "no"}) + 1]
    answers.append({"ref": "/data/grp_consent/no_consent_reason", "value": "儿童本人不愿参加"})
    sub, root = _fill("assessment", answers, csv=_children_csv(status="refer"))  # the listed child is 14+
    assert _text(root, "grp_consent/consent_ok") == "no"
    assert _entity(root).get("update") in ("0", "false", "")


# ---------------------------------------------------------------------------------------
# Visit record and referral
# ---------------------------------------------------------------------------------------

def test_visit_record_repeat_per_interviewee():
    answers = [
        {"ref": "/data/visitor_role", "value": "child_director"},
        *_region(),
        {"ref": "/data/child", "value": CHILD_ID},
        {"ref": "/data/visit_date", "value": "2026-11-21"},
        {"ref": "/data/visit_purpose", "value": "routine"},
        {"ref": "/data/visit_mode", "value": "phone"},
        {"ref": "/data/child_seen", "value": "no"},
        {"ref": "/data/interviews", "repeat_count": 2},
        {"ref": "/data/interviews[1]/iv_role", "value": "family"},
        {"ref": "/data/interviews[1]/iv_relation", "value": "grandparent"},
        {"ref": "/data/interviews[1]/iv_method", "value": "phone"},
        {"ref": "/data/interviews[1]/iv_summary", "value": "奶奶说孩子最近吃饭睡觉正常。"},
        {"ref": "/data/interviews[1]/iv_concern", "value": "no"},
        {"ref": "/data/interviews[2]/iv_role", "value": "school"},
        {"ref": "/data/interviews[2]/iv_relation", "value": "teacher"},
        {"ref": "/data/interviews[2]/iv_method", "value": "phone"},
        {"ref": "/data/interviews[2]/iv_summary", "value": "班主任反映上课注意力不集中。"},
        {"ref": "/data/interviews[2]/iv_concern", "value": "yes"},
        {"ref": "/data/new_concern", "value": "yes"},
        {"ref": "/data/concern_detail", "value": "注意力下降，需要再次识别。"},
        {"ref": "/data/need_reidentify", "value": "yes"},
        _sig("/data/visitor_signature"),
    ]
    sub, root = _fill("visit_record", answers, csv=_children_csv())
    assert _text(root, "n_interviews") == "2"
    assert _text(root, "flag_reidentify") == "yes"
    assert _text(root, "last_visit") == "2026-11-21"
    assert _entity(root).get("id") == CHILD_ID


def _referral(record_type, extra):
    return [
        {"ref": "/data/worker_role", "value": "child_director"},
        *_region(),
        {"ref": "/data/child", "value": CHILD_ID},
        {"ref": "/data/record_date", "value": "2026-11-26"},
        {"ref": "/data/record_type", "value": record_type},
        *extra,
        _sig("/data/worker_signature"),
    ]


def test_referral_with_consent():
    extra = [
        {"ref": "/data/grp_ref/ref_consent", "value": "yes"},
        _sig("/data/grp_ref/ref_consent_signature"),
        {"ref": "/data/grp_ref/ref_target_type", "value": "mental_hospital"},
        {"ref": "/data/grp_ref/ref_target_org", "value": "西藏自治区第二人民医院"},
        {"ref": "/data/grp_ref/urgency", "value": "priority"},
        {"ref": "/data/grp_ref/ref_reason", "value": "评估为橙色，需要专业评估。"},
    ]
    sub, root = _fill("referral_followup", _referral("referral", extra), csv=_children_csv(status="refer", risk="orange"))
    assert _text(root, "new_ref_status") == "referred"
    assert _text(root, "new_status") == "refer"
    assert _text(root, "new_due") == "2026-12-03"


def test_closure_risk_resolved_needs_green():
    extra = [{"ref": "/data/grp_close/close_reason", "value": "risk_resolved"}]
    sub, root = _fill("referral_followup", _referral("closure", extra),
                      csv=_children_csv(status="refer", risk="yellow", ref="in_service"), allow_pending=True)
    assert any("close_reason" in str(v) for v in sub.violations)
    sub, root = _fill("referral_followup", _referral("closure", extra),
                      csv=_children_csv(status="refer", risk="green", ref="in_service"))
    assert _text(root, "new_status") == "closed"
    assert _text(root, "new_ref_status") == "closed"
    assert _text(root, "new_due") == ""
