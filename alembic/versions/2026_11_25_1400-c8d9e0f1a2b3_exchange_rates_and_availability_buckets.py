"""exchange rates and availability buckets

Revision ID: c8d9e0f1a2b3
Revises: b7c1d2e3f4a5
Create Date: 2026-11-25 14:00:00.000000+00:00

- ``exchange_rates``: the admin-maintained rate table (units of a currency per 1 EUR), seeded with
  the table the demo ships (``SEED`` below, a copy: a migration never imports application code
  that may change later).
- ``search_facet_totals``: documents per facet value, kept exact by the SQL backend's writes (the
  facet counts of a search without conditions), filled here from ``search_facets``.
- PostgreSQL only, outside the model metadata (like SQLite's FTS5 table): ``search_fts``, the
  stored ``tsvector`` of every document (GIN-indexed) kept in step by a trigger, so that full-text
  matching and ranking read a stored vector instead of computing ``to_tsvector`` per row.
- ``search_documents.avail_0..2``: the weekly UTC availability buckets as a 168-bit mask (the SQL
  backend's availability filter is a bitwise AND). Existing documents get an empty mask; the next
  reindex fills it.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

import marketplace.db
from alembic import op

revision: str = "c8d9e0f1a2b3"
down_revision: str | None = "b7c1d2e3f4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEED = {
    "EUR": "1",
    "USD": "1.08",
    "GBP": "0.85",
    "CHF": "0.95",
    "CAD": "1.48",
    "AUD": "1.65",
    "SEK": "11.40",
    "PLN": "4.30",
    "JPY": "162",
    "INR": "90.5",
    "BRL": "5.90",
    "MXN": "18.9",
}


POSTGRES_FTS = (
    "CREATE TABLE search_fts (doc_key bigint PRIMARY KEY, tsv tsvector NOT NULL)",
    "CREATE INDEX ix_search_fts_tsv ON search_fts USING gin (tsv)",
    "CREATE FUNCTION search_documents_fts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP IN ('DELETE', 'UPDATE') THEN DELETE FROM search_fts WHERE doc_key = OLD.doc_key; END IF; "
    "IF TG_OP IN ('INSERT', 'UPDATE') THEN INSERT INTO search_fts (doc_key, tsv) "
    "VALUES (NEW.doc_key, to_tsvector('simple'::regconfig, NEW.text)) "
    "ON CONFLICT (doc_key) DO UPDATE SET tsv = EXCLUDED.tsv; END IF; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER search_documents_fts AFTER INSERT OR DELETE OR UPDATE OF doc_key, text ON search_documents "
    "FOR EACH ROW EXECUTE FUNCTION search_documents_fts()",
    "CREATE FUNCTION search_documents_fts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "TRUNCATE search_fts; RETURN NULL; END $$",
    "CREATE TRIGGER search_documents_fts_truncate AFTER TRUNCATE ON search_documents "
    "FOR EACH STATEMENT EXECUTE FUNCTION search_documents_fts_truncate()",
    "INSERT INTO search_fts (doc_key, tsv) "
    "SELECT doc_key, to_tsvector('simple'::regconfig, text) FROM search_documents",
)


def upgrade() -> None:
    rates = op.create_table(
        "exchange_rates",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=32), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_exchange_rates_updated_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rates")),
        sa.UniqueConstraint("currency", name=op.f("uq_exchange_rates_currency")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        rates,
        [
            {
                "id": uuid.uuid4(),
                "currency": code,
                "rate": rate,
                "updated_by": None,
                "created_at": now,
                "updated_at": now,
            }
            for code, rate in SEED.items()
        ],
    )
    for name in ("avail_0", "avail_1", "avail_2"):
        op.add_column("search_documents", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index(
        "ix_search_documents_quality",
        "search_documents",
        [sa.text("rating DESC"), sa.text("review_count DESC"), sa.text("lessons_taught DESC"), "profile_id"],
    )
    op.create_table(
        "search_facet_totals",
        sa.Column("facet", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("facet", "value", name="pk_search_facet_totals"),
    )
    op.execute(
        "INSERT INTO search_facet_totals (facet, value, n) SELECT facet, value, count(*) FROM search_facets "
        "GROUP BY facet, value"
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS search_documents_fts_truncate ON search_documents")
        op.execute("DROP TRIGGER IF EXISTS search_documents_fts ON search_documents")
        op.execute("DROP FUNCTION IF EXISTS search_documents_fts_truncate()")
        op.execute("DROP FUNCTION IF EXISTS search_documents_fts()")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_facet_totals")
    op.drop_index("ix_search_documents_quality", table_name="search_documents")
    # Plain ALTER TABLE (SQLite >= 3.35): a batch migration would recreate the table and drop the
    # FTS5 triggers of search_documents.
    for name in ("avail_2", "avail_1", "avail_0"):
        op.execute(f"ALTER TABLE search_documents DROP COLUMN {name}")
    op.drop_table("exchange_rates")
