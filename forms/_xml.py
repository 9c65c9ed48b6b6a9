"""Shared hardened XML parsing helpers for the forms library (internal).

Every XML document that reaches CareFile from outside (uploaded XForms, submissions) is
parsed here with a parser that never resolves entities, never loads a DTD, never touches
the network and refuses huge trees.  Documents that carry a DOCTYPE at all are refused:
ODK clients never send one, and it is the vehicle for XXE and "billion laughs" attacks.
"""

from __future__ import annotations

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


def safe_parse(data: bytes) -> etree._Element:
    """Parse *data* strictly and safely; return the root element.

    Raises UnsafeXMLError for documents with a DOCTYPE, BadXMLError for anything that is
    not well-formed.
    """
    if _prolog_has_doctype(data):
        raise UnsafeXMLError("document type declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as err:
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


def child(node: etree._Element, name: str) -> etree._Element | None:
    """The first element child of *node* whose local name is *name* (no list built: a submission's root
    has dozens of children and this runs on every submission)."""
    suffix = "}" + name
    for c in node:
        tag = c.tag
        if isinstance(tag, str) and (tag == name or tag.endswith(suffix)):
            return c
    return None


def elements(node: etree._Element) -> list[etree._Element]:
    """Element children of *node* (comments and processing instructions dropped)."""
    return [c for c in node if isinstance(c.tag, str)]
