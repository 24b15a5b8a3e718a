"""lesson webhook payload

The LiveKit webhook endpoint stores the verified raw event and a job applies it: the events table
gets the payload, the time it was applied, and an index for a lesson's pending events.

Revision ID: f2a3b4c5d6e7
Revises: e0f1a2b3c4d5
Create Date: 2026-11-25 15:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import marketplace.db
from alembic import op

revision: str = "f2a3b4c5d6e7"
down_revision: str | None = "e0f1a2b3c4d5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lesson_webhook_events") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("applied_at", marketplace.db.UTCDateTime(timezone=True), nullable=True))
        batch.create_index("ix_lesson_webhook_events_booking_applied", ["booking_id", "applied_at"])
    # Events stored before this revision were applied in their request.
    op.execute("UPDATE lesson_webhook_events SET applied_at = created_at")
    with op.batch_alter_table("lesson_webhook_events") as batch:
        batch.alter_column("payload", existing_type=sa.Text(), existing_nullable=False, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("lesson_webhook_events") as batch:
        batch.drop_index("ix_lesson_webhook_events_booking_applied")
        batch.drop_column("applied_at")
        batch.drop_column("payload")
