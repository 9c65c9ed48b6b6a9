"""Read an ODK XForm into a :class:`FormSchema` the rest of CareFile can use.

The schema lists every node of the primary instance (document order, templates
de-duplicated), with its bind type, labels in every itext language, choices, entity
``saveto`` property and CareFile's own *sensitive* flag; plus the media/CSV attachments
the form needs, the entity declaration and the submission settings.

Sensitive questions
-------------------
An XLSForm author marks a question as sensitive with the survey column
``bind::carefile:sensitive`` and the value ``yes`` (``true``/``1``/``true()`` also work).
pyxform copies ``bind::`` columns verbatim onto the question's ``<bind>``, so the XForm
carries ``carefile:sensitive="yes"`` in the namespace ``https://carefile.example/xforms``
(:data:`CAREFILE_NAMESPACE`); :func:`forms.xlsform.compile_xlsform` declares that
namespace automatically when the author did not add it under ``settings`` ``namespaces``.
ODK Collect ignores the attribute.  Any attribute with local name ``sensitive`` whose
prefix is ``carefile`` or whose namespace is CareFile's is honoured.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from lxml import etree

from forms._xml import (
    NS_CAREFILE,
    NS_ENTITIES,
    NS_XFORMS,
    NS_XHTML,
    BadXMLError,
    UnsafeXMLError,
    elements,
    local,
    local_attr,
    safe_parse,
)
from forms.schema import Choice, EntityDeclaration, Field, FormAttachment, FormSchema

CAREFILE_NAMESPACE = NS_CAREFILE

_CONTROLS = {"input", "select1", "select", "upload", "trigger", "range", "rank",
             "secret", "textarea"}
_TRUTHY = {"yes", "true", "1", "true()", "y"}
_JR_URL = re.compile(r"jr://(images|audio|video|file-csv|file)/([^\s'\"<>)]+)")
# A value that is one whole jr:// URL (itext media, instance src) may contain spaces: "村徽 1.png".
_JR_WHOLE = re.compile(r"jr://(images|audio|video|file-csv|file)/([^'\"<>]+)")
_ITEXT_REF = re.compile(r"""jr:itext\(\s*['"]([^'"]+)['"]\s*\)""")
_INSTANCE_REF = re.compile(r"""instance\(\s*['"]([^'"]+)['"]\s*\)""")


class XFormError(ValueError):
    """The document is not a usable XForm."""


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _norm_type(raw: str | None) -> str:
    if not raw:
        return "string"
    t = raw.split(":", 1)[-1] if ":" in raw else raw
    return {"integer": "int", "dateTime": "dateTime", "datetime": "dateTime"}.get(t, t)


def _text_of(node: etree._Element) -> str:
    """Text of a label/value node; ``<output value="/a/b"/>`` becomes ``${b}``."""
    parts: list[str] = [node.text or ""]
    for child in node:
        if isinstance(child.tag, str) and local(child) == "output":
            ref = (child.get("value") or "").strip()
            parts.append("${" + ref.rstrip("/").rsplit("/", 1)[-1] + "}")
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


class _Itext:
    def __init__(self, model: etree._Element) -> None:
        self.languages: list[str] = []
        self.default: str | None = None
        self.texts: dict[str, dict[str, str]] = {}  # id -> lang -> text
        itext = model.find(_q(NS_XFORMS, "itext"))
        if itext is None:
            return
        for tr in itext.findall(_q(NS_XFORMS, "translation")):
            lang = tr.get("lang") or ""
            self.languages.append(lang)
            if (tr.get("default") or "").strip() in ("true()", "true"):
                self.default = lang
            for text in tr.findall(_q(NS_XFORMS, "text")):
                tid = text.get("id") or ""
                for value in text.findall(_q(NS_XFORMS, "value")):
                    if value.get("form") in (None, "long"):
                        self.texts.setdefault(tid, {})[lang] = _text_of(value)
                        break

    def get(self, tid: str) -> dict[str, str]:
        return dict(self.texts.get(tid, {}))


def _labels(node: etree._Element | None, itext: _Itext, tag: str = "label") -> dict[str, str]:
    if node is None:
        return {}
    label = node.find(_q(NS_XFORMS, tag))
    if label is None:
        return {}
    ref = label.get("ref") or ""
    match = _ITEXT_REF.search(ref)
    if match:
        return itext.get(match.group(1))
    text = _text_of(label)
    return {"": text} if text else {}


def _abs(ref: str, context: str) -> str:
    ref = ref.strip()
    if ref.startswith("/"):
        return ref.rstrip("/")
    if ref in ("", "."):
        return context
    return f"{context}/{ref}".rstrip("/")


def _walk_body(node: etree._Element, context: str, controls: dict[str, etree._Element],
               repeats: list[str]) -> None:
    for child in elements(node):
        name = local(child)
        if name == "repeat":
            path = _abs(child.get("nodeset") or "", context)
            repeats.append(path)
            _walk_body(child, path, controls, repeats)
        elif name == "group":
            ref = child.get("ref")
            path = _abs(ref, context) if ref else context
            if ref:
                controls.setdefault(path, child)
            _walk_body(child, path, controls, repeats)
        elif name in _CONTROLS:
            ref = child.get("ref") or child.get("bind") or ""
            controls.setdefault(_abs(ref, context), child)


def _secondary_instances(model: etree._Element) -> dict[str, etree._Element]:
    found: dict[str, etree._Element] = {}
    for inst in model.findall(_q(NS_XFORMS, "instance"))[1:]:
        iid = inst.get("id")
        if iid:
            found[iid] = inst
    return found


def _src_filename(src: str) -> str | None:
    match = _JR_WHOLE.fullmatch(src.strip())
    return match.group(2) if match else None


def _choices(control: etree._Element, itext: _Itext,
             instances: dict[str, etree._Element]) -> tuple[tuple[Choice, ...], str | None]:
    items: list[Choice] = []
    for item in control.findall(_q(NS_XFORMS, "item")):
        value_node = item.find(_q(NS_XFORMS, "value"))
        value = (value_node.text or "").strip() if value_node is not None else ""
        items.append(Choice(value=value, labels=_labels(item, itext)))
    itemset = control.find(_q(NS_XFORMS, "itemset"))
    if itemset is None:
        return tuple(items), None
    match = _INSTANCE_REF.search(itemset.get("nodeset") or "")
    inst = instances.get(match.group(1)) if match else None
    if inst is None:
        return tuple(items), None
    src = inst.get("src")
    if src:
        return tuple(items), _src_filename(src)
    value_el = itemset.find(_q(NS_XFORMS, "value"))
    label_el = itemset.find(_q(NS_XFORMS, "label"))
    value_ref = (value_el.get("ref") if value_el is not None else None) or "name"
    label_ref = (label_el.get("ref") if label_el is not None else None) or "label"
    itext_label = re.fullmatch(r"\s*jr:itext\(\s*([\w.-]+)\s*\)\s*", label_ref)
    data_root = elements(inst)
    for item in (elements(data_root[0]) if data_root else []):
        kids = {local(k): (k.text or "").strip() for k in elements(item)}
        value = kids.get(value_ref.strip(), "")
        if itext_label:
            labels = itext.get(kids.get(itext_label.group(1), ""))
        else:
            text = kids.get(label_ref.strip(), "")
            labels = {"": text} if text else {}
        items.append(Choice(value=value, labels=labels))
    return tuple(items), None


def _attachments(doc: etree._Element) -> tuple[FormAttachment, ...]:
    seen: dict[str, FormAttachment] = {}

    def add(scheme: str, filename: str) -> None:
        if not filename or filename in seen:
            return
        suffix = PurePosixPath(filename).suffix.lower()
        kind = {"images": "image", "audio": "audio", "video": "video"}.get(scheme)
        if kind is None:
            kind = {".csv": "csv", ".xml": "xml", ".geojson": "geojson"}.get(suffix, "file")
        # A CSV named after an entity list may be that list (select_one_from_file).
        dataset = PurePosixPath(filename).stem \
            if kind == "csv" and filename != "itemsets.csv" else None
        seen[filename] = FormAttachment(filename=filename, kind=kind, dataset=dataset)

    for node in doc.iter():
        if not isinstance(node.tag, str):
            continue
        for value in list(node.attrib.values()) + [node.text or ""]:
            whole = _JR_WHOLE.fullmatch(str(value).strip())
            for match in [whole] if whole else _JR_URL.finditer(str(value)):
                add(match.group(1), match.group(2))
        # select_one_external: pyxform's itemsets.csv, looked up through a query attr.
        if local(node) == "input" and node.get("query"):
            add("file-csv", "itemsets.csv")
    return tuple(seen.values())


def _is_sensitive(bind: etree._Element | None) -> bool:
    if bind is None:
        return False
    nsmap = bind.nsmap
    for key, value in bind.attrib.items():
        key = str(key)
        if not key.startswith("{") or key.rsplit("}", 1)[-1] != "sensitive":
            continue
        ns = key[1:].split("}", 1)[0]
        if ns == NS_CAREFILE or nsmap.get("carefile") == ns:
            return str(value).strip().lower() in _TRUTHY
    return False


def _expr(bind: etree._Element | None, attr: str) -> str | None:
    if bind is None:
        return None
    return (bind.get(attr) or "").strip() or None


def _flag(value: str | None) -> bool:
    return bool(value) and (value or "").strip() not in ("false()", "false", "0", "no")


def parse_xform(xml: bytes) -> FormSchema:
    """Parse an XForm (bytes) into a :class:`FormSchema`.

    Raises :class:`XFormError` with a plain-words message if the bytes are not
    well-formed XML, carry a DOCTYPE, or lack the XForm structure (head/model/instance
    with an ``id`` on the primary instance root).
    """
    try:
        doc = safe_parse(xml)
    except UnsafeXMLError as err:
        raise XFormError("This XForm contains a DOCTYPE declaration, which is not allowed.") \
            from err
    except BadXMLError as err:
        raise XFormError(f"This file is not well-formed XML: {err}") from err
    head = doc.find(_q(NS_XHTML, "head"))
    model = head.find(_q(NS_XFORMS, "model")) if head is not None else None
    instance = model.find(_q(NS_XFORMS, "instance")) if model is not None else None
    if head is None or model is None or instance is None or not elements(instance):
        raise XFormError("This XML file is not an ODK XForm (no h:head/model/instance found).")
    data = elements(instance)[0]
    form_id = (data.get("id") or local_attr(data, "id") or "").strip()
    if not form_id:
        raise XFormError("This XForm has no form ID (the 'id' attribute of the main "
                         "instance is missing).")
    root = local(data)
    version = (data.get("version") or local_attr(data, "version") or "").strip()
    title_el = head.find(_q(NS_XHTML, "title"))
    title = _text_of(title_el) if title_el is not None else ""

    itext = _Itext(model)
    binds: dict[str, etree._Element] = {}
    for bind in model.findall(_q(NS_XFORMS, "bind")):
        nodeset = (bind.get("nodeset") or "").strip()
        if nodeset:
            binds.setdefault(_abs(nodeset, "/" + root), bind)
    controls: dict[str, etree._Element] = {}
    repeat_list: list[str] = []
    body = doc.find(_q(NS_XHTML, "body"))
    if body is not None:
        _walk_body(body, "/" + root, controls, repeat_list)
    repeats = set(repeat_list)
    instances = _secondary_instances(model)

    fields: list[Field] = []
    seen: set[str] = set()

    def visit(node: etree._Element, path: str, repeat: str | None) -> None:
        for child in elements(node):
            cpath = f"{path}/{local(child)}"
            if cpath in seen:
                continue  # jr:template twin of a repeat, already described
            seen.add(cpath)
            bind = binds.get(cpath)
            control = controls.get(cpath)
            ctl_name = local(control) if control is not None else None
            if cpath in repeats:
                ftype = "repeat"
            elif elements(child) or ctl_name == "group":
                ftype = "group"
            elif ctl_name in ("select", "select1"):
                ftype = ctl_name
            else:
                ftype = _norm_type(bind.get("type") if bind is not None else None)
            choices: tuple[Choice, ...] = ()
            itemset_file: str | None = None
            if control is not None and ctl_name in ("select", "select1", "rank"):
                choices, itemset_file = _choices(control, itext, instances)
            fields.append(Field(
                path=cpath,
                name=local(child),
                type=ftype,
                repeat=repeat,
                labels=_labels(control, itext),
                control=ctl_name if ctl_name in _CONTROLS else None,
                mediatype=control.get("mediatype") if control is not None else None,
                relevant=_expr(bind, "relevant"),
                required=_flag(bind.get("required")) if bind is not None else False,
                readonly=_flag(bind.get("readonly")) if bind is not None else False,
                calculate=_expr(bind, "calculate"),
                choices=choices,
                itemset_file=itemset_file,
                saveto=(bind.get(_q(NS_ENTITIES, "saveto")) or None)
                if bind is not None else None,
                sensitive=_is_sensitive(bind),
                meta=cpath.startswith(f"/{root}/meta/") or cpath == f"/{root}/meta",
                hints=_labels(control, itext, "hint"),
            ))
            visit(child, cpath, cpath if ftype == "repeat" else repeat)

    visit(data, "/" + root, None)

    def calc(path: str) -> str | None:
        return _expr(binds.get(path), "calculate")

    def declaration(container: str, meta: etree._Element, ent: etree._Element,
                    repeat: str | None) -> EntityDeclaration:
        ep = f"{container}/{local(meta)}/entity"
        label_el = next((e for e in elements(ent) if local(e) == "label"), None)
        return EntityDeclaration(
            dataset=(ent.get("dataset") or "").strip(),
            create=ent.get("create") is not None or f"{ep}/@create" in binds,
            update=ent.get("update") is not None or f"{ep}/@update" in binds,
            create_condition=calc(f"{ep}/@create"),
            label_path=f"{ep}/label" if label_el is not None else None,
            properties={f.path: f.saveto for f in fields if f.saveto and f.repeat == repeat},
            spec_version=model.get(_q(NS_ENTITIES, "entities-version")) or "",
            update_condition=calc(f"{ep}/@update"),
            id_calculate=calc(f"{ep}/@id"),
            repeat=repeat,
        )

    # The top-level meta/entity, then each repeat's (entities spec 2025.1: one entity per repeat instance).
    declarations: list[EntityDeclaration] = []
    found: set[str] = set()

    def find_entities(node: etree._Element, path: str) -> None:
        for child in elements(node):
            cpath = f"{path}/{local(child)}"
            if local(child) == "meta" and (path == "/" + root or path in repeats):
                ent = next((e for e in elements(child) if local(e) == "entity"), None)
                if ent is not None and path not in found:
                    found.add(path)
                    declarations.append(declaration(path, child, ent, None if path == "/" + root else path))
            elif elements(child):
                find_entities(child, cpath)

    find_entities(data, "/" + root)
    declarations.sort(key=lambda d: d.repeat is not None)  # the top-level one first
    entity = declarations[0] if declarations else None

    submission = model.find(_q(NS_XFORMS, "submission"))
    return FormSchema(
        form_id=form_id,
        version=version,
        title=title,
        root=root,
        fields=tuple(fields),
        repeats=tuple(dict.fromkeys(repeat_list)),
        attachments=_attachments(doc),
        entity=entity,
        entities=tuple(declarations),
        languages=tuple(itext.languages),
        default_language=itext.default,
        instance_name=calc(f"/{root}/meta/instanceName"),
        submission_url=(submission.get("action") or None) if submission is not None else None,
        encrypted=bool(submission is not None
                       and (submission.get("base64RsaPublicKey") or "").strip()),
    )


__all__ = ["CAREFILE_NAMESPACE", "Choice", "EntityDeclaration", "Field", "FormAttachment",
           "FormSchema", "XFormError", "parse_xform"]
