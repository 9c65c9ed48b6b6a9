"""Administrative divisions (统计用区划代码): codes, names, children, search and validation.

Codes are national division codes: 2 province, 4 prefecture, 6 county, 9 township, 12 village
digits; a code's parent is its prefix. The table of Tibet (54; the 2023 edition, built by
scripts/build_regions.py from a pinned, checksummed source) ships in app/data/regions-54.csv.
`carefile regions load FILE` adds other provinces: the file (same `code,name` layout) is checked
and copied to <DATA_DIR>/regions/, which every process reads beside the shipped files (the
table is re-read when a file there changes).
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app import problems

_CODE = re.compile(r"^\d{2}(\d{2}(\d{2}(\d{3}(\d{3})?)?)?)?$")
LEVELS = {2: "province", 4: "prefecture", 6: "county", 9: "township", 12: "village"}
PARENT_LENGTH = {4: 2, 6: 4, 9: 6, 12: 9}
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data"
LOADED_SUBDIR = "regions"

# Messages with a {value} placeholder, translated by the web pages (app/translations/places.json).
SHAPE_MESSAGE = problems.REGION_CODE_SHAPE.template
UNKNOWN_MESSAGE = problems.REGION_UNKNOWN.template


@dataclass(frozen=True)
class Region:
    code: str
    name: str

    @property
    def level(self) -> str:
        return LEVELS[len(self.code)]


@dataclass
class RegionTable:
    names: dict[str, str] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)

    def add(self, code: str, name: str) -> None:
        if code not in self.names:
            parent = code[:PARENT_LENGTH[len(code)]] if len(code) > 2 else ""
            self.children.setdefault(parent, []).append(code)
        self.names[code] = name

    def finish(self) -> RegionTable:
        for codes in self.children.values():
            codes.sort()
        return self


_lock = threading.Lock()
_cache: dict[tuple[object, ...], RegionTable] = {}
_data_dir: Path | None = None


def use_data_dir(data_dir: str | Path | None) -> None:
    """Where loaded provinces live (<DATA_DIR>/regions); set by create_app."""
    global _data_dir
    _data_dir = Path(data_dir) if data_dir else None


def _files() -> list[Path]:
    files = sorted(SHIPPED_DIR.glob("regions-*.csv"))
    if _data_dir is not None and (_data_dir / LOADED_SUBDIR).is_dir():
        files += sorted((_data_dir / LOADED_SUBDIR).glob("regions-*.csv"))
    return files


def _read(path: Path) -> Iterable[tuple[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            code, name = (row.get("code") or "").strip(), (row.get("name") or "").strip()
            if _CODE.match(code) and name:
                yield code, name


def table() -> RegionTable:
    """The division table: shipped files plus loaded ones (cached; re-read when a file changes)."""
    files = _files()
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        t = RegionTable()
        for path in files:
            for code, name in _read(path):
                t.add(code, name)
        _cache.clear()
        _cache[key] = t.finish()
        return t


def name(code: str | None) -> str | None:
    return table().names.get(code) if code else None


def exists(code: str) -> bool:
    return code in table().names


def lineage(code: str) -> list[Region]:
    """The code and its ancestors that the table knows, province first."""
    names = table().names
    out = [Region(code[:n], names[code[:n]]) for n in (2, 4, 6, 9, 12) if n <= len(code) and code[:n] in names]
    return out


def full_name(code: str | None, skip_province: bool = True) -> str | None:
    """'拉萨市 城关区 八廓街道 绕赛社区居委会' (None for an unknown code)."""
    if not code or not exists(code):
        return None
    parts = lineage(code)
    if skip_province and len(parts) > 1:
        parts = parts[1:]
    return " ".join(r.name for r in parts)


def children(code: str = "") -> list[Region]:
    """The places one level below code ("" → provinces), by code."""
    t = table()
    return [Region(c, t.names[c]) for c in t.children.get(code, [])]


def search(query: str, within: Iterable[str] | None = None, limit: int = 20,
           code_length: int | None = None) -> list[Region]:
    """Places whose code starts with query, or whose name contains it; larger places first.

    within: only places inside these codes; None = everywhere. code_length: only places of one level
    (12: villages).
    """
    q = query.strip()
    if not q:
        return []
    scope = list(within) if within is not None else None
    found: list[Region] = []
    for code, nm in table().names.items():
        if not (code.startswith(q) if q.isdigit() else q in nm):
            continue
        if scope is not None and not any(code.startswith(s) for s in scope):
            continue
        if code_length is not None and len(code) != code_length:
            continue
        found.append(Region(code, nm))
    found.sort(key=lambda r: (len(r.code), r.code))
    return found[:limit]


def code_error(code: str) -> str | None:
    """None for a real code; else a message template (with {value}) saying what is wrong."""
    if not _CODE.match(code):
        return SHAPE_MESSAGE
    if not exists(code):
        return UNKNOWN_MESSAGE
    return None


def validate_code(code: str) -> str:
    """The code (stripped) if it is a real place of the division table; else Problem 400."""
    code = code.strip()
    problem = code_error(code)
    if problem == SHAPE_MESSAGE:
        raise problems.REGION_CODE_SHAPE(value=code)
    if problem:
        raise problems.REGION_UNKNOWN(value=code)
    return code


def covers(user_codes: list[str], code: str | None) -> bool:
    """True when one of the user's region codes is a prefix of (or equal to) code."""
    if code is None:
        return False
    return any(code.startswith(c) for c in user_codes)


# The answers / entity properties that name where a record or a child is, most specific first.
REGION_KEYS = ("village", "township", "county", "prefecture")


def of_answers(values: dict[str, object]) -> str | None:
    """The most specific region code among a submission's answers (keys are paths relative to the
    root, so a `village` question inside a group counts too): village before township …"""
    found: dict[str, str] = {}
    for key, value in values.items():
        last = key.rsplit("/", 1)[-1]
        if last in REGION_KEYS and isinstance(value, str) and value.isdigit():
            found.setdefault(last, value)
    for k in REGION_KEYS:
        if k in found:
            return found[k]
    return None


_KEY_LENGTH = {"village": 12, "township": 9, "county": 6, "prefecture": 4}


def check_properties(data: dict[str, object]) -> None:
    """Problem 400 unless every region property given (`village`, `township`, `county`, `prefecture`; empty
    clears it) is a code of its level (its digits) in a county of the division table (a village or township
    the table lacks is accepted: village lists lag behind; phones pick from the table). Every write of an
    entity's properties that does not come from a phone checks them (a phone's answers are never refused:
    README "How submissions are handled")."""
    for key, length in _KEY_LENGTH.items():
        value = data.get(key)
        if value is None or value == "":
            continue
        text = str(value)
        if not (text.isascii() and text.isdigit() and len(text) == length):
            raise problems.ENTITY_REGION_PROPERTY_SHAPE(key=key, value=text[:40], length=length,
                                                        example="540102002001"[:length]).add(field=key, value=text[:40])
        known = text[:min(length, 6)]
        if code_error(known):
            raise problems.REGION_UNKNOWN(value=known).add(field=key, value=text)


def of_properties(data: dict[str, object]) -> str | None:
    """The most specific region code among an entity's properties (`village`, `township`, …)."""
    for key in REGION_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.isdigit():
            return value
    return None


def as_csv(rows: Iterable[tuple[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["code", "name"])
    w.writerows(rows)
    return buf.getvalue()


FORM_CSV = "regions.csv"


_csv_cache: dict[tuple[int, tuple[str, ...] | None], tuple[bytes, str]] = {}


def form_csv(scope: Iterable[str] | None = None) -> bytes:
    """The forms' attachment regions.csv: name, label, level, parent for every place below a province
    (the cascade's choice_filter reads level and parent).

    scope: only the places inside these codes, and the places above them (so the cascade can reach
    them): what a collector's phone gets.
    """
    return scoped_form_csv(scope)[0]


def scoped_form_csv(scope: Iterable[str] | None = None) -> tuple[bytes, str]:
    """form_csv(scope) and its md5 (cached per table and scope)."""
    t = table()
    codes = tuple(sorted(set(scope))) if scope is not None else None
    key = (id(t), codes)
    found = _csv_cache.get(key)
    if found is not None:
        return found
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "label", "level", "parent"])
    for code, nm in sorted(t.names.items()):
        if len(code) <= 2:
            continue
        if codes is not None and not any(code.startswith(c) or c.startswith(code) for c in codes):
            continue
        w.writerow([code, nm, LEVELS[len(code)], code[:PARENT_LENGTH[len(code)]]])
    data = buf.getvalue().encode("utf-8")
    if len(_csv_cache) > 256:
        _csv_cache.clear()
    _csv_cache[key] = (data, hashlib.md5(data, usedforsecurity=False).hexdigest())
    return _csv_cache[key]


@dataclass
class LoadReport:
    province: str
    path: Path
    counts: dict[str, int]
    replaced: bool


MAX_NAME = 100
_MARKUP = frozenset("<>{}\\`")


def name_problem(name: str) -> str | None:
    """Why a place name cannot be loaded, or None. Names reach web pages, phones (regions.csv), reports
    and spreadsheets: no markup, nothing a spreadsheet could run as a formula (a name starts with a letter
    or digit), no control characters."""
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if any(not ch.isprintable() for ch in name):
        return "contains control characters (tab, line break …)"
    if any(ch in _MARKUP for ch in name):
        return "contains markup characters (< > { } \\ `)"
    if not name[0].isalnum():
        return "must start with a letter or digit (a leading = + - @ is a spreadsheet formula)"
    return None


def load_file(data: bytes, data_dir: str | Path) -> LoadReport:
    """Check a division table of one province (`code,name`) and store it in <data_dir>/regions.

    Every code must have the right shape, a name, and a parent in the file (the province row
    itself included). A province that ships with CareFile cannot be replaced.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise problems.REGIONS_FILE_NOT_UTF8() from exc
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"code", "name"} <= {f.strip() for f in reader.fieldnames}:
        raise problems.REGIONS_FILE_HEADER()
    rows: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        code, nm = (row.get("code") or "").strip(), (row.get("name") or "").strip()
        if not _CODE.match(code):
            raise problems.REGIONS_FILE_BAD_CODE(line=line, code=code)
        if not nm:
            raise problems.REGIONS_FILE_NO_NAME(line=line, code=code)
        problem = name_problem(nm)
        if problem:
            raise problems.REGIONS_FILE_BAD_NAME(line=line, code=code, name=nm[:60], problem=problem)
        rows[code] = nm
    provinces = {c[:2] for c in rows}
    if len(provinces) != 1:
        raise problems.REGIONS_FILE_SEVERAL_PROVINCES(value=', '.join(sorted(provinces)) or 'none')
    province = provinces.pop()
    if province not in rows:
        raise problems.REGIONS_FILE_NO_PROVINCE(province=province)
    for code in rows:
        if len(code) > 2 and code[:PARENT_LENGTH[len(code)]] not in rows:
            raise problems.REGIONS_FILE_NO_PARENT(code=code, code2=code[:PARENT_LENGTH[len(code)]])
    if (SHIPPED_DIR / f"regions-{province}.csv").exists():
        raise problems.SHIPPED_PROVINCE(province=province)
    target_dir = Path(data_dir) / LOADED_SUBDIR
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"regions-{province}.csv"
    replaced = target.exists()
    tmp = target.with_suffix(".tmp")
    tmp.write_text(as_csv(sorted(rows.items())), encoding="utf-8")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(target)
    counts = {LEVELS[n]: sum(1 for c in rows if len(c) == n) for n in (2, 4, 6, 9, 12)}
    return LoadReport(province, target, counts, replaced)
