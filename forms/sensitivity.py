"""Which nodes of a form hold identifying (sensitive) data.

A question is sensitive when the XLSForm marks it (survey column ``bind::carefile:sensitive`` =
``yes``). A calculation is sensitive too when its expression reads a sensitive node — the
care-file registration builds the child's entity label from the child's name, so the label
is as identifying as the name — or when it reads the label of an entity list whose labels are
sensitive (the update forms show ``instance('children')/root/item[...]/label``). The rule is
applied transitively, so a chain of calculations cannot launder a name.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

from ._xml import local, safe_parse
from .schema import FormSchema

_INSTANCE_LABEL = re.compile(r"instance\(\s*['\"]([^'\"]+)['\"]\s*\)[^,;]*?/label\b")


def sensitive_paths(schema: FormSchema, sensitive_label_lists: Iterable[str] = ()) -> frozenset[str]:
    """Absolute paths of the nodes whose values must be masked for people who may not see them."""
    cached: dict[tuple[str, ...], frozenset[str]] = schema.__dict__.setdefault("_sensitive_cache", {})
    key = tuple(sorted(sensitive_label_lists))
    hit = cached.get(key)
    if hit is not None:
        return hit
    lists = set(key)
    marked = {f.path for f in schema.fields if f.sensitive}
    if schema.entity is not None and schema.entity.dataset in lists:
        # The entity block's label names a child of a list whose labels are built from sensitive data, whatever
        # this form puts there (an update form's phone may send the label it shows).
        marked.add(f"/{schema.root}/meta/entity/label")
    calcs = [(f.path, f.calculate) for f in schema.fields if f.calculate and f.path not in marked]
    for path, expr in calcs:
        if any(m.group(1) in lists for m in _INSTANCE_LABEL.finditer(expr or "")):
            marked.add(path)
    changed = True
    while changed:
        changed = False
        for path, expr in calcs:
            if path in marked or not expr:
                continue
            if any(_reads(expr, p) for p in marked):
                marked.add(path)
                changed = True
    result = frozenset(marked)
    cached[key] = result
    return result


def _reads(expr: str, path: str) -> bool:
    """Whether the XPath expression refers to the node at path (absolute, as pyxform writes ${x})."""
    start = expr.find(path)
    while start != -1:
        end = start + len(path)
        if end == len(expr) or not (expr[end].isalnum() or expr[end] in "_-."):
            return True
        start = expr.find(path, end)
    return False


def label_is_sensitive(schema: FormSchema, sensitive_label_lists: Iterable[str] = ()) -> bool:
    """Whether the entity label this form writes is derived from sensitive data."""
    ent = schema.entity
    if ent is None or not ent.label_path:
        return False
    return ent.label_path in sensitive_paths(schema, sensitive_label_lists)


def instance_name_is_sensitive(schema: FormSchema, sensitive_label_lists: Iterable[str] = ()) -> bool:
    """Whether the form's instance name (settings ``instance_name``) is built from sensitive data: it reads a
    sensitive node, or the label of a list whose labels are sensitive."""
    expr = schema.instance_name or ""
    if not expr:
        return False
    lists = set(sensitive_label_lists)
    if any(m.group(1) in lists for m in _INSTANCE_LABEL.finditer(expr)):
        return True
    return any(_reads(expr, p) for p in sensitive_paths(schema, lists))


def sensitive_properties(schema: FormSchema, sensitive_label_lists: Iterable[str] = ()) -> frozenset[str]:
    """Entity properties this form fills from sensitive nodes."""
    ent = schema.entity
    if ent is None:
        return frozenset()
    paths = sensitive_paths(schema, sensitive_label_lists)
    return frozenset(prop for path, prop in ent.properties.items() if path in paths)


def mask_xml(xml: bytes, paths: frozenset[str] | set[str], mask: str) -> bytes:
    """The submission XML with the text of every leaf node at one of *paths* replaced by *mask*."""
    root = safe_parse(xml)
    stack: list[tuple[etree._Element, str]] = [(root, "/" + local(root))]
    while stack:
        el, path = stack.pop()
        children = [c for c in el if isinstance(c.tag, str)]
        if not children:
            if path in paths and (el.text or "").strip():
                el.text = mask
            continue
        stack.extend((c, f"{path}/{local(c)}") for c in children)
    out: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return out
