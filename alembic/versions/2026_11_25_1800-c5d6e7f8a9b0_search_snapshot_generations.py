"""search: facet values on the documents, index generations and a change log

Revision ID: c5d6e7f8a9b0
Revises: b4c5d6e7f8a9
Create Date: 2026-11-25 18:00:00.000000+00:00

The embedded search backend now filters, counts facets and sorts on an in-memory columnar snapshot
of ``search_documents`` (``search.snapshot``); SQL keeps full-text matching and the page's rows.

- The B-tree indexes of the old SQL filters and sorts are dropped (price, lat, rating, newest,
  quality order): the snapshot does that work, and every index cost every insert.
- ``search_documents.facet_values``: every facet value of the document ("facet=value" between
  \\x1f separators), filled here from ``search_facets``; ``search_facets`` and
  ``search_facet_totals`` are dropped (no query reads them any more).
- ``search_documents.content_hash``: a digest of the document, so that a full reindex rewrites only
  what changed (empty here: the next reindex rewrites every document once).
- ``search_state`` (one row) and ``search_changes``: every index write raises the generation and
  lists the profiles it touched, in its own transaction, so that every process sees writes exactly;
  ``verified_at``: when the last full reindex read the profiles (the documents it left untouched
  were current then).
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa

import marketplace.db
from alembic import op

revision: str = "c5d6e7f8a9b0"
down_revision: str | None = "b4c5d6e7f8a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEP = "\x1f"
# B-tree indexes for SQL filters and sorts that the snapshot now does (each cost every insert).
DROPPED_INDEXES = (
    "ix_search_documents_currency_price",
    "ix_search_documents_lat",
    "ix_search_documents_rating",
    "ix_search_documents_newest",
    "ix_search_documents_quality",
)


def upgrade() -> None:
    # Plain ALTER TABLE: a batch migration would recreate search_documents and drop its FTS5 triggers.
    op.add_column(
        "search_documents", sa.Column("facet_values", sa.Text(), nullable=False, server_default=sa.text("''"))
    )
    op.add_column(
        "search_documents",
        sa.Column("content_hash", sa.String(length=32), nullable=False, server_default=sa.text("''")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE search_documents d SET facet_values = coalesce((SELECT chr(31) || "
            "string_agg(f.facet || '=' || f.value, chr(31)) || chr(31) FROM search_facets f "
            "WHERE f.profile_id = d.profile_id), '')"
        )
    else:
        op.execute(
            "UPDATE search_documents SET facet_values = coalesce((SELECT char(31) || "
            "group_concat(f.facet || '=' || f.value, char(31)) || char(31) FROM search_facets f "
            "WHERE f.profile_id = search_documents.profile_id), '')"
        )
    for name in DROPPED_INDEXES:
        op.drop_index(name, table_name="search_documents")
    op.drop_table("search_facet_totals")
    op.drop_index("ix_search_facets_facet_value_profile", table_name="search_facets")
    op.drop_table("search_facets")
    state = op.create_table(
        "search_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.Column("verified_at", marketplace.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_state")),
    )
    op.create_table(
        "search_changes",
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("generation", "profile_id", name="pk_search_changes"),
    )
    op.bulk_insert(state, [{"id": 1, "epoch": uuid.uuid4().hex, "generation": 1, "pruned_through": 1}])


def downgrade() -> None:
    op.drop_table("search_changes")
    op.drop_table("search_state")
    facets = op.create_table(
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
    op.create_table(
        "search_facet_totals",
        sa.Column("facet", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("facet", "value", name="pk_search_facet_totals"),
    )
    docs = sa.table("search_documents", sa.column("profile_id", sa.Uuid()), sa.column("facet_values", sa.Text()))
    rows = [
        {"profile_id": profile_id, "facet": token.split("=", 1)[0], "value": token.split("=", 1)[1]}
        for profile_id, encoded in op.get_bind().execute(sa.select(docs.c.profile_id, docs.c.facet_values))
        for token in dict.fromkeys((encoded or "").split(SEP))
        if "=" in token
    ]
    for start in range(0, len(rows), 5000):
        op.bulk_insert(facets, rows[start : start + 5000])
    op.execute(
        "INSERT INTO search_facet_totals (facet, value, n) SELECT facet, value, count(*) FROM search_facets "
        "GROUP BY facet, value"
    )
    for name in ("content_hash", "facet_values"):
        op.execute(f"ALTER TABLE search_documents DROP COLUMN {name}")
    op.create_index("ix_search_documents_currency_price", "search_documents", ["currency", "price_minor"])
    op.create_index("ix_search_documents_lat", "search_documents", ["lat"])
    op.create_index("ix_search_documents_rating", "search_documents", ["rating"])
    op.create_index("ix_search_documents_newest", "search_documents", ["newest"])
    op.create_index(
        "ix_search_documents_quality",
        "search_documents",
        [sa.text("rating DESC"), sa.text("review_count DESC"), sa.text("lessons_taught DESC"), "profile_id"],
    )
