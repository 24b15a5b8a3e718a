"""The audit log: every admin and money action records who did what, when, before and after."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity


class AuditEntry(Entity):
    __tablename__ = "audit_log"

    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        Index("ix_audit_log_actor_created", "actor_id", "created_at"),
        Index("ix_audit_log_action_created", "action", "created_at"),
    )


MAX_REASON_LENGTH = 1000


def audit_reason(reason: object) -> str:
    """The reason an admin gives for an audited action: required, at most 1000 characters."""
    from marketplace.errors import ValidationFailed
    from marketplace.i18n import gettext as _

    text = " ".join((reason if isinstance(reason, str) else "").split())
    if not text or len(text) > MAX_REASON_LENGTH:
        message = _("Give a reason of at most %(max)d characters.", max=MAX_REASON_LENGTH)
        raise ValidationFailed(message, errors={"reason": message})
    return text


async def audit_record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Record an action in the caller's transaction (so it exists exactly when the change does)."""
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
        reason=reason,
    )
    session.add(entry)
    return entry
