"""Administrative division codes: 2 province, 4 prefecture, 6 county, 9 township, 12 village digits."""
from __future__ import annotations

import re

from app.errors import Problem

_CODE = re.compile(r"^\d{2}(\d{2}(\d{2}(\d{3}(\d{3})?)?)?)?$")
LEVELS = {2: "province", 4: "prefecture", 6: "county", 9: "township", 12: "village"}


def validate_code(code: str) -> str:
    code = code.strip()
    if not _CODE.match(code):
        raise Problem(400, "400.20", f"'{code}' is not a region code. Use a national division code of "
                      "2, 4, 6, 9 or 12 digits, e.g. 5401 (Lhasa) or 540102 (Chengguan).")
    return code


def covers(user_codes: list[str], code: str | None) -> bool:
    """True when one of the user's region codes is a prefix of (or equal to) code."""
    if code is None:
        return False
    return any(code.startswith(c) for c in user_codes)
