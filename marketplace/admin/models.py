"""Reports: anyone signed in can report a profile, a review or a message; they form a queue."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class ReportTarget(enum.StrEnum):
    profile = "profile"
    review = "review"
    message = "message"


class ReportStatus(enum.StrEnum):
    open = "open"
    resolved = "resolved"  # an admin acted on it
    dismissed = "dismissed"  # nothing to do


class Report(Entity):
    __tablename__ = "reports"

    reporter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    target_type: Mapped[ReportTarget] = mapped_column(
        Enum(ReportTarget, name="report_target", native_enum=False, length=16), nullable=False
    )
    target_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[ReportStatus] = mapped_column(
        Enum(ReportStatus, name="report_status", native_enum=False, length=16),
        nullable=False,
        default=ReportStatus.open,
    )
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(1000), nullable=True)

    __table_args__ = (
        Index("ix_reports_status_created", "status", "created_at"),
        Index("ix_reports_target", "target_type", "target_id"),
    )
