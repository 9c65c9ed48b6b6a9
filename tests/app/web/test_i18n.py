"""Every UI string in the templates and web modules has a Chinese translation."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from app.i18n import catalog

ROOT = Path(__file__).resolve().parents[3] / "app"
PATTERN = re.compile(r"""\b(?:_|t)\(\s*(["'])((?:(?!\1).)+)\1""")


def ui_strings() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "templates" / "web").rglob("*.html"):
        for _, text in PATTERN.findall(path.read_text(encoding="utf-8")):
            found.add(text)
    for path in (ROOT / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "t")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def test_every_ui_string_is_translated() -> None:
    strings = ui_strings()
    assert len(strings) > 15
    missing = sorted(s for s in strings if s not in catalog())
    assert missing == []


def test_translations_keep_placeholders() -> None:
    for en, zh in catalog().items():
        assert set(re.findall(r"{\w+}", en)) == set(re.findall(r"{\w+}", zh)), en


def test_one_english_text_has_one_chinese_text() -> None:
    """The catalogue is one namespace: the same English in two files must say the same in Chinese (else
    which one a page shows depends on the order the files are read)."""
    import json

    seen: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "translations").glob("*.json")):
        for en, zh in json.loads(path.read_text(encoding="utf-8")).items():
            seen.setdefault(en, {})[path.name] = zh
    differ = {en: files for en, files in seen.items() if len(set(files.values())) > 1}
    assert differ == {}
