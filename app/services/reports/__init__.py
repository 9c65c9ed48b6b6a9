"""Reports: the county report (monthly/quarterly), the dashboard and its figures computed ahead of time.

Inside: rollup > dashboard | county
"""
from __future__ import annotations

from app.services.reports import county, dashboard, rollup

__all__ = ["county", "dashboard", "rollup"]
