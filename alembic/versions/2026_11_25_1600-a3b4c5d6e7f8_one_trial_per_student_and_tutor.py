"""one trial per student and tutor, kept by the database

Revision ID: a3b4c5d6e7f8
Revises: f2a3b4c5d6e7
Create Date: 2026-11-25 16:00:00.000000+00:00

A partial unique index (PostgreSQL and SQLite both support them): two trial holds of one student
with one tutor that race past the service's check cannot both be stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "a3b4c5d6e7f8"
down_revision: str | None = "f2a3b4c5d6e7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_TRIAL_WHERE = "kind = 'trial' AND status NOT IN ('cancelled', 'expired', 'declined')"


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(
            "uq_bookings_one_trial",
            ["student_id", "tutor_id"],
            unique=True,
            sqlite_where=sa.text(ONE_TRIAL_WHERE),
            postgresql_where=sa.text(ONE_TRIAL_WHERE),
        )


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("uq_bookings_one_trial")
