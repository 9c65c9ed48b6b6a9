"""One Problem type for every failure a user can cause; each HTTP layer renders it its own way."""
from __future__ import annotations

from typing import Any


class Problem(Exception):
    """A failure with an HTTP status, a stable code ("404.6") and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"Problem({self.status}, {self.code!r}, {self.message!r})"


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "404.1", f"Could not find the {what} you were looking for.")


def bad_request(code: str, message: str, **details: Any) -> Problem:
    return Problem(400, code, message, **details)
