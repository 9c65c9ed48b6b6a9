#!/usr/bin/env python3
"""Build the five shipped CareFile XLSForms (xlsforms/*.xlsx) from the tables below.

Run:  .venv/bin/python scripts/build_xlsforms.py [OUT_DIR]     (default: xlsforms/)

The .xlsx files are generated; edit THIS file and re-run.  tests/xlsforms checks that
the committed files match what this script produces (cell by cell), that every form
compiles with pyxform 4.5.0 + ODK Validate without warnings, and the rules below.

Forms (all update or create entities in the list ``children``):

=====================  ==================  ==========================================
file / form_id         Chinese title       entity action
=====================  ==================  ==========================================
child_registration     档案表（建档）      create (only with the consents, see below)
identification         识别表              update status, last_identified, id_score…
assessment             评估表              update risk_level, last_assessed, …
visit_record           走访访谈记录        update last_visit, flag_reidentify
referral_followup      转介跟踪记录        update referral_status, status, due date
=====================  ==================  ==========================================

Design decisions (from the project's domain research: the guideline's forms as draft designs):

* Entity label = masked: first character of the child's name + ``*`` + sex, birth
  month and village name, e.g. ``扎*（男，2014-05，八廓街道·示例村A）``.  The list
  syncs whole to every device of the project, so the full name, the ID number, the
  guardian's name and phone are NOT entity properties (the draft saved
  ``full_name``).  Initial + sex + birth month + village is enough for the child
  director to pick "their" child; the full record stays in the submission on the
  server.  Tibetan given names are often shared (扎西, 卓玛 …), hence sex and birth
  month in the label.
* Registration creates an entity only when ``file_ok = 'yes'``: guardian agrees AND
  gives the separate consent for sensitive data (PIPL Art. 29) AND, from age 14, the
  child agrees.  Order: consent → date of birth → child's own view (8+, required
  14+) → child and guardian details, which are only asked when a file will be
  opened (``file_ok``).  On refusal only the region and the reason are kept (report
  C.7 "known but no file"); no entity is created.
* Sensitive fields carry the survey column ``bind::carefile:sensitive`` = ``yes``
  (namespace declared in settings ``namespaces``: carefile="https://carefile.example/xforms").
  pyxform 4.5.0 copies it as an attribute onto the field's ``<bind>``:
  ``<bind nodeset="/data/..." carefile:sensitive="yes"/>`` and ODK Validate accepts
  it.  Marked: direct identifiers (names, ID number, phone, address, home location,
  photos, the guardian's signature) and free text about the child or family.
  Exports should mask/drop these by default.
* Instance names: form name + village code + date + first 8 hex digits of the child's
  entity UUID (a pseudonymous short id that is the same in all five forms), never the
  name (the drafts used the first character of the name).
* Photos and signatures: ``max-pixels=1024`` (photos) / ``max-pixels=800``
  (signatures, appearance ``signature``).  Photos: living conditions only, never
  the child's face (data minimisation: nothing identifying syncs to phones); the draft's "child photo for identity
  check" was replaced.
* Region cascade prefecture → county → township → village with division codes (4, 6,
  9, 12 digits): ``select_one_from_file regions.csv`` with ``choice_filter`` on the
  CSV's ``level`` and ``parent`` columns.  regions.csv (name, label, level, parent) is
  built by the server from its division table (the 2023 statistical codes of Tibet,
  5,580 villages, plus provinces added with ``carefile regions load``) and attached
  when ``carefile init`` publishes the forms.  Labels are the official Chinese names.
* Registration reads ``children.csv`` (``csv-external``) to warn about a possible
  duplicate file (same village, sex and birth date): "one child, one file".
* Dates in expressions: ``decimal-date-time(string(${birth_date}))``, never a bare question or
  ``.`` inside ``decimal-date-time()`` / ``date()``.  ODK Collect (JavaRosa) accepts both, but the
  ODK Web Forms 0.22 renderer of the web pages (fill, try a draft, edit) refuses a node there
  ("Expected a NUMBER or STRING evaluation type for date-time conversion") and the form does not
  load; ``string()`` makes it a string, which both engines convert.  ``format-date()`` and
  comparisons take nodes as they are.  tests/e2e/test_shipped_forms_browser.py fills every form
  in the renderer.
* Time limits (first identification 30 days, follow-up by level, …) are design values
  design values of the domain research (to be confirmed against the guideline); they are listed in the ``about`` sheet of each workbook.
"""

from __future__ import annotations

import sys
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "xlsforms"

VERSION = "2026120702"
ZH = "中文 (zh)"
EN = "English (en)"
NAMESPACES = 'carefile="https://carefile.example/xforms"'
SENSITIVE_COLUMN = "bind::carefile:sensitive"

SURVEY_COLUMNS = [
    "type",
    "name",
    f"label::{ZH}",
    f"label::{EN}",
    f"hint::{ZH}",
    f"hint::{EN}",
    "required",
    "relevant",
    "constraint",
    f"constraint_message::{ZH}",
    f"constraint_message::{EN}",
    "calculation",
    "choice_filter",
    "appearance",
    "parameters",
    "save_to",
    SENSITIVE_COLUMN,
]
CHOICE_COLUMNS = ["list_name", "name", f"label::{ZH}", f"label::{EN}", "cat"]
SETTINGS_COLUMNS = ["form_title", "form_id", "version", "default_language", "instance_name", "namespaces"]

PHOTO = "max-pixels=1024"
SIGNATURE = "max-pixels=800"


def q(type_, name, zh="", en="", *, hint=None, req=False, rel="", con="", msg=None, calc="",
      filt="", app="", params="", save="", sens=False):
    """One survey row.  hint/msg are (zh, en) tuples."""
    hint = hint or ("", "")
    msg = msg or ("", "")
    return {
        "type": type_,
        "name": name,
        f"label::{ZH}": zh,
        f"label::{EN}": en,
        f"hint::{ZH}": hint[0],
        f"hint::{EN}": hint[1],
        "required": "yes" if req else "",
        "relevant": rel,
        "constraint": con,
        f"constraint_message::{ZH}": msg[0],
        f"constraint_message::{EN}": msg[1],
        "calculation": calc,
        "choice_filter": filt,
        "appearance": app,
        "parameters": params,
        "save_to": save,
        SENSITIVE_COLUMN: "yes" if sens else "",
    }


def calc(name, expr, save=""):
    return q("calculate", name, calc=expr, save=save)


def end(kind, name):
    return q(f"end_{kind}", name)


def note(name, zh, en, rel=""):
    return q("note", name, zh, en, rel=rel)


def c(list_name, name, label_zh, label_en, **extra):
    row = {"list_name": list_name, "name": name, f"label::{ZH}": label_zh, f"label::{EN}": label_en}
    row.update(extra)
    return row


# --------------------------------------------------------------------------------------
# Shared choices (shared by every form)
# --------------------------------------------------------------------------------------

# The places come from the attachment regions.csv (name,label,level,parent), which the server
# builds from its division table (app/data/regions-54.csv: the 2023 statistical division codes of
# Tibet, 5,580 villages) and attaches when `carefile init` publishes the forms.
REGIONS_CSV = "regions.csv"


def shared_choices():
    return [
        c("yesno", "yes", "是", "Yes"),
        c("yesno", "no", "否", "No"),
        c("consent3", "yes", "同意", "Agrees"),
        c("consent3", "no", "不同意", "Refuses"),
        c("consent3", "unreachable", "暂无法联系到监护人", "Guardian not reachable"),
        c("role", "child_director", "村（居）儿童主任", "Village child director"),
        c("role", "supervisor", "乡镇（街道）儿童督导员", "Township child supervisor"),
        c("role", "social_worker", "社会工作者", "Social worker"),
        c("role", "psychologist", "心理咨询师/心理治疗师", "Counsellor / psychotherapist"),
        c("role", "psychiatrist", "精神科医师", "Psychiatrist"),
        c("role", "teacher", "学校教师/心理健康教师", "Teacher / school counsellor"),
        c("role", "civil_affairs", "县级民政工作人员", "County civil-affairs staff"),
        c("role", "other", "其他", "Other"),
    ]


# --------------------------------------------------------------------------------------
# Shared survey blocks
# --------------------------------------------------------------------------------------

META = [q("start", "start"), q("end", "end"), q("today", "today"), q("username", "username")]

NONE_EXCLUSIVE = "not(selected(., 'none') and count-selected(.) > 1)"
NONE_MSG = ("“以上都没有”不能与其他选项同时勾选", "'None of these' cannot be combined with other answers")
NOT_FUTURE = ("日期不能晚于今天", "The date cannot be in the future")


def region(save: bool):
    s = (lambda p: p) if save else (lambda p: "")
    pick = f"select_one_from_file {REGIONS_CSV}"
    return [
        q("begin_group", "grp_region", "儿童所在地", "Child's location", app="field-list"),
        q(pick, "prefecture", "地（市）", "Prefecture-level division", req=True,
          filt="level='prefecture'", save=s("prefecture")),
        q(pick, "county", "县（区、市）", "County / district", req=True,
          filt="level='county' and parent=${prefecture}", save=s("county")),
        q(pick, "township", "乡（镇、街道）", "Township / subdistrict", req=True,
          filt="level='township' and parent=${county}", app="autocomplete", save=s("township")),
        q(pick, "village", "村（居）", "Village / community", req=True,
          filt="level='village' and parent=${township}", app="autocomplete", save=s("village")),
        end("group", "grp_region"),
    ]


def item(prop):
    return f"instance('children')/root/item[name=${{child}}]/{prop}"


# The entity list stores codes (green, refer, in_service); notes that show them to the village director
# show words instead: one calculation per language picks the word for the code.
WORDS = {
    "status": {"registered": ("已建档", "registered"), "healthy": ("健康", "healthy"),
               "watch": ("需关注", "watch"), "refer": ("需转介评估", "refer for assessment"),
               "urgent": ("紧急", "urgent"), "closed": ("已结案", "closed")},
    "risk": {"unassessed": ("未评估", "not assessed"), "green": ("绿色（低风险）", "green (low)"),
             "yellow": ("黄色（一般风险）", "yellow (some risk)"), "orange": ("橙色（较高风险）", "orange (high)"),
             "red": ("红色（高风险）", "red (very high)")},
    "ref_status": {"none": ("未转介", "not referred"), "referred": ("已转介", "referred"),
                   "in_service": ("接受服务中", "in service"), "closed": ("服务结束", "service completed")},
}


def words(name, code_field, table):
    """Two calculations, ${name_zh} and ${name_en}: the word for the code in ${code_field}."""
    out = []
    for lang, idx in (("zh", 0), ("en", 1)):
        expr = f"${{{code_field}}}"  # an unknown code shows as it is
        for code, pair in reversed(list(WORDS[table].items())):
            expr = f"if(${{{code_field}}} = '{code}', '{pair[idx]}', {expr})"
        out.append(calc(f"{name}_{lang}", expr))
    return out


def child_picker(extra_filter: str, info_zh: str, info_en: str):
    """Select the child from the entity list and read its properties."""
    filt = "village=${village} and status != 'closed'"
    if extra_filter:
        filt += f" and ({extra_filter})"
    return [
        q("select_one_from_file children.csv", "child", "选择儿童", "Select the child",
          hint=("列表来自“children”实体列表（档案表建档后生成），仅显示所选村（居）的在档儿童；显示为姓名首字加*",
                "From the 'children' entity list (created by the registration form); only children on file "
                "in the selected village; names are masked"),
          req=True, filt=filt, app="autocomplete"),
        calc("child_label", item("label")),
        calc("child_birth", item("birth_date")),
        calc("prev_status", item("status")),
        calc("prev_risk", item("risk_level")),
        calc("prev_ref_status", item("referral_status")),
        calc("prev_due", item("next_followup_due")),
        *words("prev_status_w", "prev_status", "status"),
        *words("prev_risk_w", "prev_risk", "risk"),
        *words("prev_ref_w", "prev_ref_status", "ref_status"),
        calc("child_short", "substr(${child}, 0, 8)"),
        calc("age_years",
             "if(${child_birth} = '', '', int((decimal-date-time(today()) - decimal-date-time(string(${child_birth}))) div 365.25))"),
        note("child_info", info_zh, info_en),
    ]


def short_instance_name(prefix: str, date_ref: str) -> str:
    return f"concat('{prefix}-', ${{village}}, '-', {date_ref}, '-', ${{child_short}})"


SCREENING_NOTE_ZH = ("本表是心理健康状况筛查，不是诊断。精神障碍的诊断只能由精神科执业医师作出（《精神卫生法》第二十九条）；"
                     "结果仅用于决定关爱、转介和跟踪。")
SCREENING_NOTE_EN = ("This is mental-health screening, not a diagnosis. Only a licensed psychiatrist can diagnose a "
                     "mental disorder (Mental Health Law Art. 29); the result only decides care, referral and follow-up.")

CONFIDENTIAL_ZH = "所采集信息属未成年人敏感个人信息，仅用于儿童关爱服务，严禁泄露、转发或截屏外传。"
CONFIDENTIAL_EN = ("The data are sensitive personal information of a minor: use them only for child-care services; "
                   "never disclose, forward or screenshot them.")


def about(rows):
    """Rows of the 'about' sheet (ignored by pyxform): design notes for reviewers."""
    common = [
        ("generated", "由 scripts/build_xlsforms.py 生成，请勿手工修改 / Generated by scripts/build_xlsforms.py; do not edit by hand."),
        ("sensitive", "bind::carefile:sensitive = yes 标记敏感字段（身份信息、照片、签名、自由文本），导出时默认脱敏 / "
                      "marks identifying fields and free text; exports mask them by default."),
        ("screening", "筛查，不是诊断 / Screening, not diagnosis."),
        ("regions", "地、县、乡、村四级联动选自附件 regions.csv（2023年统计用区划代码，服务器发布表单时自动附上）/ "
                    "prefecture → county → township → village from the attachment regions.csv (2023 division codes; "
                    "the server attaches it when it publishes the form)."),
    ]
    return [("topic", "note")] + common + rows


def registration_choices():
    """The registration's own choice lists (the household registration uses the same)."""
    return [
        c("gender", "male", "男", "Male"),
        c("gender", "female", "女", "Female"),
        c("ethnicity", "tibetan", "藏族", "Tibetan"),
        c("ethnicity", "han", "汉族", "Han"),
        c("ethnicity", "monba", "门巴族", "Monpa"),
        c("ethnicity", "lhoba", "珞巴族", "Lhoba"),
        c("ethnicity", "hui", "回族", "Hui"),
        c("ethnicity", "other", "其他", "Other"),
        c("category", "orphan", "孤儿", "Orphan"),
        c("category", "de_facto_unsupported", "事实无人抚养儿童", "De-facto unsupported child"),
        c("category", "serious_illness", "重病儿童", "Seriously ill"),
        c("category", "disabled", "残疾儿童", "Child with disability"),
        c("category", "low_income", "低保/特困家庭儿童", "Child in minimum-income / extreme-poverty household"),
        c("category", "guardianship", "监护缺失或监护不当儿童", "Lacking or inadequate guardianship"),
        c("category", "left_behind", "农村留守儿童", "Rural left-behind child"),
        c("category", "other", "其他困境情形", "Other difficulty"),
        c("disability_level", "1", "一级", "Grade 1"),
        c("disability_level", "2", "二级", "Grade 2"),
        c("disability_level", "3", "三级", "Grade 3"),
        c("disability_level", "4", "四级", "Grade 4"),
        c("school_status", "preschool_home", "学龄前（未入园）", "Pre-school, at home"),
        c("school_status", "kindergarten", "幼儿园", "Kindergarten"),
        c("school_status", "primary", "小学", "Primary"),
        c("school_status", "junior", "初中", "Junior secondary"),
        c("school_status", "senior", "高中/中职", "Senior / vocational secondary"),
        c("school_status", "dropout", "辍学", "Dropped out"),
        c("school_status", "other", "其他未在校（如因病休学）", "Other, not in school"),
        c("living_with", "both_parents", "父母双方", "Both parents"),
        c("living_with", "one_parent", "父亲或母亲一方", "One parent"),
        c("living_with", "grandparents", "祖父母/外祖父母", "Grandparents"),
        c("living_with", "relatives", "其他亲属", "Other relatives"),
        c("living_with", "boarding", "寄宿学校（节假日回家）", "Boarding school"),
        c("living_with", "institution", "儿童福利机构/救助保护机构", "Institution"),
        c("living_with", "alone", "独自生活", "Alone"),
        c("living_with", "other", "其他", "Other"),
        c("guardian_relation", "father", "父亲", "Father"),
        c("guardian_relation", "mother", "母亲", "Mother"),
        c("guardian_relation", "grandparent", "祖父母/外祖父母", "Grandparent"),
        c("guardian_relation", "sibling", "成年兄姐", "Adult sibling"),
        c("guardian_relation", "relative", "其他亲属", "Other relative"),
        c("guardian_relation", "institution", "民政部门/福利机构（机构监护）", "Civil affairs / institution"),
        c("guardian_relation", "other", "其他", "Other"),
        c("capacity", "adequate", "有监护能力", "Adequate"),
        c("capacity", "limited", "监护能力较弱", "Limited"),
        c("capacity", "none", "无监护能力或监护缺失", "None / absent"),
    ]


# --------------------------------------------------------------------------------------
# B1 档案表 / child registration (creates the entity)
# --------------------------------------------------------------------------------------

def form_filler():
    """Who fills the registration in (the village director, a social worker …) and how to reach them."""
    return [
        q("begin_group", "grp_worker", "填表人", "Form filler", app="field-list"),
        q("select_one role", "worker_role", "填表人身份", "Filler's role", req=True),
        q("text", "worker_name", "填表人姓名", "Filler's name", req=True),
        q("text", "worker_phone", "填表人手机号", "Filler's mobile", req=True,
          con="regex(., '^1[3-9][0-9]{9}$')", msg=("请输入11位手机号", "Enter an 11-digit mobile number"),
          app="numbers"),
        end("group", "grp_worker"),
    ]


def child_label_calcs():
    """The masked label phones show (the name's first character, sex, birth month, village)."""
    return [
        calc("gender_zh", "if(${gender} = 'male', '男', if(${gender} = 'female', '女', ''))"),
        calc("child_label",
             "concat(substr(normalize-space(${child_name}), 0, 1), '*（', ${gender_zh}, '，', "
             "substr(${birth_date}, 0, 7), '，', ${village_zh}, '）')"),
    ]


def first_properties():
    """A new child's first case-work properties (status, risk, referral, dates)."""
    return [
        calc("status_init", "'registered'", save="status"),
        calc("risk_init", "'unassessed'", save="risk_level"),
        calc("referral_init", "'none'", save="referral_status"),
        calc("registered_on", "format-date(today(), '%Y-%m-%d')", save="registered_on"),
        calc("first_due", "format-date(date(decimal-date-time(today()) + 30), '%Y-%m-%d')", save="next_followup_due"),
        calc("reident_init", "'no'", save="flag_reidentify"),
    ]


def duplicate_check():
    """Children of the same village, sex and birth date already on file: the filler confirms it is not one of them."""
    return [
        calc("dup_n",
             "if(${file_ok} = 'yes', count(instance('children')/root/item[village = ${village} and "
             "gender = ${gender} and birth_date = ${birth_date}]), 0)"),
        q("select_one yesno", "dup_checked", "本村已有 ${dup_n} 名同性别、同出生日期的儿童在档。已核对，确认不是同一儿童？",
          "${dup_n} child(ren) of the same sex and date of birth are already on file in this village. "
          "Checked: this is not the same child?",
          hint=("一人一档：同一儿童请勿重复建档，应使用走访或识别表", "One child, one file: for a child already on "
                "file use the visit or identification form"),
          req=True, rel="${dup_n} > 0", con=". = 'yes'",
          msg=("同一儿童不能重复建档", "Do not open a second file for the same child")),
    ]


def child_details(file_ok):
    """The child's own questions, the same in the one-child and the household registration."""
    return [
        q("begin_group", "grp_child", "儿童基本信息", "Child's basic information", rel=file_ok),
        q("text", "child_name", "儿童姓名", "Child's full name",
          hint=("全名只保存在本次提交中，不进入同步到手机的儿童列表", "The full name stays in this submission only; "
                "it is not put in the child list that syncs to phones"),
          req=True, con="string-length(normalize-space(.)) >= 2",
          msg=("请填写完整姓名", "Enter the full name"), sens=True),
        q("select_one gender", "gender", "性别", "Sex", req=True, save="gender"),
        q("select_one ethnicity", "ethnicity", "民族", "Ethnicity", req=True),
        q("text", "ethnicity_other", "其他民族（请注明）", "Other ethnicity (specify)", req=True,
          rel="${ethnicity} = 'other'"),
        q("text", "id_number", "公民身份号码（无户籍可空）", "National ID number (may be blank)",
          hint=("仅用于与全国儿童福利信息系统核对身份；导出时脱敏", "Only to match the national child-welfare "
                "information system; masked in exports"),
          con="regex(., '^[0-9]{17}[0-9Xx]$') and substr(., 6, 14) = format-date(${birth_date}, '%Y%m%d')",
          msg=("须为18位身份号码，且其中的出生日期与上面一致", "Must be 18 characters and contain the date of birth above"),
          sens=True),
        q("select_multiple category", "child_category", "儿童类别（可多选）", "Child category (select all that apply)",
          req=True, save="category"),
        q("text", "category_other", "其他困境情形（请注明）", "Other difficulty (specify)", req=True,
          rel="selected(${child_category}, 'other')", sens=True),
        q("select_one disability_level", "disability_level", "残疾等级", "Disability grade", req=True,
          rel="selected(${child_category}, 'disabled')"),
        q("select_one school_status", "school_status", "就学状况", "Schooling status", req=True),
        q("text", "school_name", "学校名称及年级", "School and grade", req=True,
          rel="${school_status} = 'primary' or ${school_status} = 'junior' or ${school_status} = 'senior'",
          sens=True),
        q("select_one living_with", "living_with", "目前与谁共同生活", "Currently lives with", req=True),
    ]


def child_registration():
    consent_ok = "${consent_guardian} = 'yes' and ${consent_sensitive} = 'yes'"
    file_ok = "${file_ok} = 'yes'"
    survey = META + [
        note("intro",
             "本表用于建立困境儿童心理健康“一人一档”档案。" + CONFIDENTIAL_ZH,
             "Opens the child's 'one child, one file' record. " + CONFIDENTIAL_EN),
        q("csv-external", "children"),
        *form_filler(),
    ] + region(save=True) + [
        calc("village_zh", "instance('regions')/root/item[name=${village}]/label"),
        q("begin_group", "grp_consent", "告知与同意", "Information and consent"),
        note("consent_text",
             "请先向监护人说明：建档目的、记录哪些内容、信息仅用于关爱服务、谁可以查阅、如何保密，以及可随时要求查阅、更正或撤回同意。"
             "儿童个人信息及心理健康信息属敏感个人信息，须取得监护人单独同意。",
             "First explain to the guardian: why the file is opened, what is recorded, that it is used only for "
             "care services, who can see it, how it is kept confidential, and the right to view, correct or "
             "withdraw consent. A child's data and mental-health data are sensitive and need separate consent."),
        q("select_one consent3", "consent_guardian", "监护人是否同意建档", "Does the guardian agree to the file being opened?",
          req=True),
        q("select_one yesno", "consent_sensitive", "监护人是否单独同意处理儿童敏感个人信息（含心理健康信息）",
          "Does the guardian separately consent to processing the child's sensitive data (incl. mental health)?",
          req=True, rel="${consent_guardian} = 'yes'"),
        q("image", "consent_signature", "监护人签名", "Guardian's signature",
          hint=("不会写字的可按手印后拍照", "If the guardian cannot write, photograph a fingerprint"),
          req=True, rel=consent_ok, app="signature", params=SIGNATURE, sens=True),
        q("text", "refusal_reason", "未同意或未联系上的原因", "Reason for refusal / no contact",
          hint=("未同意的不建立电子档案，不再询问儿童信息；由儿童主任继续日常关爱并报告儿童督导员。儿童面临危险或疑似受侵害的，依法立即报告，不以监护人同意为前提。",
                "Without consent no electronic file is opened and no child data are asked; the child director "
                "keeps caring and informs the supervisor. Danger or suspected abuse must be reported at once, "
                "consent is not needed."),
          req=True, rel=f"${{consent_guardian}} != '' and not({consent_ok})", sens=True),
        end("group", "grp_consent"),
        q("begin_group", "grp_age", "儿童年龄", "Child's age", rel=consent_ok),
        q("date", "birth_date", "出生日期", "Date of birth", req=True,
          con="(. <= today()) and ((decimal-date-time(today()) - decimal-date-time(string(.))) < 18 * 365.25)",
          msg=("出生日期不能晚于今天，且儿童须未满18周岁", "Cannot be in the future; the child must be under 18"),
          save="birth_date"),
        calc("age_years", "int((decimal-date-time(today()) - decimal-date-time(string(${birth_date}))) div 365.25)"),
        note("age_note", "年龄：${age_years} 周岁", "Age: ${age_years} years", rel="${birth_date} != ''"),
        end("group", "grp_age"),
        q("begin_group", "grp_assent", "儿童本人意见", "Child's own view",
          rel=f"{consent_ok} and ${{age_years}} >= 8"),
        note("assent_text",
             "请用儿童能听懂的话说明建档的目的。8周岁以上征求儿童本人意见；14周岁以上须本人同意才能建档（设计规则）。",
             "Explain the file in words the child understands. From age 8 the child is asked; from age 14 the "
             "child's own consent is required (design rule)."),
        q("select_one yesno", "child_assent", "儿童本人是否知情同意", "Is the child informed and agreeing?", req=True),
        note("assent_refused", "儿童已满14周岁且不同意：不建立电子档案。", "Child aged 14+ does not agree: no file is opened.",
             rel="${age_years} >= 14 and ${child_assent} = 'no'"),
        end("group", "grp_assent"),
        calc("file_ok", f"if({consent_ok} and (${{age_years}} < 14 or ${{child_assent}} = 'yes'), 'yes', 'no')"),
        *child_details(file_ok),
        q("text", "address_detail", "详细住址（自然村/组/门牌）", "Address detail (hamlet/group/house no.)", sens=True),
        end("group", "grp_child"),
        q("begin_group", "grp_guardian", "监护人信息", "Guardian", rel=file_ok, app="field-list"),
        q("text", "guardian_name", "监护人（或实际照料人）姓名", "Guardian / carer name", req=True, sens=True),
        q("select_one guardian_relation", "guardian_relation", "与儿童关系", "Relationship to child", req=True),
        q("text", "guardian_phone", "监护人手机号", "Guardian's mobile",
          hint=("不进入同步到手机的儿童列表", "Not put in the child list that syncs to phones"),
          con="regex(., '^1[3-9][0-9]{9}$')", msg=("请输入11位手机号", "Enter an 11-digit mobile number"),
          app="numbers", sens=True),
        q("select_one capacity", "guardian_capacity", "监护能力", "Guardian's capacity to care", req=True),
        end("group", "grp_guardian"),
        *duplicate_check(),
        q("select_one yesno", "photo_consent", "监护人是否同意拍摄居住环境照片", "Does the guardian agree to photos of the home?",
          req=True, rel="${file_ok} = 'yes'"),
        q("image", "home_photo", "居住环境照片（不拍儿童正脸）", "Photo of living conditions (not the child's face)",
          hint=("仅拍住房、生活条件，不得外传", "Only the house and living conditions; never forward it"),
          rel="${photo_consent} = 'yes'", params=PHOTO, sens=True),
        q("geopoint", "home_location", "家庭位置（到户时采集）", "Home location (capture at the home)",
          rel="${file_ok} = 'yes'", sens=True),
        note("result_yes", "将建立电子档案，儿童将出现在本村（居）儿童列表中（显示为姓名首字加*）。",
             "An electronic file will be opened; the child appears in the village list with a masked name.",
             rel="${file_ok} = 'yes'"),
        note("result_no", "不建立电子档案。本次仅记录未同意情况；请继续日常关爱并报告儿童督导员。",
             "No electronic file is opened; only the refusal is recorded. Keep caring and inform the supervisor.",
             rel="${file_ok} != 'yes'"),
        # Masked entity label pieces and entity properties (only written when the entity is created).
        *child_label_calcs(),
        *first_properties(),
        calc("child_short", "substr(/data/meta/entity/@id, 0, 8)"),
    ]
    choices = registration_choices()
    return {
        "file": "child_registration.xlsx",
        "survey": survey,
        "choices": shared_choices() + choices,
        "settings": {
            "form_title": "困境儿童心理健康档案表（建档） Child registration",
            "form_id": "child_registration",
            "instance_name": "concat('建档-', ${village}, '-', ${today}, '-', ${child_short})",
        },
        "entities": [{
            "list_name": "children",
            "label": "${child_label}",
            "create_if": "${file_ok} = 'yes'",
        }],
        "about": about([
            ("entity", "创建 children 实体；条件 file_ok：监护人同意 + 敏感信息单独同意 + 14周岁以上本人同意 / "
                       "creates a children entity only when file_ok = yes."),
            ("label", "实体标签：姓名首字*（性别，出生年月，村名），不含全名 / masked label, no full name."),
            ("properties", "prefecture, county, township, village, gender, birth_date, category, registered_on, "
                           "status=registered, risk_level=unassessed, referral_status=none, "
                           "next_followup_due=+30天, flag_reidentify=no"),
            ("not_in_list", "姓名、身份证号、监护人姓名和电话不写入实体 / name, ID, guardian name/phone are not entity properties."),
            ("design", "建档后30日内完成首次识别（设计值）/ first identification within 30 days (design value)."),
        ]),
    }


# --------------------------------------------------------------------------------------
# B1b 同户建档 / household registration: several children of one household, one entity each
# --------------------------------------------------------------------------------------

def household_registration():
    """The registration for a household with several children in difficulty (siblings): the filler,
    the place, the guardian's consent and the guardian once, then one repeat instance per child with the
    child's age, own view, details and duplicate check. Each instance whose child may have a file
    (``file_ok``) creates its own entity in ``children`` (entities spec 2025.1: the entity is declared in
    the repeat; ODK Collect 2026.1 and Central 2025.4 create one entity per instance). The entity's
    properties are the same as child_registration's; the place is copied into each child."""
    consent_ok = "${consent_guardian} = 'yes' and ${consent_sensitive} = 'yes'"
    file_ok = "${file_ok} = 'yes'"
    survey = META + [
        note("intro",
             "本表用于为同一户的多名困境儿童（兄弟姐妹）一次建立“一人一档”档案：每名儿童一条，各建一份档案。"
             + CONFIDENTIAL_ZH,
             "Opens a 'one child, one file' record for each child in difficulty of one household (siblings): "
             "one entry per child, one file each. " + CONFIDENTIAL_EN),
        q("csv-external", "children"),
        *form_filler(),
    ] + region(save=False) + [
        calc("village_zh", "instance('regions')/root/item[name=${village}]/label"),
        q("begin_group", "grp_consent", "告知与同意", "Information and consent"),
        note("consent_text",
             "请先向监护人说明：为本户儿童建档的目的、记录哪些内容、信息仅用于关爱服务、谁可以查阅、如何保密，以及可随时要求查阅、"
             "更正或撤回同意。儿童个人信息及心理健康信息属敏感个人信息，须取得监护人单独同意。",
             "First explain to the guardian: why files are opened for the household's children, what is recorded, "
             "that it is used only for care services, who can see it, how it is kept confidential, and the right "
             "to view, correct or withdraw consent. Children's data and mental-health data are sensitive and need "
             "separate consent."),
        q("select_one consent3", "consent_guardian", "监护人是否同意为本户儿童建档",
          "Does the guardian agree to files being opened for the household's children?", req=True),
        q("select_one yesno", "consent_sensitive", "监护人是否单独同意处理儿童敏感个人信息（含心理健康信息）",
          "Does the guardian separately consent to processing the children's sensitive data (incl. mental health)?",
          req=True, rel="${consent_guardian} = 'yes'"),
        q("image", "consent_signature", "监护人签名", "Guardian's signature",
          hint=("不会写字的可按手印后拍照", "If the guardian cannot write, photograph a fingerprint"),
          req=True, rel=consent_ok, app="signature", params=SIGNATURE, sens=True),
        q("text", "refusal_reason", "未同意或未联系上的原因", "Reason for refusal / no contact",
          hint=("未同意的不建立电子档案，不再询问儿童信息；由儿童主任继续日常关爱并报告儿童督导员。",
                "Without consent no electronic file is opened and no child data are asked; the child director "
                "keeps caring and informs the supervisor."),
          req=True, rel=f"${{consent_guardian}} != '' and not({consent_ok})", sens=True),
        end("group", "grp_consent"),
        q("begin_group", "grp_guardian", "监护人信息", "Guardian", rel=consent_ok, app="field-list"),
        q("text", "guardian_name", "监护人（或实际照料人）姓名", "Guardian / carer name", req=True, sens=True),
        q("text", "guardian_phone", "监护人手机号", "Guardian's mobile",
          hint=("不进入同步到手机的儿童列表", "Not put in the child list that syncs to phones"),
          con="regex(., '^1[3-9][0-9]{9}$')", msg=("请输入11位手机号", "Enter an 11-digit mobile number"),
          app="numbers", sens=True),
        q("select_one capacity", "guardian_capacity", "监护能力", "Guardian's capacity to care", req=True),
        q("text", "address_detail", "详细住址（自然村/组/门牌）", "Address detail (hamlet/group/house no.)", sens=True),
        end("group", "grp_guardian"),
        # The repeat itself is not gated by the consent: its first instance exists from the start, and its
        # entity id is set when the form loads (odk-instance-first-load), which engines skip in a
        # non-relevant node. Its questions are gated instead; without consent no child has a file.
        q("begin_repeat", "child", "本户儿童（每名儿童一条）", "Children of the household (one entry per child)"),
        q("date", "birth_date", "出生日期", "Date of birth", req=True, rel=consent_ok,
          con="(. <= today()) and ((decimal-date-time(today()) - decimal-date-time(string(.))) < 18 * 365.25)",
          msg=("出生日期不能晚于今天，且儿童须未满18周岁", "Cannot be in the future; the child must be under 18"),
          save="birth_date"),
        calc("age_years",
             "if(${birth_date} = '', '', int((decimal-date-time(today()) - decimal-date-time(string(${birth_date}))) "
             "div 365.25))"),
        q("select_one yesno", "child_assent", "儿童本人是否知情同意（8周岁以上询问，14周岁以上须同意）",
          "Is the child informed and agreeing? (asked from 8; required from 14)", req=True,
          rel=f"{consent_ok} and ${{age_years}} >= 8"),
        calc("file_ok",
             f"if({consent_ok} and ${{birth_date}} != '' and (${{age_years}} < 14 or ${{child_assent}} = 'yes'), "
             "'yes', 'no')"),
        note("assent_refused", "该儿童已满14周岁且不同意：不为其建立电子档案。",
             "This child is 14+ and does not agree: no file is opened for this child.",
             rel="${age_years} >= 14 and ${child_assent} = 'no'"),
        *child_details(file_ok),
        q("select_one guardian_relation", "guardian_relation", "监护人与该儿童的关系", "Guardian's relationship to this child",
          req=True),
        end("group", "grp_child"),
        *duplicate_check(),
        # Masked label pieces and the entity's properties (only written when this child's entity is created).
        *child_label_calcs(),
        calc("child_prefecture", "${prefecture}", save="prefecture"),
        calc("child_county", "${county}", save="county"),
        calc("child_township", "${township}", save="township"),
        calc("child_village", "${village}", save="village"),
        *first_properties(),
        end("repeat", "child"),
        calc("children_n", "count(${child})"),
        q("select_one yesno", "photo_consent", "监护人是否同意拍摄居住环境照片", "Does the guardian agree to photos of the home?",
          req=True, rel=consent_ok),
        q("image", "home_photo", "居住环境照片（不拍儿童正脸）", "Photo of living conditions (not the children's faces)",
          hint=("仅拍住房、生活条件，不得外传", "Only the house and living conditions; never forward it"),
          rel="${photo_consent} = 'yes'", params=PHOTO, sens=True),
        q("geopoint", "home_location", "家庭位置（到户时采集）", "Home location (capture at the home)",
          rel=consent_ok, sens=True),
        note("result_yes", "将为本户 ${children_n} 名儿童中符合条件的每一名建立电子档案，各自出现在本村（居）儿童列表中（显示为姓名首字加*）。",
             "A file is opened for each of the ${children_n} children who may have one; each appears in the village "
             "list with a masked name.", rel=consent_ok),
        note("result_no", "不建立电子档案。本次仅记录未同意情况；请继续日常关爱并报告儿童督导员。",
             "No electronic file is opened; only the refusal is recorded. Keep caring and inform the supervisor.",
             rel=f"not({consent_ok})"),
    ]
    return {
        "file": "household_registration.xlsx",
        "survey": survey,
        "choices": shared_choices() + registration_choices(),
        "settings": {
            "form_title": "困境儿童心理健康档案表（同户多名儿童建档） Household registration",
            "form_id": "household_registration",
            "instance_name": "concat('同户建档-', ${village}, '-', ${today}, '-', ${children_n})",
        },
        "entities": [{
            "list_name": "children",
            "label": "${child_label}",
            "create_if": "${file_ok} = 'yes'",
        }],
        "about": about([
            ("entity", "在重复组 child 中声明实体（实体规范 2025.1）：每名儿童一条，符合 file_ok 的各创建一个 children 实体 / "
                       "the entity is declared in the repeat 'child' (entities spec 2025.1): one children entity per "
                       "child whose file_ok = yes."),
            ("consent", "监护人同意一次，对本户所有儿童有效；8周岁以上询问儿童本人，14周岁以上须本人同意 / "
                        "the guardian consents once for the household; each child's own view as in child_registration."),
            ("label", "实体标签：姓名首字*（性别，出生年月，村名），不含全名 / masked label, no full name."),
            ("properties", "与 child_registration 相同（地区从本户位置复制到每名儿童）/ the same as child_registration "
                           "(the household's place is copied into each child)."),
        ]),
    }


# --------------------------------------------------------------------------------------
# B2 识别表 / identification (updates status)
# --------------------------------------------------------------------------------------

def count_items(field):
    return f"(count-selected(${{{field}}}) - if(selected(${{{field}}}, 'none'), 1, 0))"


def identification():
    obs_fields = ["obs_emotion", "obs_behaviour", "obs_physical", "obs_school", "obs_family"]
    survey = META + [
        note("intro",
             "识别表由村（居）儿童主任通过走访、观察、询问儿童、监护人和教师填写，乡镇儿童督导员审核。" + CONFIDENTIAL_ZH,
             "Filled by the village child director after visiting, observing and asking the child, guardian and "
             "teacher; reviewed by the township supervisor. " + CONFIDENTIAL_EN),
        note("not_diagnosis", SCREENING_NOTE_ZH, SCREENING_NOTE_EN),
        q("select_one role", "worker_role", "填表人身份", "Filler's role", req=True),
    ] + region(save=False) + child_picker(
        "",
        "儿童：${child_label}，${age_years} 周岁；上次识别结果：${prev_status_w_zh}；应识别/回访日期：${prev_due}",
        "Child: ${child_label}, ${age_years} y; last result: ${prev_status_w_en}; due: ${prev_due}",
    ) + [
        q("date", "visit_date", "识别日期", "Date of identification", req=True,
          con=". <= today() and decimal-date-time(string(.)) >= decimal-date-time(string(${child_birth}))",
          msg=("日期不能晚于今天或早于出生日期", "Cannot be in the future or before the date of birth")),
        q("select_multiple id_method", "id_methods", "识别方式（可多选）", "Methods used", req=True),
        q("begin_group", "grp_obs", "观察与询问：过去一个月内是否出现以下情况", "Observation: in the past month, has the child shown…",
          app="field-list"),
        q("select_multiple obs_emotion", "obs_emotion", "情绪方面", "Emotions", req=True, con=NONE_EXCLUSIVE, msg=NONE_MSG),
        q("select_multiple obs_behaviour", "obs_behaviour", "行为方面", "Behaviour", req=True, con=NONE_EXCLUSIVE,
          msg=NONE_MSG),
        q("select_multiple obs_physical", "obs_physical", "身体与生活方面", "Body and daily life", req=True,
          con=NONE_EXCLUSIVE, msg=NONE_MSG),
        q("select_multiple obs_school", "obs_school", "学习与同伴方面", "School and peers", req=True, con=NONE_EXCLUSIVE,
          msg=NONE_MSG),
        q("select_multiple obs_family", "obs_family", "家庭与照料方面", "Family and care", req=True, con=NONE_EXCLUSIVE,
          msg=NONE_MSG),
        q("select_multiple obs_redflag", "obs_redflag", "危险信号（任一出现即为紧急）", "Danger signs (any one = urgent)",
          req=True, con=NONE_EXCLUSIVE, msg=NONE_MSG),
        end("group", "grp_obs"),
        calc("score", " + ".join(count_items(f) for f in obs_fields)),
        calc("redflag_n", count_items("obs_redflag")),
        q("select_one duration", "duration", "上述情况已持续多久", "How long has this lasted?", req=True, rel="${score} > 0"),
        q("select_one impact", "impact", "对上学、吃饭睡觉、与人交往的影响", "Effect on school, eating/sleeping, relationships",
          req=True, rel="${score} > 0"),
        calc("suggested",
             "if(${redflag_n} > 0, 'urgent', if(${score} >= 4 or (${score} >= 2 and (${duration} = 'gt1m' or "
             "${impact} = 'marked')), 'refer', if(${score} >= 1, 'watch', 'healthy')))"),
        calc("suggested_label", "jr:choice-name(${suggested}, '${id_result}')"),
        note("suggest_note",
             "系统建议识别结果：${suggested_label}（得分 ${score}/19，危险信号 ${redflag_n} 项）。请结合实际确认。",
             "Suggested result: ${suggested_label} (score ${score}/19, danger signs ${redflag_n}). Please confirm."),
        q("select_one id_result", "id_result", "确认识别结果", "Confirmed identification result", req=True,
          con="not(${redflag_n} > 0 and . != 'urgent')",
          msg=("出现危险信号时必须选择“紧急”", "With any danger sign the result must be 'urgent'"), save="status"),
        q("text", "override_reason", "与系统建议不同的理由", "Reason for differing from the suggestion", req=True,
          rel="${id_result} != '' and ${id_result} != ${suggested}", sens=True),
        q("begin_group", "grp_urgent", "紧急处置", "Urgent action", rel="${id_result} = 'urgent'"),
        note("urgent_note",
             "立即电话报告乡镇儿童督导员和县级民政部门；儿童有自伤、自杀危险或疑似受到侵害的，依法立即向公安等部门报告，"
             "不以监护人同意为前提，并确保儿童身边有人看护。",
             "Phone the township supervisor and county civil-affairs office now; if there is a self-harm/suicide "
             "risk or suspected abuse, report to the police etc. at once (mandatory reporting, no guardian consent "
             "needed) and keep the child supervised."),
        q("select_multiple report_to", "reported_to", "已报告对象", "Reported to", req=True),
        q("dateTime", "report_time", "报告时间", "Time reported", req=True, con=". <= now()",
          msg=("时间不能晚于当前", "Cannot be in the future")),
        end("group", "grp_urgent"),
        q("select_one yesno", "guardian_informed", "是否已将识别结果告知监护人", "Guardian informed of the result?",
          req=True, rel="${id_result} != '' and ${id_result} != 'healthy'"),
        q("text", "obs_summary", "观察与询问情况简述", "Summary of what was observed and heard", req=True,
          con="string-length(.) >= 10", msg=("请至少写10个字", "Write at least 10 characters"), app="multiline",
          sens=True),
        q("image", "worker_signature", "填表人签名", "Filler's signature", req=True, app="signature", params=SIGNATURE),
        calc("last_identified", "format-date(${visit_date}, '%Y-%m-%d')", save="last_identified"),
        calc("id_score", "${score}", save="id_score"),
        calc("reident_clear", "'no'", save="flag_reidentify"),
        calc("next_due",
             "format-date(date(decimal-date-time(string(${visit_date})) + if(${id_result} = 'urgent', 1, "
             "if(${id_result} = 'refer', 15, if(${id_result} = 'watch', 30, 90)))), '%Y-%m-%d')",
             save="next_followup_due"),
    ]
    choices = [
        c("id_method", "home_visit", "入户走访", "Home visit"),
        c("id_method", "observe", "现场观察", "Observation"),
        c("id_method", "talk_child", "与儿童交谈", "Talked with child"),
        c("id_method", "ask_guardian", "询问监护人", "Asked guardian"),
        c("id_method", "ask_teacher", "询问教师", "Asked teacher"),
        c("id_method", "ask_neighbour", "询问邻居/村干部", "Asked neighbours / cadres"),
        c("id_method", "phone", "电话了解", "By phone"),
        c("obs_emotion", "e_sad", "经常闷闷不乐、爱哭或情绪低落", "Often unhappy, tearful or low"),
        c("obs_emotion", "e_worry", "容易紧张、担心或害怕", "Easily tense, worried or scared"),
        c("obs_emotion", "e_irritable", "脾气明显变大、容易发火", "Much more irritable"),
        c("obs_emotion", "e_interest", "对以前喜欢的事情没了兴趣", "Lost interest in things once enjoyed"),
        c("obs_emotion", "none", "以上都没有", "None of these"),
        c("obs_behaviour", "b_withdraw", "不愿说话、回避集体活动", "Withdrawn, avoids group activities"),
        c("obs_behaviour", "b_truancy", "无故旷课、逃学或不愿上学", "Truancy or school refusal"),
        c("obs_behaviour", "b_aggress", "打架、摔砸东西或拿别人东西", "Fighting, breaking or taking things"),
        c("obs_behaviour", "b_screen", "沉迷手机或网络游戏，影响吃饭睡觉上学", "Phone/games disrupt eating, sleep, school"),
        c("obs_behaviour", "none", "以上都没有", "None of these"),
        c("obs_physical", "p_sleep", "睡眠明显变差或白天总犯困", "Sleeps badly or drowsy all day"),
        c("obs_physical", "p_appetite", "食欲明显变化或明显消瘦", "Marked appetite change or weight loss"),
        c("obs_physical", "p_pain", "常说头痛、肚子痛，看病又查不出原因", "Frequent aches with no medical cause"),
        c("obs_physical", "p_hygiene", "个人卫生明显变差", "Personal hygiene much worse"),
        c("obs_physical", "none", "以上都没有", "None of these"),
        c("obs_school", "s_grades", "学习兴趣或成绩明显下降", "Clear drop in interest or grades"),
        c("obs_school", "s_bullied", "被同学孤立、欺负或取笑", "Isolated, bullied or teased"),
        c("obs_school", "s_conflict", "与老师、同学冲突增多", "More conflict with teachers/peers"),
        c("obs_school", "none", "以上都没有", "None of these"),
        c("obs_family", "f_loss", "近一年家中有亲人去世、重病、离异、服刑等变故",
          "Bereavement, illness, divorce, imprisonment in the family (past year)"),
        c("obs_family", "f_care", "衣食、看护、安全等照料明显不足", "Clearly inadequate food, care or safety"),
        c("obs_family", "f_violence", "家中经常打骂、争吵或有暴力", "Frequent beating, quarrels or violence at home"),
        c("obs_family", "f_alone", "长期独自在家或无人陪伴", "Often alone without an adult"),
        c("obs_family", "none", "以上都没有", "None of these"),
        c("obs_redflag", "r_suicide_talk", "说过想死、不想活或要伤害自己的话", "Has talked of dying or hurting self"),
        c("obs_redflag", "r_selfharm", "身上有自伤痕迹或曾有自杀行为", "Self-harm marks or past suicide attempt"),
        c("obs_redflag", "r_abuse", "疑似遭受虐待、性侵害或严重忽视", "Suspected abuse, sexual abuse or severe neglect"),
        c("obs_redflag", "r_psychotic", "言行明显怪异（如说听到、看到别人没有的东西）",
          "Very odd speech/behaviour (e.g. hears/sees things others don't)"),
        c("obs_redflag", "r_missing", "近期离家出走或长时间失联", "Recently ran away or missing"),
        c("obs_redflag", "none", "以上都没有", "None of these"),
        c("duration", "lt2w", "不到2周", "< 2 weeks"),
        c("duration", "2w_1m", "2周至1个月", "2 weeks - 1 month"),
        c("duration", "gt1m", "1个月以上", "> 1 month"),
        c("impact", "no_impact", "无明显影响", "No clear effect"),
        c("impact", "some", "有一定影响", "Some effect"),
        c("impact", "marked", "影响明显", "Marked effect"),
        c("id_result", "healthy", "健康状态", "Healthy"),
        c("id_result", "watch", "需关注（继续观察）", "Watch (keep observing)"),
        c("id_result", "refer", "需转介专业评估", "Refer for professional assessment"),
        c("id_result", "urgent", "紧急（立即报告并转介）", "Urgent (report and refer now)"),
        c("report_to", "supervisor", "乡镇儿童督导员", "Township supervisor"),
        c("report_to", "county", "县级民政部门/未成年人救助保护机构", "County civil affairs / protection centre"),
        c("report_to", "police", "公安机关（110）", "Police (110)"),
        c("report_to", "medical", "医疗机构（120）", "Medical (120)"),
        c("report_to", "school", "学校", "School"),
        c("report_to", "other", "其他", "Other"),
    ]
    return {
        "file": "identification.xlsx",
        "survey": survey,
        "choices": shared_choices() + choices,
        "settings": {
            "form_title": "困境儿童心理健康状况识别表 Identification",
            "form_id": "identification",
            "instance_name": short_instance_name("识别", "${visit_date}"),
        },
        "entities": [{"list_name": "children", "entity_id": "${child}"}],
        "about": about([
            ("entity", "更新 children：status, last_identified, id_score, flag_reidentify=no, next_followup_due"),
            ("scoring", "紧急：任一危险信号；转介：≥4项，或≥2项且持续1个月以上或影响明显；关注：≥1项；否则健康（设计值）"),
            ("design", "下次日期：紧急1天、转介评估15天、关注30天、健康90天（设计值）"),
        ]),
    }


# --------------------------------------------------------------------------------------
# B3 评估表 / assessment (updates risk_level)
# --------------------------------------------------------------------------------------

def sev(name, zh, en):
    return q("select_one sev", name, zh, en, req=True, app="columns-pack")


def assessment():
    ok = "${consent_ok} = 'yes'"
    survey = META + [
        note("intro",
             "评估表由经培训的专业人员（心理咨询师、社会工作者、精神科医师等）在取得监护人同意后填写；儿童主任可陪同。" + CONFIDENTIAL_ZH,
             "Completed by a trained professional (counsellor, social worker, psychiatrist…) after guardian "
             "consent; the child director may accompany. " + CONFIDENTIAL_EN),
        note("not_diagnosis", SCREENING_NOTE_ZH, SCREENING_NOTE_EN),
    ] + region(save=False) + child_picker(
        "status = 'refer' or status = 'urgent' or status = 'watch' or risk_level != 'unassessed'",
        "儿童：${child_label}，${age_years} 周岁；识别结果：${prev_status_w_zh}；原风险等级：${prev_risk_w_zh}",
        "Child: ${child_label}, ${age_years} y; identification: ${prev_status_w_en}; previous risk: ${prev_risk_w_en}",
    ) + [
        q("begin_group", "grp_assessor", "评估人员", "Assessor", app="field-list"),
        q("text", "assessor_name", "评估人员姓名", "Assessor's name", req=True),
        q("select_one role", "assessor_role", "评估人员身份", "Assessor's role", req=True, con=". != 'child_director'",
          msg=("评估须由专业人员开展，儿童主任不能作为评估人", "Assessment is done by a professional, not the child director")),
        q("text", "assessor_org", "所在机构", "Organisation", req=True),
        q("date", "assessment_date", "评估日期", "Assessment date", req=True, con=". <= today()", msg=NOT_FUTURE),
        q("select_one place", "assessment_place", "评估地点", "Place", req=True),
        end("group", "grp_assessor"),
        q("begin_group", "grp_consent", "监护人同意", "Guardian consent"),
        note("consent_text",
             "向监护人说明评估目的、内容、结果用途和保密措施；儿童心理健康信息属敏感个人信息，须取得监护人单独同意。"
             "8周岁以上征求儿童本人意见，14周岁以上须本人同意（设计规则）。",
             "Explain purpose, content, use of the results and confidentiality; a child's mental-health data are "
             "sensitive and need the guardian's separate consent. From age 8 the child is asked; from 14 the "
             "child's own consent is required (design rule)."),
        q("select_one consent3", "guardian_consent", "监护人是否单独同意开展心理健康评估", "Does the guardian separately consent to "
          "the mental-health assessment?", req=True),
        q("image", "consent_signature", "监护人签名", "Guardian's signature", req=True,
          rel="${guardian_consent} = 'yes'", app="signature", params=SIGNATURE, sens=True),
        q("select_one yesno", "child_assent", "儿童本人是否愿意参加", "Is the child willing to take part?", req=True,
          rel="${guardian_consent} = 'yes' and ${age_years} >= 8"),
        calc("consent_ok",
             "if(${guardian_consent} = 'yes' and (${age_years} < 14 or ${child_assent} = 'yes'), 'yes', 'no')"),
        q("text", "no_consent_reason", "未同意/未联系上的情况说明及后续安排", "Why no consent, and next steps",
          hint=("未同意时不得开展评估，不更新风险等级；继续关爱观察。存在紧急危险或疑似侵害的按紧急程序报告，不以同意为前提。",
                "Without consent do not assess and the risk level is not changed; keep observing. Danger or "
                "suspected abuse: follow the urgent procedure, consent is not needed."),
          req=True, rel="${guardian_consent} != '' and not(" + ok + ")", sens=True),
        end("group", "grp_consent"),
        q("begin_group", "grp_phys", "一、生理因素（0无 1轻 2中 3重）", "1. Physiological factors (0 none - 3 severe)", rel=ok),
        sev("ph_sleep", "睡眠问题", "Sleep problems"),
        sev("ph_appetite", "饮食、体重异常", "Eating / weight problems"),
        sev("ph_somatic", "反复躯体不适（头痛、腹痛等）", "Recurrent physical complaints"),
        sev("ph_illness", "慢性病、残疾或发育问题对生活的影响", "Impact of chronic illness, disability or development"),
        sev("ph_substance", "烟、酒或其他物质使用", "Tobacco, alcohol or other substance use"),
        end("group", "grp_phys"),
        q("begin_group", "grp_psy", "二、心理因素（0无 1轻 2中 3重）", "2. Psychological factors (0 none - 3 severe)", rel=ok),
        sev("ps_mood", "情绪低落、兴趣减退", "Low mood, loss of interest"),
        sev("ps_anxiety", "紧张、担忧、恐惧", "Anxiety, worry, fear"),
        sev("ps_anger", "易怒、冲动、攻击", "Irritability, impulsivity, aggression"),
        sev("ps_selfworth", "自我评价低、无望感", "Low self-worth, hopelessness"),
        sev("ps_attention", "注意力不集中、学习困难", "Attention / learning difficulty"),
        sev("ps_trauma", "创伤相关反应（回避、噩梦、过度警觉）", "Trauma reactions (avoidance, nightmares, hypervigilance)"),
        sev("ps_withdraw", "退缩、回避人际交往", "Withdrawal, social avoidance"),
        sev("ps_reality", "言行怪异或感知异常（疑似幻觉、妄想）", "Odd behaviour or perception (possible hallucinations/delusions)"),
        q("select_one si", "si_level", "自伤/自杀风险", "Self-harm / suicide risk", req=True),
        q("select_multiple tools", "tools_used", "使用的标准化量表（仅记录总分）", "Standardised tools used (totals only)",
          hint=("本表不收录量表条目；量表须按其授权条款使用（SDQ 等未授权电子化的量表不得录入条目）",
                "No tool items are stored here; use each tool under its licence terms"),
          req=True, con=NONE_EXCLUSIVE, msg=NONE_MSG),
        q("integer", "phq_total", "PHQ-9/PHQ-A 总分", "PHQ-9 / PHQ-A total", req=True,
          rel="selected(${tools_used}, 'phq9')", con=". >= 0 and . <= 27", msg=("总分为0–27", "Total is 0–27")),
        q("integer", "gad7_total", "GAD-7 总分", "GAD-7 total", req=True, rel="selected(${tools_used}, 'gad7')",
          con=". >= 0 and . <= 21", msg=("总分为0–21", "Total is 0–21")),
        q("integer", "psc17_total", "PSC-17 总分", "PSC-17 total", req=True, rel="selected(${tools_used}, 'psc17')",
          con=". >= 0 and . <= 34", msg=("总分为0–34", "Total is 0–34")),
        end("group", "grp_psy"),
        q("begin_group", "grp_soc", "三、社会环境因素（0无 1轻 2中 3重）", "3. Social-environment factors (0 none - 3 severe)", rel=ok),
        sev("se_care", "监护照料不足", "Inadequate guardianship / care"),
        sev("se_family", "家庭冲突或家庭暴力", "Family conflict or violence"),
        sev("se_loss", "近12个月重大丧失或变故", "Major loss or upheaval (past 12 months)"),
        sev("se_school", "学校适应困难或遭受欺凌", "School maladjustment or bullying"),
        sev("se_support", "缺乏同伴与社会支持", "Lack of peer / social support"),
        sev("se_economic", "经济困难影响基本生活", "Poverty affecting basic needs"),
        q("select_multiple protective", "protective", "保护性因素", "Protective factors", req=True, con=NONE_EXCLUSIVE,
          msg=NONE_MSG),
        q("select_one impairment", "impairment", "学习、生活、交往功能受损程度", "Functional impairment", req=True),
        end("group", "grp_soc"),
        calc("phys_score", "${ph_sleep} + ${ph_appetite} + ${ph_somatic} + ${ph_illness} + ${ph_substance}"),
        calc("psych_score", "${ps_mood} + ${ps_anxiety} + ${ps_anger} + ${ps_selfworth} + ${ps_attention} + "
                            "${ps_trauma} + ${ps_withdraw} + ${ps_reality}"),
        calc("soc_score", "${se_care} + ${se_family} + ${se_loss} + ${se_school} + ${se_support} + ${se_economic}"),
        calc("total_score", "${phys_score} + ${psych_score} + ${soc_score}", save="assess_score"),
        calc("calc_risk",
             "if(" + ok + ", if(${si_level} >= 2 or ${ps_reality} >= 2 or ${impairment} = 3, 'red', "
             "if(${si_level} = 1 or ${psych_score} >= 10 or ${impairment} = 2 or ${se_care} = 3 or ${se_family} = 3 "
             "or coalesce(${phq_total}, 0) >= 15 or coalesce(${gad7_total}, 0) >= 15, 'orange', "
             "if(${psych_score} >= 5 or ${total_score} >= 10 or ${impairment} = 1 or coalesce(${phq_total}, 0) >= 10 "
             "or coalesce(${gad7_total}, 0) >= 10, 'yellow', 'green'))), '')"),
        calc("calc_risk_label", "jr:choice-name(${calc_risk}, '${final_risk}')"),
        q("begin_group", "grp_result", "评估结论", "Conclusion", rel=ok),
        note("score_note",
             "生理 ${phys_score}/15，心理 ${psych_score}/24，社会环境 ${soc_score}/18，合计 ${total_score}/57；"
             "系统建议风险等级：${calc_risk_label}（仅供参考，由评估人员确定）",
             "Physiological ${phys_score}/15, psychological ${psych_score}/24, social ${soc_score}/18, total "
             "${total_score}/57; suggested level: ${calc_risk_label} (for reference; the assessor decides)"),
        q("select_one risk", "final_risk", "评估人员确定的风险等级", "Risk level set by the assessor", req=True,
          save="risk_level"),
        q("text", "risk_reason", "与系统建议不同的理由", "Reason for differing from the suggestion", req=True,
          rel="${final_risk} != '' and ${final_risk} != ${calc_risk}", sens=True),
        q("text", "assessment_summary", "评估小结（主要问题、成因、优势）", "Summary (main problems, causes, strengths)",
          req=True, app="multiline", sens=True),
        q("select_multiple services", "recommended", "建议服务（可多选）", "Recommended services", req=True,
          con="not((${final_risk} = 'red') and not(selected(., 'crisis') or selected(., 'medical')))",
          msg=("红色等级须选择危机干预或转介医疗", "Red level requires crisis intervention or medical referral")),
        note("referral_note",
             "橙色、红色或建议转介医疗的，请用“转介跟踪记录”办理转介，并在转介时取得监护人同意签名。",
             "For orange, red or a medical referral, record the referral in the referral & follow-up form and get "
             "the guardian's signed consent there.",
             rel="${final_risk} = 'orange' or ${final_risk} = 'red' or selected(${recommended}, 'medical')"),
        q("image", "assessor_signature", "评估人员签名", "Assessor's signature", req=True, app="signature",
          params=SIGNATURE),
        end("group", "grp_result"),
        calc("last_assessed", "format-date(${assessment_date}, '%Y-%m-%d')", save="last_assessed"),
        calc("reident_clear", "'no'", save="flag_reidentify"),
        calc("next_due",
             "format-date(date(decimal-date-time(string(${assessment_date})) + if(${final_risk} = 'red', 7, "
             "if(${final_risk} = 'orange', 14, if(${final_risk} = 'yellow', 30, 90)))), '%Y-%m-%d')",
             save="next_followup_due"),
    ]
    choices = [
        c("place", "home", "儿童家中", "Child's home"),
        c("place", "school", "学校", "School"),
        c("place", "village_centre", "村（居）儿童之家/服务站", "Village children's centre"),
        c("place", "institution", "机构", "Institution"),
        c("place", "other", "其他", "Other"),
        c("sev", "0", "0 无", "0 none"),
        c("sev", "1", "1 轻", "1 mild"),
        c("sev", "2", "2 中", "2 moderate"),
        c("sev", "3", "3 重", "3 severe"),
        c("si", "0", "无自伤、自杀想法", "No self-harm or suicidal thoughts"),
        c("si", "1", "有消极想法（如“活着没意思”），无伤害自己的意图", "Passive thoughts, no intent"),
        c("si", "2", "有自伤/自杀想法，或近期有自伤行为", "Self-harm/suicidal thoughts or recent self-harm"),
        c("si", "3", "有具体计划、准备，或近期有自杀尝试", "Plan, preparation or recent attempt"),
        c("tools", "phq9", "PHQ-9 / PHQ-A（抑郁）", "PHQ-9 / PHQ-A (depression)"),
        c("tools", "gad7", "GAD-7（焦虑）", "GAD-7 (anxiety)"),
        c("tools", "psc17", "PSC-17（儿童症状）", "PSC-17"),
        c("tools", "other", "其他（在小结中注明）", "Other (note in summary)"),
        c("tools", "none", "未使用量表", "None used"),
        c("protective", "stable_adult", "有稳定、可信赖的成年人", "A stable, trusted adult"),
        c("protective", "teacher", "老师关心支持", "Supportive teacher"),
        c("protective", "friends", "有要好的朋友", "Close friends"),
        c("protective", "hobby", "有兴趣爱好或特长", "Hobby or talent"),
        c("protective", "community", "参与社区或集体文化活动", "Takes part in community/cultural activities"),
        c("protective", "none", "以上都没有", "None of these"),
        c("impairment", "0", "无", "None"),
        c("impairment", "1", "轻度（基本不影响）", "Mild"),
        c("impairment", "2", "中度（部分影响学习生活）", "Moderate"),
        c("impairment", "3", "重度（无法上学或生活难以自理）", "Severe"),
        c("risk", "green", "绿色（低风险）", "Green (low)"),
        c("risk", "yellow", "黄色（一般风险）", "Yellow (some risk)"),
        c("risk", "orange", "橙色（较高风险）", "Orange (elevated)"),
        c("risk", "red", "红色（高风险/危机）", "Red (high / crisis)"),
        c("services", "observe", "持续关爱观察", "Continued observation and care"),
        c("services", "counselling", "心理辅导/情绪疏导", "Counselling"),
        c("services", "family_guidance", "家庭教育与监护指导", "Family / guardianship guidance"),
        c("services", "school_support", "学校支持（成长导师、结对）", "School support"),
        c("services", "medical", "转介精神卫生/心理门诊", "Refer to mental-health clinic"),
        c("services", "crisis", "危机干预", "Crisis intervention"),
        c("services", "guardianship", "监护干预/临时监护", "Guardianship intervention"),
        c("services", "welfare", "社会救助与福利政策衔接", "Welfare / assistance linkage"),
    ]
    return {
        "file": "assessment.xlsx",
        "survey": survey,
        "choices": shared_choices() + choices,
        "settings": {
            "form_title": "困境儿童心理健康状况评估表 Assessment",
            "form_id": "assessment",
            "instance_name": short_instance_name("评估", "${assessment_date}"),
        },
        "entities": [{"list_name": "children", "entity_id": "${child}", "update_if": "${consent_ok} = 'yes'"}],
        "about": about([
            ("entity", "同意时（consent_ok）更新 children：risk_level, assess_score, last_assessed, flag_reidentify=no, "
                       "next_followup_due"),
            ("scoring", "红：自伤≥2 或 精神病性≥2 或 功能受损=3；橙：自伤=1 或 心理≥10 或 受损=2 或 照料/暴力=3 或 PHQ/GAD≥15；"
                        "黄：心理≥5 或 总分≥10 或 受损=1 或 PHQ/GAD≥10；否则绿（设计值）"),
            ("design", "下次回访：红7天、橙14天、黄30天、绿90天（设计值）"),
        ]),
    }


# --------------------------------------------------------------------------------------
# B4 走访访谈记录 / visit & interview record
# --------------------------------------------------------------------------------------

def visit_record():
    survey = META + [
        note("intro", "走访访谈记录：每次入户、到校或电话走访填写一份；每位访谈对象记录一条，不写被访谈人姓名。" + CONFIDENTIAL_ZH,
             "One record per home, school or phone visit; one entry per interviewee, without the interviewee's "
             "name. " + CONFIDENTIAL_EN),
        q("select_one role", "visitor_role", "走访人身份", "Visitor's role", req=True),
    ] + region(save=False) + child_picker(
        "",
        "儿童：${child_label}，${age_years} 周岁；风险等级：${prev_risk_w_zh}；应回访日期：${prev_due}",
        "Child: ${child_label}, ${age_years} y; risk: ${prev_risk_w_en}; due: ${prev_due}",
    ) + [
        q("date", "visit_date", "走访日期", "Visit date", req=True, con=". <= today()", msg=NOT_FUTURE),
        q("select_one purpose", "visit_purpose", "走访目的", "Purpose", req=True),
        q("select_one visit_mode", "visit_mode", "走访方式", "Mode", req=True),
        q("geopoint", "visit_location", "走访地点定位", "Visit location", req=True,
          rel="${visit_mode} = 'home' or ${visit_mode} = 'school' or ${visit_mode} = 'village_office'", sens=True),
        q("select_one yesno", "child_seen", "是否见到儿童本人", "Was the child seen?", req=True),
        q("text", "child_obs", "对儿童的观察（精神面貌、卫生、与人互动等）", "Observation of the child (mood, hygiene, interaction)",
          req=True, rel="${child_seen} = 'yes'", app="multiline", sens=True),
        q("begin_repeat", "interviews", "访谈对象", "Interviewee"),
        note("iv_no_name", "不记录被访谈人姓名，只记录身份和与儿童的关系。", "Do not record the interviewee's name; only "
             "their role and relation to the child."),
        q("select_one iv_role", "iv_role", "访谈对象身份", "Interviewee's role", req=True),
        q("select_one iv_relation", "iv_relation", "与儿童关系", "Relation to the child", req=True, filt="cat=${iv_role} or cat='any'"),
        q("text", "iv_relation_other", "其他关系（请注明，不写姓名）", "Other relation (specify, no name)", req=True,
          rel="${iv_relation} = 'other'"),
        q("select_one iv_method", "iv_method", "访谈方式", "Method", req=True),
        q("text", "iv_summary", "访谈要点", "Summary of the conversation", req=True, con="string-length(.) >= 10",
          msg=("请至少写10个字", "Write at least 10 characters"), app="multiline", sens=True),
        q("select_one yesno", "iv_concern", "是否反映了新的担忧", "New concern raised?", req=True),
        end("repeat", "interviews"),
        calc("n_interviews", "count(${interviews})"),
        note("n_note", "本次共访谈 ${n_interviews} 人", "${n_interviews} people interviewed"),
        q("select_one yesno", "new_concern", "本次是否发现新的风险或担忧", "Any new risk or concern found?", req=True),
        q("text", "concern_detail", "具体情况", "Details", req=True, rel="${new_concern} = 'yes'", app="multiline",
          sens=True),
        q("select_one yesno", "need_reidentify", "是否需要重新识别/评估", "Re-identification or assessment needed?",
          req=True, rel="${new_concern} = 'yes'"),
        note("danger_note",
             "如发现自伤、自杀危险或疑似受侵害，请立即报告乡镇儿童督导员、县级民政部门，必要时报警（强制报告）。",
             "If there is a self-harm/suicide risk or suspected abuse, report to the supervisor and county at once, "
             "and to the police if needed (mandatory reporting).", rel="${new_concern} = 'yes'"),
        q("select_one yesno", "photo_consent", "是否已取得监护人同意拍照", "Guardian agreed to photos?", req=True,
          rel="${visit_mode} = 'home'"),
        q("image", "visit_photo", "走访照片（居住环境等，不拍儿童正脸）", "Visit photo (living conditions; not the child's face)",
          rel="${photo_consent} = 'yes'", params=PHOTO, sens=True),
        q("image", "visitor_signature", "走访人签名", "Visitor's signature", req=True, app="signature", params=SIGNATURE),
        calc("last_visit", "format-date(${visit_date}, '%Y-%m-%d')", save="last_visit"),
        calc("flag_reidentify", "if(${need_reidentify} = 'yes', 'yes', 'no')", save="flag_reidentify"),
    ]
    choices = [
        c("purpose", "routine", "例行走访", "Routine visit"),
        c("purpose", "identification", "识别走访", "Identification"),
        c("purpose", "assessment", "评估访谈", "Assessment interview"),
        c("purpose", "followup", "跟踪回访", "Follow-up"),
        c("purpose", "crisis", "紧急情况处置", "Crisis response"),
        c("purpose", "other", "其他", "Other"),
        c("visit_mode", "home", "入户", "Home"),
        c("visit_mode", "school", "到校", "School"),
        c("visit_mode", "village_office", "村（居）委会/儿童之家", "Village office / centre"),
        c("visit_mode", "phone", "电话", "Phone"),
        c("visit_mode", "video", "视频", "Video"),
        c("iv_role", "child", "儿童本人", "The child"),
        c("iv_role", "family", "监护人或家庭成员", "Guardian or family member"),
        c("iv_role", "school", "学校人员", "School staff"),
        c("iv_role", "peer", "同学或同伴", "Classmate or peer"),
        c("iv_role", "community", "社区人员", "Community member"),
        c("iv_role", "health", "医务人员", "Health worker"),
        c("iv_role", "other", "其他", "Other"),
        c("iv_relation", "self", "本人", "Self", cat="child"),
        c("iv_relation", "father", "父亲", "Father", cat="family"),
        c("iv_relation", "mother", "母亲", "Mother", cat="family"),
        c("iv_relation", "grandparent", "祖父母/外祖父母", "Grandparent", cat="family"),
        c("iv_relation", "sibling", "兄弟姐妹", "Sibling", cat="family"),
        c("iv_relation", "other_guardian", "其他监护人/照料人", "Other guardian / carer", cat="family"),
        c("iv_relation", "teacher", "教师/班主任", "Teacher", cat="school"),
        c("iv_relation", "school_counsellor", "心理健康教师", "School counsellor", cat="school"),
        c("iv_relation", "classmate", "同学", "Classmate", cat="peer"),
        c("iv_relation", "friend", "朋友/玩伴", "Friend", cat="peer"),
        c("iv_relation", "neighbour", "邻居", "Neighbour", cat="community"),
        c("iv_relation", "village_cadre", "村（居）干部", "Village cadre", cat="community"),
        c("iv_relation", "doctor", "医生/村医", "Doctor / village doctor", cat="health"),
        c("iv_relation", "other", "其他", "Other", cat="any"),
        c("iv_method", "face", "当面", "In person"),
        c("iv_method", "phone", "电话", "Phone"),
        c("iv_method", "video", "视频", "Video"),
        c("iv_method", "written", "书面/微信文字", "Written / text"),
    ]
    return {
        "file": "visit_record.xlsx",
        "survey": survey,
        "choices": shared_choices() + choices,
        "settings": {
            "form_title": "困境儿童走访访谈记录 Visit and interview record",
            "form_id": "visit_record",
            "instance_name": short_instance_name("走访", "${visit_date}"),
        },
        "entities": [{"list_name": "children", "entity_id": "${child}"}],
        "about": about([
            ("entity", "更新 children：last_visit, flag_reidentify"),
            ("interviewees", "每位访谈对象一条（重复组），只记身份、关系和要点，不记姓名 / one repeat per interviewee, no names."),
        ]),
    }


# --------------------------------------------------------------------------------------
# B5 转介跟踪记录 / referral & follow-up
# --------------------------------------------------------------------------------------

def referral_followup():
    ref_ok = "${ref_consent} = 'yes'"
    survey = META + [
        note("intro", "转介跟踪记录：转介须取得监护人同意；跟踪回访和结案也用本表。" + CONFIDENTIAL_ZH,
             "Referral (only with guardian consent), follow-up and closure. " + CONFIDENTIAL_EN),
        q("select_one role", "worker_role", "填表人身份", "Filler's role", req=True),
    ] + region(save=False) + child_picker(
        "risk_level != 'unassessed' or status = 'urgent'",
        "儿童：${child_label}；风险等级：${prev_risk_w_zh}；转介状态：${prev_ref_w_zh}；应回访日期：${prev_due}",
        "Child: ${child_label}; risk: ${prev_risk_w_en}; referral: ${prev_ref_w_en}; due: ${prev_due}",
    ) + [
        q("date", "record_date", "记录日期", "Date", req=True, con=". <= today()", msg=NOT_FUTURE),
        q("select_one record_type", "record_type", "记录类型", "Record type", req=True,
          con="not(. = 'followup' and ${prev_ref_status} = 'none' and ${prev_risk} = 'green')",
          msg=("绿色且未转介的儿童无需转介跟踪记录，请用走访记录", "Green and never referred: use the visit record instead")),
        q("begin_group", "grp_ref", "转介", "Referral", rel="${record_type} = 'referral'"),
        q("select_one consent3", "ref_consent", "监护人是否同意转介", "Does the guardian agree to the referral?", req=True),
        q("image", "ref_consent_signature", "监护人签名", "Guardian's signature", req=True, rel=ref_ok,
          app="signature", params=SIGNATURE, sens=True),
        q("text", "ref_refusal_reason", "不同意或未联系上的情况及后续措施", "Reason and next steps",
          hint=("继续关爱观察；儿童面临危险或疑似受侵害的，依法强制报告，不以监护人同意为前提",
                "Keep observing; danger or suspected abuse must be reported by law, guardian consent not needed"),
          req=True, rel="${ref_consent} != '' and not(" + ref_ok + ")", sens=True),
        q("select_one ref_target", "ref_target_type", "转介机构类型", "Type of receiving service", req=True, rel=ref_ok),
        q("text", "ref_target_org", "转介机构名称", "Receiving organisation", req=True, rel=ref_ok),
        q("text", "ref_target_contact", "机构联系电话", "Organisation phone", rel=ref_ok,
          con="regex(., '^[0-9-]{7,15}$')", msg=("请输入电话号码", "Enter a phone number"), app="numbers"),
        q("select_one urgency", "urgency", "紧急程度", "Urgency", req=True, rel=ref_ok),
        q("text", "ref_reason", "转介原因与需求", "Reason and needs", req=True, rel=ref_ok, app="multiline", sens=True),
        q("date", "ref_appointment", "预约就诊/服务日期", "Appointment date", rel=ref_ok, con=". >= ${record_date}",
          msg=("预约日期不能早于记录日期", "Cannot be before the record date")),
        q("image", "ref_letter_photo", "转介单或回执照片", "Photo of the referral slip / receipt", rel=ref_ok,
          params=PHOTO, sens=True),
        end("group", "grp_ref"),
        q("begin_group", "grp_fu", "跟踪回访", "Follow-up", rel="${record_type} = 'followup'"),
        q("select_one fu_method", "fu_method", "回访方式", "Method", req=True),
        q("select_one fu_service", "fu_service", "接受服务情况", "Service status", req=True),
        q("select_multiple barriers", "fu_barriers", "未接受服务的原因", "Barriers", req=True,
          rel="${fu_service} = 'not_received' or ${fu_service} = 'waiting'"),
        q("select_one condition", "fu_condition", "儿童目前状况", "Child's current condition", req=True),
        q("select_one yesno", "fu_reassess", "是否需要重新评估", "Re-assessment needed?", req=True,
          con="not(${fu_condition} = 'worse' and . = 'no')",
          msg=("状况恶化时须重新评估", "If the condition is worse a re-assessment is needed")),
        q("text", "fu_notes", "回访记录", "Follow-up notes", req=True, app="multiline", sens=True),
        q("date", "next_followup_date", "下次回访日期", "Next follow-up date", req=True,
          con="decimal-date-time(string(.)) > decimal-date-time(string(${record_date})) and "
              "decimal-date-time(string(.)) - decimal-date-time(string(${record_date})) <= 90",
          msg=("须晚于本次记录日期，且不超过90天", "Must be after this record and within 90 days")),
        end("group", "grp_fu"),
        q("begin_group", "grp_close", "结案", "Closure", rel="${record_type} = 'closure'"),
        q("select_one close_reason", "close_reason", "结案原因", "Reason for closure", req=True,
          con="not(. = 'risk_resolved' and ${prev_risk} != 'green') and not(. = 'turned18' and ${age_years} < 18)",
          msg=("“风险解除”须先经复评为绿色；“年满18周岁”须儿童已满18周岁",
               "'Risk resolved' needs a green re-assessment first; 'turned 18' needs the child to be 18")),
        q("text", "close_note", "结案说明", "Closure note", app="multiline", sens=True),
        end("group", "grp_close"),
        q("image", "worker_signature", "填表人签名", "Filler's signature", req=True, app="signature", params=SIGNATURE),
        calc("new_ref_status",
             "if(${record_type} = 'closure', 'closed', if(${record_type} = 'referral', if(" + ref_ok + ", 'referred', "
             "${prev_ref_status}), if(${fu_service} = 'receiving' or ${fu_service} = 'completed', 'in_service', "
             "${prev_ref_status})))", save="referral_status"),
        calc("new_status",
             "if(${record_type} = 'closure', 'closed', if(${record_type} = 'followup' and ${fu_reassess} = 'yes', "
             "'refer', ${prev_status}))", save="status"),
        calc("new_due",
             "if(${record_type} = 'closure', '', if(${record_type} = 'followup', "
             "format-date(${next_followup_date}, '%Y-%m-%d'), format-date(date(decimal-date-time(string(${record_date})) + "
             "if(${urgency} = 'emergency', 1, if(${urgency} = 'priority', 7, 14))), '%Y-%m-%d')))",
             save="next_followup_due"),
        calc("last_followup", "format-date(${record_date}, '%Y-%m-%d')", save="last_followup"),
    ]
    choices = [
        c("record_type", "referral", "转介", "Referral"),
        c("record_type", "followup", "跟踪回访", "Follow-up"),
        c("record_type", "closure", "结案", "Closure"),
        c("ref_target", "mental_hospital", "精神卫生专科医院/精神科", "Psychiatric hospital / department"),
        c("ref_target", "general_hospital", "综合医院心理门诊", "General-hospital psychology clinic"),
        c("ref_target", "psych_service", "社会心理服务机构/心理咨询机构", "Community psychological service"),
        c("ref_target", "school_counsellor", "学校心理健康教师", "School counsellor"),
        c("ref_target", "protection_centre", "未成年人救助保护机构", "Minors' protection centre"),
        c("ref_target", "social_work", "社会工作服务站/机构", "Social-work station / agency"),
        c("ref_target", "police", "公安机关（涉嫌侵害）", "Police (suspected abuse)"),
        c("ref_target", "other", "其他", "Other"),
        c("urgency", "routine", "常规（14日内）", "Routine (within 14 days)"),
        c("urgency", "priority", "优先（7日内）", "Priority (within 7 days)"),
        c("urgency", "emergency", "紧急（24小时内）", "Emergency (within 24 h)"),
        c("fu_method", "home", "入户", "Home visit"),
        c("fu_method", "phone", "电话", "Phone"),
        c("fu_method", "school", "到校", "School"),
        c("fu_method", "institution", "到服务机构", "At the service"),
        c("fu_service", "receiving", "正在接受服务", "Receiving service"),
        c("fu_service", "completed", "已完成服务", "Completed"),
        c("fu_service", "waiting", "已预约、等待中", "Waiting"),
        c("fu_service", "not_received", "未接受服务", "Not received"),
        c("barriers", "distance", "路途远、交通不便", "Distance / transport"),
        c("barriers", "cost", "费用", "Cost"),
        c("barriers", "guardian_refused", "监护人不同意", "Guardian refused"),
        c("barriers", "child_refused", "儿童拒绝", "Child refused"),
        c("barriers", "no_slot", "机构无号源或无专业人员", "No appointment / no specialist"),
        c("barriers", "season", "季节、天气或农牧忙", "Season, weather or herding/farm work"),
        c("barriers", "language", "语言沟通（藏汉双语）", "Language (Tibetan/Chinese)"),
        c("barriers", "other", "其他", "Other"),
        c("condition", "improved", "好转", "Improved"),
        c("condition", "stable", "稳定", "Stable"),
        c("condition", "no_change", "无变化", "No change"),
        c("condition", "worse", "恶化", "Worse"),
        c("close_reason", "risk_resolved", "风险解除（复评为绿色）", "Risk resolved (re-assessed green)"),
        c("close_reason", "turned18", "年满18周岁", "Turned 18"),
        c("close_reason", "moved", "迁出本地（已移交）", "Moved away (handed over)"),
        c("close_reason", "consent_withdrawn", "监护人撤回同意", "Guardian withdrew consent"),
        c("close_reason", "deceased", "死亡", "Deceased"),
        c("close_reason", "other", "其他", "Other"),
    ]
    return {
        "file": "referral_followup.xlsx",
        "survey": survey,
        "choices": shared_choices() + choices,
        "settings": {
            "form_title": "困境儿童转介与跟踪记录 Referral and follow-up",
            "form_id": "referral_followup",
            "instance_name": short_instance_name("转介跟踪", "${record_date}"),
        },
        "entities": [{"list_name": "children", "entity_id": "${child}"}],
        "about": about([
            ("entity", "更新 children：referral_status, status（closed 或 refer）, next_followup_due（结案时清空）, last_followup"),
            ("design", "转介后首次回访：紧急1天、优先7天、常规14天；回访间隔不超过90天（设计值）"),
        ]),
    }


FORMS = [child_registration, household_registration, identification, assessment, visit_record, referral_followup]


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def _write_sheet(wb, title, header, rows):
    ws = wb.create_sheet(title)
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        if isinstance(row, dict):
            unknown = set(row) - set(header)
            if unknown:
                raise ValueError(f"{title}: unknown columns {sorted(unknown)}")
            ws.append([row.get(col, "") or None for col in header])
        else:
            ws.append([v or None for v in row])
    ws.freeze_panes = "A2"
    return ws


def form_sheets(spec):
    """The sheets of one form as {sheet: (header, rows)} (used by the writer and the tests)."""
    settings = {"version": VERSION, "default_language": ZH, "namespaces": NAMESPACES}
    settings.update(spec["settings"])
    settings_cols = SETTINGS_COLUMNS + [k for k in settings if k not in SETTINGS_COLUMNS]
    entity_cols = [k for k in ("list_name", "label", "entity_id", "create_if", "update_if")
                   if any(k in e for e in spec["entities"])]
    about_rows = spec["about"]
    return {
        "survey": (SURVEY_COLUMNS, spec["survey"]),
        "choices": (CHOICE_COLUMNS, spec["choices"]),
        "settings": (settings_cols, [settings]),
        "entities": (entity_cols, spec["entities"]),
        "about": (list(about_rows[0]), about_rows[1:]),
    }


def build(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for make in FORMS:
        spec = make()
        wb = Workbook()
        wb.remove(wb.active)
        for title, (header, rows) in form_sheets(spec).items():
            _write_sheet(wb, title, header, rows)
        path = out_dir / spec["file"]
        wb.save(path)
        written.append(path)
    return written


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else OUT_DIR
    for path in build(out):
        print(path)


if __name__ == "__main__":
    main()
