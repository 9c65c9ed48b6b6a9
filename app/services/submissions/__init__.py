"""Submissions: records arriving from phones, the browser and Central's API; reading and reviewing them.

Inside, one way down: review | web_entry | trash > records > ingest
- ingest     one OpenRosa submission POST: parse, store files, write rows, apply its entity block —
             all or nothing (the path a Collect submission takes, top to bottom)
- records    reading and reviewing records with role and region checks (keyset-paged lists)
- review     deciding changes held for review (apply, reject)
- web_entry  which form and record a web user may fill or edit in the browser, and its files
- trash      deleting records, restoring them, purging them 30 days later
"""
from __future__ import annotations

from app.services.submissions import ingest, records, review, trash, web_entry
from app.services.submissions.ingest import IncomingFile, ReceiveResult, receive_submission
from app.services.submissions.review import decide as decide_held

__all__ = ["IncomingFile", "ReceiveResult", "decide_held", "ingest", "receive_submission", "records", "review",
           "trash", "web_entry"]
