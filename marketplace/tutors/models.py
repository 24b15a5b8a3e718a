"""Tutor supply: the taxonomy (instruments, genres, lesson languages) and tutor profiles.

A profile keeps two versions: ``draft`` (what the tutor edits, step by step) and ``live`` (the
version an admin approved, which the public sees). A material edit of an approved profile is
submitted for re-approval while ``live`` stays public; the admin sees the difference between the
two. Both are JSON documents validated by the tutors' services; the facets that search needs are
derived from ``live``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class TaxonomyKind(enum.StrEnum):
    instrument = "instrument"
    genre = "genre"
    language = "language"


class TaxonomyTerm(Entity):
    """One instrument, genre or lesson language; ``names`` maps a locale to its display name."""

    __tablename__ = "taxonomy_terms"

    kind: Mapped[TaxonomyKind] = mapped_column(
        Enum(TaxonomyKind, name="taxonomy_kind", native_enum=False, length=16), nullable=False
    )
    slug: Mapped[str] = mapped_column(String(64), nullable=False)
    names: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (UniqueConstraint("kind", "slug", name="uq_taxonomy_terms_kind_slug"),)

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names.get("en") or self.slug


class ProfileStatus(enum.StrEnum):
    draft = "draft"  # onboarding not finished
    pending = "pending"  # submitted, waiting for the first approval
    approved = "approved"  # public (``live``); may have ``changes_pending``
    rejected = "rejected"  # sent back with a reason; the tutor edits and resubmits
    suspended = "suspended"  # hidden by an admin


class TutorProfile(Entity):
    __tablename__ = "tutor_profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, nullable=False)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[ProfileStatus] = mapped_column(
        Enum(ProfileStatus, name="profile_status", native_enum=False, length=16),
        nullable=False,
        default=ProfileStatus.draft,
    )
    onboarding_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    draft: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    live: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    changes_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    suspension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rating_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lessons_taught: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (Index("ix_tutor_profiles_status_submitted", "status", "submitted_at"),)

    @property
    def is_public(self) -> bool:
        return self.status == ProfileStatus.approved and self.live is not None

    @property
    def rating(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None


class Favourite(Entity):
    """A student saved a tutor ("my tutors")."""

    __tablename__ = "favourites"

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    profile_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tutor_profiles.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (UniqueConstraint("student_id", "profile_id", name="uq_favourites_pair"),)
