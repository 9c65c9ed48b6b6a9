"""The catalogue of problems (app/problems.py): one meaning per code, no code written anywhere else, and
every raise site fills exactly the fields its message names."""
from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from app import problems
from app.errors import Problem

APP = Path(__file__).resolve().parents[2] / "app"
CODE = re.compile(r"^\d{3}\.\d{1,3}$")
# Tables of Chinese sentences keyed by code, for Collect (their keys must be codes of the catalogue).
CODE_TABLES = {"openrosa/render.py", "openrosa/draft.py"}


def kinds() -> dict[str, problems.Kind]:
    return {name: k for name, k in vars(problems).items() if isinstance(k, problems.Kind)}


def _sources():
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(APP).as_posix()
        if rel.startswith("migrations/") or rel in ("problems.py", "errors.py"):
            continue
        yield rel, ast.parse(path.read_text(encoding="utf-8"))


def test_each_code_means_one_thing():
    by_code: dict[str, list[str]] = {}
    for name, kind in kinds().items():
        assert CODE.match(kind.code), f"{name}: '{kind.code}' is not a code like 404.1"
        assert int(kind.code.split(".")[0]) == kind.status, f"{name}: status {kind.status} for code {kind.code}"
        by_code.setdefault(kind.code, []).append(name)
    shared = {code: names for code, names in by_code.items() if len(names) > 1}
    unexplained = sorted(set(shared) - set(problems.SHARED))
    assert not unexplained, ("codes used by several kinds without one general meaning in SHARED: "
                             + "; ".join(f"{c}: {', '.join(shared[c])}" for c in unexplained))
    stale = sorted(set(problems.SHARED) - set(shared))
    assert not stale, f"SHARED names codes that only one kind uses (or none): {stale}"
    templates: dict[str, str] = {}
    for name, kind in kinds().items():
        if kind.template == "{detail}":  # relays a message made elsewhere (a parser's, a translated field's)
            continue
        assert kind.template not in templates, f"{name} and {templates[kind.template]} have the same message"
        templates[kind.template] = name


def test_no_code_written_outside_the_catalogue():
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
                if rel in CODE_TABLES:
                    continue
                found.append(f"app/{rel}:{node.lineno} '{node.value}'")
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Problem":
                found.append(f"app/{rel}:{node.lineno} Problem(...) built by hand")
    assert not found, "name a kind of app/problems.py instead:\n" + "\n".join(found)


def test_collect_sentences_are_keyed_by_catalogue_codes():
    codes = {k.code for k in kinds().values()}
    for rel in CODE_TABLES:
        tree = ast.parse((APP / rel).read_text(encoding="utf-8"))
        keys = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and CODE.match(n.value)]
        assert keys, rel
        assert not set(keys) - codes, f"app/{rel} has Chinese for codes no kind has: {sorted(set(keys) - codes)}"


def _fields(template: str) -> set[str]:
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}


def test_every_raise_site_fills_the_message():
    catalogue = kinds()
    wrong = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "problems"):
                continue
            kind = catalogue.get(node.func.attr)
            if kind is None:
                if node.func.attr.isupper():
                    wrong.append(f"app/{rel}:{node.lineno} problems.{node.func.attr} does not exist")
                continue
            given = {k.arg for k in node.keywords}
            if None in given or node.args:
                wrong.append(f"app/{rel}:{node.lineno} pass the fields by name")
            elif given != _fields(kind.template):
                wrong.append(f"app/{rel}:{node.lineno} {node.func.attr} gets {sorted(given)}, its message names "
                             f"{sorted(_fields(kind.template))}")
    assert not wrong, "\n".join(wrong)


def test_a_kind_makes_a_problem_a_page_can_translate():
    problem = problems.NOT_A_VILLAGE_CODE(village="54x")
    assert isinstance(problem, Problem)
    assert (problem.status, problem.code) == (400, problems.NOT_A_VILLAGE_CODE.code)
    assert problem.message.startswith("'54x' is not a village code.")
    assert problem.translated(lambda text: text.replace("is not a village code", "不是村代码")).startswith(
        "'54x' 不是村代码")
