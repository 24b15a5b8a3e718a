"""search documents and facets (embedded SQL search backend)

Revision ID: a1b2c3d4e5f6
Revises: ddc74bda00bb
Create Date: 2026-11-25 13:00:00.000000+00:00

Besides the two tables, per dialect and outside the model metadata:
- SQLite: the FTS5 table ``search_fts`` (rowid = search_documents.doc_key) and three triggers
  that keep it in step with ``search_documents``. A batch migration that recreates
  ``search_documents`` drops the triggers: recreate them afterwards (``_sqlite_fts_triggers``).
- PostgreSQL: the pg_trgm extension (for the trigram index on ``name``) and the full-text
  expression index ``ix_search_documents_fts``.
"""

from collections.abc import Sequence

import sqlalchemy as sa

import marketplace.db
from alembic import op

revision: str = "a1b2c3d4e5f6"
down_revision: str | None = "ddc74bda00bb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(name, text, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
)
SQLITE_FTS_TRIGGERS = (
    "CREATE TRIGGER search_documents_fts_insert AFTER INSERT ON search_documents BEGIN "
    "INSERT INTO search_fts(rowid, name, text) VALUES (new.doc_key, new.name, new.text); END",
    "CREATE TRIGGER search_documents_fts_delete AFTER DELETE ON search_documents BEGIN "
    "DELETE FROM search_fts WHERE rowid = old.doc_key; END",
    "CREATE TRIGGER search_documents_fts_update AFTER UPDATE OF doc_key, name, text ON search_documents BEGIN "
    "DELETE FROM search_fts WHERE rowid = old.doc_key; "
    "INSERT INTO search_fts(rowid, name, text) VALUES (new.doc_key, new.name, new.text); END",
)
POSTGRES_FTS_INDEX = (
    "CREATE INDEX ix_search_documents_fts ON search_documents USING gin (to_tsvector('simple'::regconfig, text))"
)


def _dialect() -> str:
    return op.get_bind().dialect.name


def upgrade() -> None:
    if _dialect() == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "search_documents",
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("doc_key", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("headline", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rating", sa.Double(), nullable=True),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("lessons_taught", sa.Integer(), nullable=False),
        sa.Column("trial", sa.Boolean(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("in_person", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lng", sa.Double(), nullable=True),
        sa.Column("geo_x", sa.Double(), nullable=True),
        sa.Column("geo_y", sa.Double(), nullable=True),
        sa.Column("geo_z", sa.Double(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("city_id", sa.Integer(), nullable=True),
        sa.Column("newest", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("availability", sa.JSON(), nullable=False),
        sa.Column("indexed_at", marketplace.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_search_documents")),
        sa.UniqueConstraint("doc_key", name=op.f("uq_search_documents_doc_key")),
    )
    op.create_index("ix_search_documents_currency_price", "search_documents", ["currency", "price_minor"])
    op.create_index("ix_search_documents_lat", "search_documents", ["lat"])
    op.create_index("ix_search_documents_rating", "search_documents", ["rating"])
    op.create_index("ix_search_documents_newest", "search_documents", ["newest"])
    op.create_index(
        "ix_search_documents_name_trgm",
        "search_documents",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_table(
        "search_facets",
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("facet", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["search_documents.profile_id"],
            name=op.f("fk_search_facets_profile_id_search_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "facet", "value", name="pk_search_facets"),
    )
    op.create_index("ix_search_facets_facet_value_profile", "search_facets", ["facet", "value", "profile_id"])

    if _dialect() == "sqlite":
        op.execute(SQLITE_FTS)
        for statement in SQLITE_FTS_TRIGGERS:
            op.execute(statement)
    elif _dialect() == "postgresql":
        op.execute(POSTGRES_FTS_INDEX)


def downgrade() -> None:
    if _dialect() == "sqlite":
        for name in ("search_documents_fts_update", "search_documents_fts_delete", "search_documents_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    elif _dialect() == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_documents_fts")
    op.drop_index("ix_search_facets_facet_value_profile", table_name="search_facets")
    op.drop_table("search_facets")
    op.drop_index("ix_search_documents_name_trgm", table_name="search_documents")
    op.drop_index("ix_search_documents_newest", table_name="search_documents")
    op.drop_index("ix_search_documents_rating", table_name="search_documents")
    op.drop_index("ix_search_documents_lat", table_name="search_documents")
    op.drop_index("ix_search_documents_currency_price", table_name="search_documents")
    op.drop_table("search_documents")
    # pg_trgm stays: other tables may come to use it.
