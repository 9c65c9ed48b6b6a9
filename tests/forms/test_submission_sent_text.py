"""extract: a select-multiple's text is kept as submitted only when it is not its choices joined by one space."""
from __future__ import annotations

from forms import extract, parse_submission
from forms.submission import SENT_TEXT, without_sent_text
from tests.forms.conftest import schema_of

MD = """
| settings |
| | form_id | version |
| | picks | 1 |

| survey |
| | type | name | label |
| | select_multiple ab | colors | Colors |
| | begin group | grp | Group |
| | select_multiple ab | more | More |
| | end group | | |
| | text | note | Note |
| | begin repeat | rounds | Rounds |
| | select_multiple ab | shades | Shades |
| | end repeat | | |

| choices |
| | list_name | name | label |
| | ab | a | A |
| | ab | b | B |
"""
SCHEMA = schema_of(MD)


def values(body: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    _env, tree = parse_submission(f'<data id="picks" version="1">{body}</data>'.encode())
    data = extract(tree, SCHEMA)
    return data.values, [r.values for r in data.repeat_rows]


def test_canonical_answers_add_nothing() -> None:
    main, rows = values("<colors>a b</colors><grp><more>b</more></grp><note> a  b</note>"
                        "<rounds><shades>a</shades></rounds><rounds><shades/></rounds>")
    assert main == {"colors": ["a", "b"], "grp/more": ["b"], "note": " a  b"}  # a text question is text
    assert rows == [{"shades": ["a"]}, {"shades": None}]


def test_other_spacing_is_kept_by_key_in_its_own_values() -> None:
    main, rows = values("<colors> a  b</colors><grp><more>b\n</more></grp>"
                        "<rounds><shades>a\tb</shades></rounds><rounds><shades>a b</shades></rounds>")
    assert main == {"colors": ["a", "b"], "grp/more": ["b"], SENT_TEXT: {"colors": " a  b", "grp/more": "b\n"}}
    assert rows == [{"shades": ["a", "b"], SENT_TEXT: {"shades": "a\tb"}}, {"shades": ["a", "b"]}]
    assert without_sent_text(main) == {"colors": ["a", "b"], "grp/more": ["b"]}
    assert without_sent_text(rows[1]) is rows[1]  # nothing to take out: no copy


def test_only_spaces_is_kept_and_a_later_canonical_answer_wins() -> None:
    main, _ = values("<colors>  </colors>")
    assert main == {"colors": [], SENT_TEXT: {"colors": "  "}}
    main, _ = values("<colors> a</colors><colors>a</colors>")  # the same question twice: the last one counts
    assert main == {"colors": ["a"]}
