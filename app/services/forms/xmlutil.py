"""Small XForm rewrites done at publish time (hardened lxml parsing)."""
from __future__ import annotations

from lxml import etree

from forms import safe_parse

XF = "http://www.w3.org/2002/xforms"


def _primary_root(doc: etree._Element) -> etree._Element:
    for inst in doc.iter(f"{{{XF}}}instance"):
        if inst.get("id") is None:
            for child in inst:
                if isinstance(child.tag, str):
                    return child
    raise ValueError("the XForm has no primary instance")


def set_form_version(xml: bytes, version: str) -> bytes:
    """Return the XForm with version= on the primary instance root (bytes re-serialised)."""
    doc = safe_parse(xml)  # hardened, and as lenient as submissions (bare &)
    _primary_root(doc).set("version", version)
    return etree.tostring(doc, xml_declaration=True, encoding="utf-8")


def strip_form_version(xml: bytes) -> bytes:
    doc = safe_parse(xml)  # hardened, and as lenient as submissions (bare &)
    root = _primary_root(doc)
    if "version" in root.attrib:
        del root.attrib["version"]
    return etree.tostring(doc, method="c14n")
