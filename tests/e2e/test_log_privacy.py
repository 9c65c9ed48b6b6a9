"""No personal data in any log line: the whole care-file run (registration with names and phone
numbers, identifications, conflicting updates) is logged at DEBUG, in text and JSON format, and the
log is searched for the children's and guardians' names, phone numbers and free-text notes."""
from __future__ import annotations

import logging
from io import StringIO
from typing import Any

from app.ops.logs import JsonFormatter, RequestIdFilter, make_formatter
from tests.e2e.test_care_file import Phone, phones  # noqa: F401 - the fixture, reused
from tests.e2e.test_care_file import test_care_file_end_to_end as run_care_file

PERSONAL = ["扎西次仁", "次仁", "卓玛", "13912345678", "13800000000", "情绪低落", "监护人暂不同意"]


def test_no_personal_data_in_logs(phones: dict[str, Phone], rt: Any) -> None:  # noqa: F811
    text_out, json_out = StringIO(), StringIO()
    handlers = []
    for out, formatter in ((text_out, make_formatter("text")), (json_out, JsonFormatter())):
        h = logging.StreamHandler(out)
        h.setFormatter(formatter)
        h.addFilter(RequestIdFilter())
        h.setLevel(logging.DEBUG)
        handlers.append(h)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for h in handlers:
        root.addHandler(h)
    try:
        run_care_file(phones, rt)
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(old_level)
    for log in (text_out.getvalue(), json_out.getvalue()):
        assert log.count("/submission") >= 5  # the run really was logged (one line per request)
        leaked = [p for p in PERSONAL if p in log or p.encode("unicode_escape").decode() in log]
        assert leaked == [], [line for line in log.splitlines() if any(p in line for p in leaked)][:5]
