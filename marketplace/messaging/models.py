"""Message threads between one student and one tutor. Each side has a read marker (unread counts)
and a notified marker (new messages are mailed in batches, not one mail per message)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class Thread(Entity):
    __tablename__ = "threads"

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    student_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tutor_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    student_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tutor_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("student_id", "tutor_id", name="uq_threads_pair"),
        Index("ix_threads_tutor_last", "tutor_id", "last_message_at"),
        Index("ix_threads_student_last", "student_id", "last_message_at"),
    )


class Message(Entity):
    __tablename__ = "messages"

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_messages_thread_created", "thread_id", "created_at"),)
