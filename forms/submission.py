"""Read an OpenRosa submission (the ``xml_submission_file`` part) safely.

:func:`parse_submission` checks size and safety and pulls out the envelope the server
needs before it knows the form (form id, version, instanceID, deprecatedID, instanceName,
the top-level ``meta/entity`` block).  :func:`extract` then uses the form's
:class:`~forms.xform.FormSchema` to turn the tree into typed values and repeat rows.

Strictness: unlike ODK Central (which tolerates some broken XML, such as a missing
closing root tag) we parse with lxml's recover mode **off**.  A submission that is not
well-formed XML is refused with code ``malformed``; the device keeps it and can send it
again, whereas silently "repairing" it could store a child's record with data missing.
DOCTYPE declarations are refused outright (``doctype``): they are never sent by ODK
clients and are the vehicle for XXE and entity-expansion attacks.

Element names are matched without namespaces (``orx:meta``, ``orx:version`` and an ``id``
attribute in any namespace are all understood), like Central's ``stripNamespacesFromPath``.
"""

from __future__ import annotations

import codecs
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from forms._xml import BadXMLError, UnsafeXMLError, elements, local, local_attr, safe_parse
from forms._xml import child as first_child
from forms.xform import EntityDeclaration, FormSchema


class SubmissionXMLError(ValueError):
    """The submission XML cannot be accepted; ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EntityBlock:
    """The ``meta/entity`` element of a submission."""

    dataset: str
    entity_id: str                 # id attribute exactly as sent
    create: bool
    update: bool
    base_version: int | None
    trunk_version: int | None
    branch_id: str | None
    label: str | None
    uuid: str | None = None        # entity_id without "uuid:", lower-case; None if not a UUID


@dataclass(frozen=True)
class Envelope:
    """What identifies a submission, read before the form is known."""

    form_id: str
    version: str
    instance_id: str | None
    deprecated_id: str | None
    instance_name: str | None
    entity: EntityBlock | None


@dataclass(frozen=True)
class RepeatRow:
    """One instance of a repeat group."""

    repeat: str
    index: int
    ordinal: int
    parent_index: int | None
    values: dict[str, object]


@dataclass(frozen=True)
class SubmissionData:
    """Typed contents of a submission, laid out by the form's schema."""

    values: dict[str, object]
    repeat_rows: tuple[RepeatRow, ...]
    attachments: tuple[str, ...]
    entity_properties: dict[str, object]
    encrypted_file: str | None = None  # encrypted submissions: the attachment holding the instance XML


class SubmissionTree:
    """Opaque handle on a parsed submission, produced by :func:`parse_submission`."""

    __slots__ = ("root",)

    def __init__(self, root: etree._Element) -> None:
        self.root = root


def _child(node: etree._Element | None, name: str) -> etree._Element | None:
    if node is None:
        return None
    return first_child(node, name)


def _text(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    text = (node.text or "").strip()
    return text or None


def _int(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value and value.strip() else None
    except ValueError:
        return None


def normalize_uuid(value: str | None) -> str | None:
    """``uuid:ABC...`` / ``ABC...`` → canonical lower-case UUID string, or None if invalid."""
    if not value:
        return None
    raw = value.strip()
    if raw.lower().startswith("uuid:"):
        raw = raw[5:]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


def _entity_block(meta: etree._Element | None) -> EntityBlock | None:
    ent = _child(meta, "entity")
    if ent is None:
        return None
    entity_id = (local_attr(ent, "id") or "").strip()
    branch = (local_attr(ent, "branchId") or "").strip()
    return EntityBlock(
        dataset=(local_attr(ent, "dataset") or "").strip(),
        entity_id=entity_id,
        create=_truthy(local_attr(ent, "create")),
        update=_truthy(local_attr(ent, "update")),
        base_version=_int(local_attr(ent, "baseVersion")),
        trunk_version=_int(local_attr(ent, "trunkVersion")),
        branch_id=branch or None,
        label=_text(_child(ent, "label")),
        uuid=normalize_uuid(entity_id),
    )


_DECLARATION = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def _as_utf8(xml: bytes) -> bytes:
    """The document as UTF-8 bytes, read in the encoding its XML declaration names.

    ODK clients write UTF-8; other tools may send ISO-8859-1, Windows-1252 or UTF-16. A byte-order
    mark wins over the declaration; no declaration means UTF-8. A declaration of a single-byte
    encoding on bytes that are valid UTF-8 with non-ASCII characters is read as UTF-8: such bytes
    are UTF-8 text mislabelled (a real Latin-1 text is almost never valid UTF-8), and reading them
    as declared would store every Chinese or Tibetan answer as mojibake. Raises
    :class:`SubmissionXMLError` ``encoding`` for an unknown encoding or bytes it cannot read.
    """
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if xml.startswith(bom):
            return _reencode(xml, codec, "the byte-order mark")
    found = _DECLARATION.match(xml.lstrip()[:200])
    if found is None:
        return xml  # UTF-8 by default; lxml reports bytes that are not
    declared = found.group(1).decode("ascii")
    try:
        name = codecs.lookup(declared).name
    except LookupError as err:
        raise SubmissionXMLError(
            "encoding", f"The submission is written in the encoding '{declared}', which this server cannot "
                        "read. Send it as UTF-8 (ODK Collect always does).") from err
    if name == "utf-8" or xml.isascii():
        return xml  # lxml reads it as declared; UTF-8 that is not is "malformed"
    if name == "ascii" or name.startswith(("iso8859", "cp125", "latin", "mac-")):  # single-byte encodings
        try:
            xml.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if not xml.isascii():
                return _reencode(xml, "utf-8", "its bytes (valid UTF-8 despite the declaration)")
    return _reencode(xml, name, f"its declaration ({declared})")


def _reencode(xml: bytes, codec: str, source: str) -> bytes:
    try:
        text = xml.decode(codec)
    except (UnicodeDecodeError, LookupError) as err:
        raise SubmissionXMLError(
            "encoding", f"The submission's characters do not match the encoding given by {source}. Send it "
                        "again from ODK Collect, or save it as UTF-8.") from err
    text = text.lstrip("\ufeff")
    # The text is UTF-8 now: say so, or lxml would decode it a second time as declared.
    text = re.sub(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""", r"\1\2UTF-8\2", text, count=1)
    return text.encode("utf-8")


def parse_submission(xml: bytes, *, max_bytes: int = 10 * 1024 * 1024
                     ) -> tuple[Envelope, SubmissionTree]:
    """Parse submission XML safely and read its envelope.

    Returns the :class:`Envelope` and a tree handle for :func:`extract`.  Raises
    :class:`SubmissionXMLError` with code ``too_large``, ``doctype``, ``malformed`` or
    ``no_form_id``, or ``encoding`` (see :func:`_as_utf8`: the XML declaration's encoding is honoured).
    """
    if len(xml) > max_bytes:
        raise SubmissionXMLError(
            "too_large", f"The submission is larger than {max_bytes // 1024} KB and was "
                         "not accepted. Send large photos as attachments, not inside the form.")
    try:
        root = safe_parse(_as_utf8(xml), declare_prefixes=True)  # `orx:` undeclared, as Central reads it
    except UnsafeXMLError as err:
        raise SubmissionXMLError(
            "doctype", "The submission contains a DOCTYPE declaration, which is not "
                       "allowed. It was not sent by ODK Collect; it was refused.") from err
    except BadXMLError as err:
        raise SubmissionXMLError(
            "malformed", "The submission is not complete, well-formed XML (it may have been "
                         "cut off while sending). Send it again from the phone.") from err
    form_id = (local_attr(root, "id") or "").strip()
    if not form_id:
        raise SubmissionXMLError(
            "no_form_id", "The submission does not say which form it belongs to (form ID "
                          "attribute missing). Send it again from ODK Collect.")
    meta = _child(root, "meta")
    instance_id = _text(_child(meta, "instanceID")) or _text(_child(root, "instanceID"))
    envelope = Envelope(
        form_id=form_id,
        version=(local_attr(root, "version") or "").strip(),
        instance_id=instance_id,
        deprecated_id=_text(_child(meta, "deprecatedID")),
        instance_name=_text(_child(meta, "instanceName")),
        entity=_entity_block(meta),
    )
    return envelope, SubmissionTree(root)


def _geo_point(text: str) -> list[float] | None:
    parts = text.split()
    if len(parts) < 2 or len(parts) > 4:
        return None
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return None
    if not all(math.isfinite(n) for n in nums):
        return None
    return nums


def _geojson(ftype: str, text: str) -> object:
    """ODK Central's GeoJSON for geo answers; None if *text* does not parse."""
    if ftype == "geopoint":
        nums = _geo_point(text)
        if nums is None:
            return None
        point: dict[str, object] = {"type": "Point", "coordinates": [nums[1], nums[0], *nums[2:3]]}
        # the text as submitted: CSV exports write each piece as ODK sent it (`5.50`, not 5.5), as Central
        point["properties"] = {"accuracy": nums[3], "odk": text} if len(nums) > 3 else {"odk": text}
        return point
    points = [_geo_point(p) for p in text.split(";") if p.strip()]
    if not points or any(p is None for p in points):
        return None
    coords = [[p[1], p[0], *p[2:3]] for p in points if p is not None]
    # The text as submitted is kept beside the coordinates: GeoJSON drops each point's accuracy and
    # the number formatting, and CSV exports write traces and shapes as ODK sent them (as Central).
    raw = {"odk": text}
    if ftype == "geotrace":
        return {"type": "LineString", "coordinates": coords, "properties": raw}
    return {"type": "Polygon", "coordinates": [coords], "properties": raw}


# A select-multiple answer is stored parsed, as the list of its choices (`"a b"` → `["a", "b"]`): every reader
# of answers (OData, reports, the child file, entity properties, dashboards, redaction, retention, the JSON
# export) works on that list. When the text as submitted is not the choices joined by one space (a leading,
# trailing or doubled space, a tab, a line break: `" a  b"`), it is kept beside the answers under this key,
# by the answer's key in the same values (the main values or a repeat row's):
#     {"colors": ["a", "b"], "grp/more": ["c"], "@odk": {"colors": " a  b"}}
# so that CSV exports write it as sent, as ODK Central does. An answer sent in the canonical form (the
# normal case) adds nothing. No question can be named `@odk` (not an XML name). Readers that look answers up
# by key never meet it; the server's readers that list every key get the values without it
# (`without_sent_text`, applied where answers are masked: app/services/access Redactor.values), and retention
# removes an entry with its answer.
SENT_TEXT = "@odk"


def without_sent_text(values: dict[str, Any]) -> dict[str, Any]:
    """*values* without the select-multiples' texts as submitted (a copy only when there are any)."""
    if SENT_TEXT not in values:
        return values
    return {k: v for k, v in values.items() if k != SENT_TEXT}


def typed_value(ftype: str | None, text: str | None) -> object:
    """Convert answer *text* by XForm type; keep the raw string when it does not parse."""
    if text is None or text == "":
        return None
    stripped = text.strip()
    try:
        if ftype == "int":
            return int(stripped)
        if ftype == "decimal":
            number = float(stripped)
            return number if math.isfinite(number) else text
    except ValueError:
        return text
    if ftype == "boolean":
        low = stripped.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        return text
    if ftype == "select":
        return stripped.split()
    if ftype in ("geopoint", "geotrace", "geoshape"):
        geo = _geojson(ftype, stripped)
        return geo if geo is not None else text
    return text


def _keep_sent_text(values: dict[str, object], key: str, text: str, choices: list[str]) -> None:
    """Keep a select-multiple's *text* under SENT_TEXT when it is not its *choices* joined by one space."""
    if text != " ".join(choices):
        sent = values.get(SENT_TEXT)
        if not isinstance(sent, dict):
            sent = values[SENT_TEXT] = {}
        sent[key] = text
    elif SENT_TEXT in values:  # the same question sent again in canonical form: the later answer counts
        sent = values[SENT_TEXT]
        if isinstance(sent, dict):
            sent.pop(key, None)
            if not sent:
                del values[SENT_TEXT]


def _is_template(node: etree._Element) -> bool:
    return local_attr(node, "template") is not None


def extract(tree: SubmissionTree | etree._Element, schema: FormSchema) -> SubmissionData:
    """Lay a parsed submission out by *schema*: typed main values, repeat rows, files.

    Keys are paths relative to the root (main row) or to the repeat node (repeat rows);
    groups flatten to ``grp/q``.  Elements the schema does not know are kept as strings;
    values that do not parse as their type are kept as the raw string.
    """
    root = tree.root if isinstance(tree, SubmissionTree) else tree
    rows: list[RepeatRow] = []
    main: dict[str, object] = {}
    files: list[str] = []
    repeats = set(schema.repeats)
    index = schema._index()
    audit_path = f"/{schema.root}/meta/audit"

    def walk(node: etree._Element, spath: str, prefix: str, values: dict[str, object],
             parent_index: int | None) -> None:
        # The hot loop of every submission: lxml attributes read once, no lists built per element.
        ordinals: dict[str, int] = {}
        for child in node:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comments, processing instructions
            if child.attrib and _is_template(child):
                continue
            name = tag.rsplit("}", 1)[-1]
            cpath = f"{spath}/{name}"
            field = index.get(cpath)
            if cpath in repeats:
                ordinals[cpath] = ordinals.get(cpath, 0) + 1
                row = RepeatRow(repeat=cpath, index=len(rows), ordinal=ordinals[cpath],
                                parent_index=parent_index, values={})
                rows.append(row)
                walk(child, cpath, "", row.values, row.index)
            elif (len(child) and any(isinstance(c.tag, str) for c in child)) \
                    or (field is not None and field.type == "group"):
                walk(child, cpath, f"{prefix}{name}/", values, parent_index)
            else:
                ftype = field.type if field is not None else None
                text = child.text
                value = typed_value(ftype, text)
                key = f"{prefix}{name}"
                values[key] = value
                if ftype == "select" and value.__class__ is list \
                        and (text != " ".join(value) or SENT_TEXT in values):
                    _keep_sent_text(values, key, text, value)  # type: ignore[arg-type]
                if (cpath == audit_path or (field is not None and field.type == "binary")) \
                        and isinstance(value, str) and value.strip():
                    files.append(value.strip())

    walk(root, f"/{schema.root}", "", main, None)

    props: dict[str, object] = {}
    if schema.entity is not None:
        base = f"/{schema.root}/"
        for path, prop in schema.entity.properties.items():
            field = schema.field(path)
            if field is None or field.repeat is not None or not path.startswith(base):
                continue
            key = path[len(base):]
            if key in main:
                raw = _raw_at(root, key)
                props[prop] = raw
        if schema.entity.label_path and schema.entity.label_path.startswith(base):
            key = schema.entity.label_path[len(base):]
            if key in main:
                props["label"] = _raw_at(root, key)
    return SubmissionData(values=main, repeat_rows=tuple(rows),
                          attachments=tuple(dict.fromkeys(files)), entity_properties=props)


@dataclass(frozen=True)
class EntityScope:
    """One entity block of a submission with what it saves: the top-level ``meta/entity``, or the
    ``meta/entity`` of one repeat instance (entities spec 2025.1: several entities from one submission)."""

    declaration: EntityDeclaration
    block: EntityBlock | None
    properties: dict[str, object]  # property → raw text as sent, and "label"
    values: dict[str, object]      # the answers in the block's scope: main values, overlaid by the instance's
    repeat_index: int | None = None  # the instance's RepeatRow.index in SubmissionData.repeat_rows


def entity_scopes(tree: SubmissionTree | etree._Element, schema: FormSchema,
                  data: SubmissionData) -> list[EntityScope]:
    """Every entity block of the submission, in document order per declaration (the top-level one first).

    A repeat declaration gives one scope per instance of the repeat: its ``meta/entity`` block and the
    properties saved by questions of that instance (paths relative to the instance, as Central reads them).
    """
    root = tree.root if isinstance(tree, SubmissionTree) else tree
    out: list[EntityScope] = []
    for decl in schema.entities:
        if decl.repeat is None:
            out.append(EntityScope(decl, _entity_block(_child(root, "meta")), dict(data.entity_properties),
                                   data.values))
            continue
        rows = [r for r in data.repeat_rows if r.repeat == decl.repeat]
        base = decl.repeat + "/"
        for n, instance in enumerate(_instances(root, schema.root, decl.repeat)):
            props: dict[str, object] = {}
            for path, prop in decl.properties.items():
                if path.startswith(base):
                    raw = _raw_at(instance, path[len(base):])
                    if raw is not None:
                        props[prop] = raw
            if decl.label_path and decl.label_path.startswith(base):
                label = _raw_at(instance, decl.label_path[len(base):])
                if label is not None:
                    props["label"] = label
            row = rows[n] if n < len(rows) else None
            values = {**data.values, **(row.values if row is not None else {})}
            out.append(EntityScope(decl, _entity_block(_child(instance, "meta")), props, values,
                                   row.index if row is not None else None))
    return out


def _instances(root: etree._Element, root_name: str, repeat: str) -> list[etree._Element]:
    """The instances of a repeat (its absolute path), in document order, templates left out."""
    nodes = [root]
    for part in repeat[len(root_name) + 2:].split("/"):
        nodes = [c for n in nodes for c in elements(n) if local(c) == part and not _is_template(c)]
    return nodes


def extract_encrypted(tree: SubmissionTree) -> SubmissionData | None:
    """The manifest branch: for an encrypted submission (ODK form encryption, see forms.encryption)
    the attachments are the manifest's ``<media><file>`` parts in manifest order, then the encrypted
    instance XML; there are no readable values. None when the submission is not encrypted.

    Raises SubmissionXMLError ``encrypted_manifest`` for a manifest that misses a required part,
    ``encrypted_no_instance_id`` without an instanceID (the IVs are derived from it; Central 400.2).
    """
    from forms.encryption import EncryptionError, is_manifest, read_manifest

    if not is_manifest(tree.root):
        return None
    try:
        manifest = read_manifest(tree.root)
    except EncryptionError as err:
        raise SubmissionXMLError("encrypted_manifest", err.message) from err
    if not manifest.instance_id:
        raise SubmissionXMLError("encrypted_no_instance_id", "The encrypted submission has no instanceID, which "
                                 "is required for encrypted forms. Send it again from ODK Collect.")
    return SubmissionData(values={}, repeat_rows=(), attachments=tuple(dict.fromkeys(manifest.files)),
                          entity_properties={}, encrypted_file=manifest.xml_file)


def _raw_at(root: etree._Element, key: str) -> str | None:
    """Raw text at a root-relative path (entity properties are stored as text, as in ODK)."""
    node: etree._Element | None = root
    for part in key.split("/"):
        node = next((c for c in elements(node) if local(c) == part and not _is_template(c)),
                    None) if node is not None else None
    if node is None or node.text is None or node.text == "":
        return None
    return str(node.text)
