"""One Problem type for every failure a user can cause; each HTTP layer renders it its own way.

Which problems exist — code, status, message — is the catalogue in app/problems.py; raise sites name a
kind from it (`raise problems.CASE_ALREADY_CLOSED()`), never a code."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Problem(Exception):
    """A failure with an HTTP status, a stable code ("404.6") and a message a person can act on.

    `template` and `fields` keep the message's parts so a web page can show it in the user's language
    (`translated`); `message` is the English text."""

    def __init__(self, status: int, code: str, message: str, *, template: str | None = None,
                 fields: dict[str, Any] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.template = template
        self.fields = fields or {}
        self.details = details

    def add(self, **details: Any) -> Problem:
        """The same problem with machine-readable details added (rendered under "details" in JSON)."""
        self.details.update(details)
        return self

    def translated(self, translate: Callable[[str], str]) -> str:
        """The message in the language of `translate` (app.i18n.t): the template's translation, filled in."""
        if self.template is None:
            return translate(self.message)
        try:
            return translate(self.template).format(**self.fields)
        except (KeyError, IndexError, ValueError):  # a translation that names other fields: the English text
            return self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"Problem({self.status}, {self.code!r}, {self.message!r})"
