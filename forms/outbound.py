"""What in an XForm would make a phone send data to, or load anything from, another host.

ODK Collect sends a finalized record to the form's `<submission action="…">` when it has one (instead
of the server it downloaded the form from), loads `<instance src="…">` and media named in the form's
translations (`<value form="image">…</value>`) from where they point. A form on a child-welfare server
must do neither: its data stay on the server that published it, and everything it needs comes with it
as a form file (`jr://file/…`, `jr://file-csv/…`, `jr://images/…`: the phone's own copy). Anything else
— an absolute URL (`http://…`, `https://…`, `//host/…`, `file:…`) — is reported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from forms._xml import BadXMLError, UnsafeXMLError, local, safe_parse

MEDIA_FORMS = {"image", "big-image", "audio", "video"}
# attributes that name something to load (XHTML-ish markup in labels and hints included)
LOADING_ATTRIBUTES = {"src", "href"}


@dataclass(frozen=True)
class Outbound:
    """One place where the form points away from the server: what it is and the address."""

    what: str  # "submission", "instance", "media"
    where: str  # the address as written in the form

    def describe(self) -> str:
        if self.what == "submission":
            return f"it sends finalized records to {self.where} (<submission action>)"
        if self.what == "instance":
            return f"it loads a data file from {self.where} (<instance src>)"
        return f"it loads a media file from {self.where}"


def _local_to_phone(address: str) -> bool:
    """jr:// names the phone's own copy of a form file; anything with another scheme or host does not."""
    text = address.strip()
    if not text:
        return True
    if text.lower().startswith("jr://"):
        return True
    head = text.split("/", 1)[0]
    return ":" not in head and not text.startswith("//") and "\\" not in text


def outbound(xml: bytes) -> list[Outbound]:
    """Every submission action, external instance and media reference pointing to another host."""
    try:
        root = safe_parse(xml)
    except (BadXMLError, UnsafeXMLError):
        return []  # the caller's parser reports what is wrong with the XML
    found: list[Outbound] = []
    for node in root.iter():
        name = local(node)
        if not name:
            continue
        if name == "submission":
            action = (node.get("action") or "").strip()
            if action:  # the phone sends to the server it downloaded the form from
                found.append(Outbound("submission", action))
            continue
        if name == "instance" and node.get("src") is not None:
            src = node.get("src") or ""
            if not _local_to_phone(src):
                found.append(Outbound("instance", src))
            continue
        if name == "value" and (node.get("form") or "").strip() in MEDIA_FORMS:
            text = (node.text or "").strip()
            if not _local_to_phone(text):
                found.append(Outbound("media", text))
        for attr, value in node.attrib.items():
            if attr.rsplit("}", 1)[-1] in LOADING_ATTRIBUTES and name != "instance" and not _local_to_phone(value):
                found.append(Outbound("media", value))
    return found
