"""Tables of the embedded SQL search backend: a projection of approved tutor profiles, rebuilt
from the profiles at will (``marketplace search reindex``), so no foreign key ties it to them.

Not declared here (the migration creates them, per dialect, outside the model metadata):
SQLite's FTS5 table ``search_fts`` with the triggers that keep it in step with
``search_documents``, and PostgreSQL's full-text expression index ``ix_search_documents_fts``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, Entity, UTCDateTime, utcnow


class SearchDocumentRow(Base):
    __tablename__ = "search_documents"

    profile_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    doc_key: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)  # FTS5 rowid
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    slug: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    headline: Mapped[str] = mapped_column(String(200), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)  # folded searchable text
    price_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # 60 minutes
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    rating: Mapped[float | None] = mapped_column(Double, nullable=True)
    review_count: Mapped[int] = mapped_column(Integer, nullable=False)
    lessons_taught: Mapped[int] = mapped_column(Integer, nullable=False)
    trial: Mapped[bool] = mapped_column(Boolean, nullable=False)
    online: Mapped[bool] = mapped_column(Boolean, nullable=False)
    in_person: Mapped[bool] = mapped_column(Boolean, nullable=False)
    lat: Mapped[float | None] = mapped_column(Double, nullable=True)
    lng: Mapped[float | None] = mapped_column(Double, nullable=True)
    # The point on the unit sphere: radius filters and distance order use chord lengths (no trigonometry in SQL).
    geo_x: Mapped[float | None] = mapped_column(Double, nullable=True)
    geo_y: Mapped[float | None] = mapped_column(Double, nullable=True)
    geo_z: Mapped[float | None] = mapped_column(Double, nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    city_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    newest: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    availability: Mapped[list[int]] = mapped_column(JSON, nullable=False, default=list)
    # The same weekly UTC hour buckets as a 168-bit mask in three 56-bit integers (bucket b is bit
    # b % 56 of avail_{b // 56}): the availability filter is a bitwise AND, on every database.
    avail_0: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    avail_1: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    avail_2: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    # Every facet value as "facet=value", each between two \x1f (unit separator) characters.
    facet_values: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=sql_text("''"))
    # A digest of everything above (not indexed_at): a full reindex rewrites only what changed.
    content_hash: Mapped[str] = mapped_column(String(32), nullable=False, default="", server_default=sql_text("''"))
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    # Filters and sorts run on the in-memory snapshot (search.snapshot), not on B-tree indexes: the
    # table keeps only its keys (and the trigram index, for fuzzy name matching on PostgreSQL).
    __table_args__ = (
        # A trigram GIN index on PostgreSQL (fuzzy and infix name matching); a plain index elsewhere.
        Index(
            "ix_search_documents_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )


class ExchangeRate(Entity):
    """One row of the admin-maintained exchange-rate table: units of ``currency`` per 1 EUR.

    Used only to compare and sort prices across currencies in search (filters and sorts apply the
    rates at query time; no money ever moves at these rates). ``rate`` is a decimal string so that
    it is exact on every database; ``search.rates`` reads and validates it.
    """

    __tablename__ = "exchange_rates"

    currency: Mapped[str] = mapped_column(String(3), nullable=False, unique=True)
    rate: Mapped[str] = mapped_column(String(32), nullable=False)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class SearchState(Base):
    """One row (id 1): the index's generation, raised by every index write in its transaction.

    A write takes this row's lock first, so generations are committed in order; a reader that sees
    generation G has every write up to G. ``epoch`` is new whenever the row is made anew (a fresh or
    emptied database); ``pruned_through`` says up to which generation ``search_changes`` rows were
    dropped (a full rebuild sets it to its own generation): a reader behind it reloads everything."""

    __tablename__ = "search_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[str] = mapped_column(String(32), nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pruned_through: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # When the last full reindex read the profiles: every document it left in place was current
    # then (it rewrites only changed rows), so a document's effective indexing time is at least this.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SearchChange(Base):
    """The profiles one index write touched (indexed or deleted), by generation: readers holding
    an in-memory snapshot of the index re-read just these rows."""

    __tablename__ = "search_changes"

    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    profile_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)

    __table_args__ = (PrimaryKeyConstraint("generation", "profile_id", name="pk_search_changes"),)
