"""Exports of a form's submissions (CSV zip, XLSX, JSON) and of one child's file (ZIP).

Every export reads the relational rows (submission, submission_version.data, submission_repeat_row)
in keyset batches — never the raw XML, never all rows at once — so memory stays flat at any size.

- options.py  ExportOptions: what the user asked for (format, labels, split selects, group paths,
              media, sensitive fields, filters), validated; who may see sensitive fields
- tabular.py  the plan (tables, columns, KEY/PARENT_KEY) and the single pass over the rows
- csvzip.py, xlsx.py, jsonexport.py  the three renderers; each writes to a binary file object
- rowcode.py  a table's cells compiled into one generated function per table (hot loop)
- parallel.py a large CSV zip job split over several processes (CAREFILE_EXPORT_PROCESSES)
- jobs.py     background jobs: queue, atomic claim, heartbeat/progress, re-queue of dead workers
- childzip.py one child's whole file as a ZIP (printable summary.html + photos and signatures)
- decrypt.py  encrypted submissions decrypted on the fly into a CSV zip (managed or own key)
"""
from __future__ import annotations

from app.services.exports import childzip, csvzip, decrypt, jobs, jsonexport, parallel, tabular, xlsx
from app.services.exports.options import FORMATS, LABEL_MODES, ExportOptions, may_see_sensitive
from app.services.exports.tabular import Plan, plan_for

__all__ = ["FORMATS", "LABEL_MODES", "ExportOptions", "Plan", "childzip", "csvzip", "decrypt", "jobs", "jsonexport",
           "may_see_sensitive", "parallel", "plan_for", "tabular", "xlsx"]
