"""Shared hardened XML parsing helpers for the forms library (internal).

Every XML document that reaches CareFile from outside (uploaded XForms, submissions) is
parsed here with a parser that never resolves entities, never loads a DTD, never touches
the network and refuses huge trees.  Documents that carry a DOCTYPE at all are refused:
ODK clients never send one, and it is the vehicle for XXE and "billion laughs" attacks.
"""

from __future__ import annotations

import re

from lxml import etree

NS_XFORMS = "http://www.w3.org/2002/xforms"
NS_XHTML = "http://www.w3.org/1999/xhtml"
NS_JR = "http://openrosa.org/javarosa"
NS_ORX = "http://openrosa.org/xforms"
NS_ODK = "http://www.opendatakit.org/xforms"
NS_ENTITIES = "http://www.opendatakit.org/xforms/entities"
NS_CAREFILE = "https://carefile.example/xforms"


class UnsafeXMLError(ValueError):
    """The document declares a DOCTYPE (possible XXE / entity expansion attack)."""


class BadXMLError(ValueError):
    """The document is not well-formed XML."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_blank_text=False,
        recover=False,
    )


# What Central's lenient parser reads and a strict one refuses (docs/odk-protocol.md, *Submissions*): an
# `&` that starts no XML reference is a literal ampersand; an element or attribute prefix that is never
# declared (`orx:instanceID` without xmlns:orx) is declared on the root, with ODK's namespace when the
# prefix is one of ODK's. Nothing else is repaired, and entities stay unresolved.
_BARE_AMP = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")
_USED_PREFIX = re.compile(rb"<\/?([A-Za-z_][\w.-]*):[A-Za-z_]|\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=\s*[\"']")
_DECLARED = re.compile(rb"xmlns:([A-Za-z_][\w.-]*)\s*=")
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.S)
KNOWN_PREFIXES = {b"orx": NS_ORX.encode(), b"jr": NS_JR.encode(), b"odk": NS_ODK.encode(),
                  b"entities": NS_ENTITIES.encode(), b"h": NS_XHTML.encode()}


def _lenient(data: bytes, declare_prefixes: bool) -> bytes:
    """The document with the repairs above (the bytes as given when none applies). Prefixes are declared
    only for submissions (`declare_prefixes`): a form is served to phones as uploaded, so a form with an
    undeclared prefix is refused with a message instead."""
    text = _BARE_AMP.sub(b"&amp;", data)
    if not declare_prefixes:
        return text
    used = {m.group(1) or m.group(2) for m in _USED_PREFIX.finditer(text)}
    missing = sorted(used - set(_DECLARED.findall(text)) - {b"xml", b"xmlns"})
    if missing:
        at = 0
        while (item := _PROLOG_ITEM.match(text, at)) is not None and item.end() > at:
            at = item.end()
        root = _ROOT_TAG.search(text, at)
        if root is not None:
            decl = b"".join(b' xmlns:%s="%s"' % (p, KNOWN_PREFIXES.get(p, b"urn:carefile:undeclared:" + p))
                            for p in missing)
            text = text[:root.end()] + decl + text[root.end():]
    return text


def _prolog_has_doctype(data: bytes) -> bool:
    """Cheap scan of the bytes before the root element for a DOCTYPE/ENTITY declaration."""
    head = data[:4096]
    for enc in ("utf-8", "utf-16"):
        try:
            text = head.decode(enc, errors="ignore")
        except LookupError:  # pragma: no cover - both codecs always exist
            continue
        if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
            return True
    return False


def safe_parse(data: bytes, *, declare_prefixes: bool = False) -> etree._Element:
    """Parse *data* safely; return the root element. Strict, except for the repairs of `_lenient`.

    Raises UnsafeXMLError for documents with a DOCTYPE, BadXMLError for anything that is
    not well-formed.
    """
    if _prolog_has_doctype(data):
        raise UnsafeXMLError("document type declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as err:
        repaired = _lenient(data, declare_prefixes)
        if repaired == data:
            raise BadXMLError(str(err)) from err
        try:  # the same hardened parser on the repaired text
            root = etree.fromstring(repaired, parser=_parser())
        except (etree.XMLSyntaxError, ValueError):
            raise BadXMLError(str(err)) from err
    except ValueError as err:  # e.g. unicode strings with encoding declaration
        raise BadXMLError(str(err)) from err
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnsafeXMLError("document type declarations are not allowed")
    return root


def local(node: etree._Element) -> str:
    """Local (namespace-free) name of an element."""
    tag = node.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def local_attr(node: etree._Element, name: str) -> str | None:
    """Value of the attribute whose local name is *name*, in any namespace (plain first)."""
    plain = node.get(name)
    if plain is not None:
        return str(plain)
    for key, value in node.attrib.items():
        if str(key).rsplit("}", 1)[-1] == name:
            return str(value)
    return None


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def child(node: etree._Element, name: str) -> etree._Element | None:
    """The first element child of *node* whose local name is *name*, in any namespace or none (a submission's
    root has dozens of children and this runs several times on every submission: lxml's own search, ten
    times faster than a loop in Python, for names its path syntax reads as a plain name)."""
    if _PLAIN_NAME.fullmatch(name):
        return node.find("{*}" + name)
    suffix = "}" + name
    for c in node:
        tag = c.tag
        if isinstance(tag, str) and (tag == name or tag.endswith(suffix)):
            return c
    return None


def elements(node: etree._Element) -> list[etree._Element]:
    """Element children of *node* (comments and processing instructions dropped)."""
    return [c for c in node if isinstance(c.tag, str)]
