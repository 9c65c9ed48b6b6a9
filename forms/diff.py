"""What changed between two versions of a form: questions added, removed, moved and changed.

Works on two XForms (bytes), so any two versions compare the same way whether they came from an
XLSForm or an XForm upload. Questions are matched by their path in the instance, then by name
(a question moved into another group keeps its name). For a question in both versions it reports
changes of type, label and hint per language, constraint (and its message), relevance, required,
read-only, calculation, choices (added, removed, relabelled per language) and CareFile's
sensitive flag (``bind::carefile:sensitive``).

    changes = diff_xforms(old_xml, new_xml)
    for c in changes: c.kind, c.name, c.path, c.details
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from forms._xml import NS_JR, NS_XFORMS, NS_XHTML, local_attr, safe_parse
from forms.schema import Field, FormSchema
from forms.xform import parse_xform

KINDS = ("added", "removed", "moved", "changed")


@dataclass(frozen=True)
class Detail:
    """One aspect of a question that differs. ``language`` is set for labels, hints and choice labels."""

    aspect: str  # type, label, hint, constraint, constraint_message, relevant, required, readonly,
    #              calculate, choice_added, choice_removed, choice_label, sensitive
    old: str | None
    new: str | None
    language: str | None = None
    choice: str | None = None  # the choice value, for choice_* aspects


@dataclass(frozen=True)
class Change:
    """A question (or group, repeat) that was added, removed, moved or changed."""

    kind: str
    name: str
    path: str  # the path in the newer version (the older one for removed questions)
    type: str  # XLSForm type in the newer version (older for removed)
    labels: dict[str, str]
    old_path: str | None = None
    details: tuple[Detail, ...] = field(default_factory=tuple)
    moved: bool = False  # also moved (for "changed" questions whose position changed too)


def xls_type(f: Field) -> str:
    """The XLSForm type a form author wrote, read back from the XForm."""
    if f.type in ("repeat", "group"):
        return f"begin {f.type}"
    if f.control is None:
        return "calculate" if f.calculate else "hidden"
    if f.control == "select1":
        return "select_one"
    if f.control == "select":
        return "select_multiple"
    if f.control == "trigger":
        return "acknowledge"
    if f.type == "binary":
        media = (f.mediatype or "").split("/")[0]
        return media if media in ("image", "audio", "video") else "file"
    if f.readonly and f.type == "string":
        return "note"
    return {"string": "text", "int": "integer"}.get(f.type, f.type)


def _constraints(xml: bytes) -> dict[str, tuple[str | None, str | None]]:
    """Constraint expression and (default-language) message per bound path."""
    doc = safe_parse(xml)
    out: dict[str, tuple[str | None, str | None]] = {}
    head = doc.find(f"{{{NS_XHTML}}}head")
    model = head.find(f"{{{NS_XFORMS}}}model") if head is not None else None
    if model is None:
        return out
    for bind in model.iter(f"{{{NS_XFORMS}}}bind", "bind"):
        path = bind.get("nodeset")
        if not path:
            continue
        message = bind.get(f"{{{NS_JR}}}constraintMsg") or local_attr(bind, "constraintMsg")
        out[path] = (bind.get("constraint"), message)
    return out


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _questions(schema: FormSchema) -> list[Field]:
    return [f for f in schema.fields if not f.meta]


def _language_map(schema: FormSchema, labels: dict[str, str]) -> dict[str, str]:
    return {(lang or schema.default_language or ""): text for lang, text in labels.items()}


def _detail_labels(aspect: str, old: dict[str, str], new: dict[str, str]) -> list[Detail]:
    out = []
    for lang in sorted(set(old) | set(new)):
        if old.get(lang) != new.get(lang):
            out.append(Detail(aspect, old.get(lang), new.get(lang), language=lang or None))
    return out


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _compare(a: Field, b: Field, ca: tuple[str | None, str | None], cb: tuple[str | None, str | None],
             sa: FormSchema, sb: FormSchema) -> list[Detail]:
    details: list[Detail] = []
    if xls_type(a) != xls_type(b) or (a.type != b.type and a.type not in ("group", "repeat")):
        ta, tb = xls_type(a), xls_type(b)
        if ta == tb:
            ta, tb = f"{ta} ({a.type})", f"{tb} ({b.type})"
        details.append(Detail("type", ta, tb))
    details += _detail_labels("label", _language_map(sa, a.labels), _language_map(sb, b.labels))
    details += _detail_labels("hint", _language_map(sa, a.hints), _language_map(sb, b.hints))
    for aspect, old, new in (("constraint", ca[0], cb[0]), ("constraint_message", ca[1], cb[1]),
                             ("relevant", a.relevant, b.relevant), ("calculate", a.calculate, b.calculate)):
        if (old or None) != (new or None):
            details.append(Detail(aspect, old or None, new or None))
    for aspect, vold, vnew in (("required", a.required, b.required), ("readonly", a.readonly, b.readonly),
                               ("sensitive", a.sensitive, b.sensitive)):
        if aspect == "readonly" and xls_type(b) == "note":
            continue  # a note is read-only by nature; its type change says it already
        if vold != vnew:
            details.append(Detail(aspect, _yes(vold), _yes(vnew)))
    if (a.itemset_file or None) != (b.itemset_file or None):
        details.append(Detail("choice_file", a.itemset_file, b.itemset_file))
    old_choices = {c.value: c for c in a.choices}
    new_choices = {c.value: c for c in b.choices}
    for value, choice in new_choices.items():
        if value not in old_choices:
            label = next(iter(choice.labels.values()), None)
            details.append(Detail("choice_added", None, label, choice=value))
    for value, choice in old_choices.items():
        if value not in new_choices:
            label = next(iter(choice.labels.values()), None)
            details.append(Detail("choice_removed", label, None, choice=value))
        else:
            for d in _detail_labels("choice_label", _language_map(sa, choice.labels),
                                    _language_map(sb, new_choices[value].labels)):
                details.append(Detail(d.aspect, d.old, d.new, language=d.language, choice=value))
    return details


def _longest_increasing(seq: list[int]) -> set[int]:
    """Indices of one longest strictly increasing subsequence of seq (patience sorting)."""
    tails: list[int] = []
    tails_idx: list[int] = []
    prev = [-1] * len(seq)
    for i, x in enumerate(seq):
        k = bisect.bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
            tails_idx.append(i)
        else:
            tails[k] = x
            tails_idx[k] = i
        prev[i] = tails_idx[k - 1] if k > 0 else -1
    keep: set[int] = set()
    i = tails_idx[-1] if tails_idx else -1
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return keep


def diff_schemas(old: FormSchema, new: FormSchema, old_xml: bytes | None = None,
                 new_xml: bytes | None = None) -> list[Change]:
    """The changes from old to new, in the order of the newer form (removed questions last).

    Pass the XForms too to compare constraints (the schema does not keep them)."""
    cons_old = _constraints(old_xml) if old_xml else {}
    cons_new = _constraints(new_xml) if new_xml else {}
    qa, qb = _questions(old), _questions(new)
    by_path_a = {f.path: f for f in qa}
    names_a: dict[str, list[Field]] = {}
    for f in qa:
        names_a.setdefault(f.name, []).append(f)
    names_b: dict[str, int] = {}
    for f in qb:
        names_b[f.name] = names_b.get(f.name, 0) + 1
    matched: dict[str, Field] = {}  # new path -> old field
    used: set[str] = set()
    for f in qb:
        if f.path in by_path_a:
            matched[f.path] = by_path_a[f.path]
            used.add(f.path)
    for f in qb:
        if f.path in matched:
            continue
        same_name = [g for g in names_a.get(f.name, []) if g.path not in used]
        if len(same_name) == 1 and names_b[f.name] == 1 and len(names_a[f.name]) == 1:
            matched[f.path] = same_name[0]
            used.add(same_name[0].path)

    # Moved: another parent, or out of order among the questions that stayed in the same parent.
    order_a = {f.path: i for i, f in enumerate(qa)}
    moved: set[str] = set()
    siblings: dict[str, list[Field]] = {}
    for f in qb:
        g = matched.get(f.path)
        if g is None:
            continue
        if _parent(g.path) != _parent(f.path) and not _renamed_parent(g, f, matched):
            moved.add(f.path)
        else:
            siblings.setdefault(_parent(f.path), []).append(f)
    for group in siblings.values():
        seq = [order_a[matched[f.path].path] for f in group]
        keep = _longest_increasing(seq)
        moved.update(f.path for i, f in enumerate(group) if i not in keep)

    changes: list[Change] = []
    for f in qb:
        g = matched.get(f.path)
        labels = _language_map(new, f.labels)
        if g is None:
            changes.append(Change("added", f.name, f.path, xls_type(f), labels))
            continue
        details = _compare(g, f, cons_old.get(g.path, (None, None)), cons_new.get(f.path, (None, None)), old, new)
        old_path = g.path if g.path != f.path else None
        if details:
            changes.append(Change("changed", f.name, f.path, xls_type(f), labels, old_path, tuple(details),
                                  moved=f.path in moved))
        elif f.path in moved:
            changes.append(Change("moved", f.name, f.path, xls_type(f), labels, old_path))
    for g in qa:
        if g.path not in used:
            changes.append(Change("removed", g.name, g.path, xls_type(g), _language_map(old, g.labels)))
    return changes


def _renamed_parent(old: Field, new: Field, matched: dict[str, Field]) -> bool:
    """The question stayed put but its group was renamed (the group's own change says so)."""
    parent = matched.get(_parent(new.path))
    return parent is not None and parent.path == _parent(old.path)


def diff_xforms(old_xml: bytes, new_xml: bytes) -> list[Change]:
    """The changes between two XForms (see :func:`diff_schemas`). Raises XFormError on bad XML."""
    return diff_schemas(parse_xform(old_xml), parse_xform(new_xml), old_xml, new_xml)


__all__ = ["KINDS", "Change", "Detail", "diff_schemas", "diff_xforms", "xls_type"]
