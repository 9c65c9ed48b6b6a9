"""What the user asked an export for (format, labels, split selects, group paths, media, sensitive
fields, filters), validated; and who may ask for sensitive fields."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from app import problems
from app.models import REVIEW_STATES, User
from app.services import access

FORMATS = ("csvzip", "xlsx", "json")
LABEL_MODES = ("codes", "zh", "en")
_REGION = re.compile(r"\d{2,12}")


def may_see_sensitive(user: User) -> bool:
    """Whether the user may ask for fields marked sensitive (bind::carefile:sensitive): the access policy's rule."""
    return access.sees_sensitive(user)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _date(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as err:
        raise problems.EXPORT_DATE_INVALID(name=name) from err


@dataclass(frozen=True)
class ExportOptions:
    """A validated export request. Stored in ExportJob.options as a plain dict."""

    format: str = "csvzip"
    labels: str = "codes"          # codes | zh | en (question and choice labels in that language)
    split_select: bool = False     # select_multiple: one 0/1 column per choice as well
    group_paths: bool = True       # headers carry the group names ("grp-question")
    deleted_fields: bool = True    # also questions only earlier form versions had (Central's deletedFields)
    media: bool = False            # CSV zip only: photos, signatures… under media/
    sensitive: bool = False        # include fields marked sensitive (admin/coordinator only)
    date_from: date | None = None  # received on or after (UTC day)
    date_to: date | None = None    # received on or before (UTC day)
    region: str = ""               # region code prefix (inside the user's own regions)
    review_states: tuple[str, ...] = field(default_factory=tuple)
    form_version: str = ""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ExportOptions:
        """Options from a JSON body or an HTML form; a Problem (400) names what is wrong."""
        fmt = str(raw.get("format") or "csvzip")
        if fmt not in FORMATS:
            raise problems.UNKNOWN_EXPORT_FORMAT(fmt=fmt)
        labels = str(raw.get("labels") or "codes")
        if labels not in LABEL_MODES:
            raise problems.UNKNOWN_LABEL_MODE(labels=labels)
        region = str(raw.get("region") or "").strip()
        if region and not _REGION.fullmatch(region):
            raise problems.EXPORT_REGION_INVALID()
        states_raw = raw.get("review_states") or raw.get("review_state") or ()
        if isinstance(states_raw, str):
            states_raw = [s for s in states_raw.split(",") if s.strip()]
        states = tuple(dict.fromkeys(str(s).strip() for s in states_raw))
        bad = [s for s in states if s not in REVIEW_STATES]
        if bad:
            raise problems.EXPORT_REVIEW_STATE_UNKNOWN(bad=bad[0], choices=', '.join(REVIEW_STATES))
        d_from, d_to = _date(raw.get("date_from"), "date_from"), _date(raw.get("date_to"), "date_to")
        if d_from and d_to and d_from > d_to:
            raise problems.EXPORT_DATES_REVERSED()
        return cls(format=fmt, labels=labels, split_select=_flag(raw.get("split_select")),
                   group_paths=_flag(raw.get("group_paths", True)),
                   deleted_fields=_flag(raw.get("deleted_fields", True)),
                   media=_flag(raw.get("media")) and fmt == "csvzip",
                   sensitive=_flag(raw.get("sensitive")), date_from=d_from, date_to=d_to, region=region,
                   review_states=states, form_version=str(raw.get("form_version") or "").strip())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["date_from"] = self.date_from.isoformat() if self.date_from else None
        out["date_to"] = self.date_to.isoformat() if self.date_to else None
        out["review_states"] = list(self.review_states)
        return out

    def check_allowed(self, user: User) -> None:
        if self.sensitive and not may_see_sensitive(user):
            raise problems.SENSITIVE_EXPORT_REFUSED()


__all__ = ["FORMATS", "LABEL_MODES", "ExportOptions", "may_see_sensitive"]
