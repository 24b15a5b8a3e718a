"""lesson packages

Tutors' package offers (5 or 10 lessons at a discount), students' packages (credits, expiry,
pro-rata refund) and the package a credit-paid lesson's payment came from.

Revision ID: b4c5d6e7f8a9
Revises: a3b4c5d6e7f8
Create Date: 2026-11-25 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import marketplace.db
from alembic import op

revision: str = "b4c5d6e7f8a9"
down_revision: str | None = "a3b4c5d6e7f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "package_offers",
        sa.Column("tutor_id", sa.Uuid(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tutor_id"], ["users.id"], name=op.f("fk_package_offers_tutor_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_offers")),
        sa.UniqueConstraint("tutor_id", "lessons", name="uq_package_offers_tutor_lessons"),
    )
    op.create_table(
        "lesson_packages",
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("tutor_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "open",
                "processing",
                "active",
                "failed",
                "expired",
                "lapsed",
                "refunding",
                "refunded",
                "unapplied",
                name="package_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("lesson_minutes", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.String(length=2000), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("charge_id", sa.String(length=255), nullable=True),
        sa.Column("paid_amount", sa.Integer(), nullable=False),
        sa.Column("paid_at", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("credits_left", sa.Integer(), nullable=False),
        sa.Column("remaining_value", sa.Integer(), nullable=False),
        sa.Column("reminder_sent_at", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refund_requested", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", sa.Integer(), nullable=False),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"], ["users.id"], name=op.f("fk_lesson_packages_student_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"], ["users.id"], name=op.f("fk_lesson_packages_tutor_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesson_packages")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_lesson_packages_checkout_session_id")),
        sa.UniqueConstraint("payment_intent_id", name=op.f("uq_lesson_packages_payment_intent_id")),
    )
    with op.batch_alter_table("lesson_packages", schema=None) as batch_op:
        batch_op.create_index("ix_lesson_packages_student_tutor", ["student_id", "tutor_id"], unique=False)
        batch_op.create_index("ix_lesson_packages_tutor_created", ["tutor_id", "created_at"], unique=False)
        batch_op.create_index("ix_lesson_packages_status_expires", ["status", "expires_at"], unique=False)

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("package_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_payments_package_id"), ["package_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_package_id_lesson_packages"),
            "lesson_packages",
            ["package_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payments_package_id_lesson_packages"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_payments_package_id"))
        batch_op.drop_column("package_id")
    with op.batch_alter_table("lesson_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_lesson_packages_status_expires")
        batch_op.drop_index("ix_lesson_packages_tutor_created")
        batch_op.drop_index("ix_lesson_packages_student_tutor")
    op.drop_table("lesson_packages")
    op.drop_table("package_offers")
