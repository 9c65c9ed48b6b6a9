from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONType, UTCDateTime


class DashboardRollup(Base):
    """The dashboard's figures for the children of one region code, as computed for one local day by
    `carefile dashboard refresh` (app.services.rollup). A national dashboard sums the rows of the user's
    regions instead of reading every child's file on each page view."""

    __tablename__ = "dashboard_rollup"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)  # "" = children without a region
    day: Mapped[date] = mapped_column(Date)  # the local day the figures are for (months, quarter, overdue)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the reading began (figures as of then)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
