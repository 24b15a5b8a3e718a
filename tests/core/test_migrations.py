"""The schema is made only by migrations: after `upgrade head` the models and the database agree."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from marketplace.db import Base, get_engine, import_all_models


async def test_models_and_migrations_do_not_drift_apart(migrated_database):
    import_all_models()

    def include_object(obj, name, type_, reflected, compare_to):
        # Made by the search migration outside the models: SQLite's FTS5 table (and its shadow
        # tables) and PostgreSQL's expression index for full text.
        if type_ == "table" and reflected and compare_to is None and name.startswith("search_fts"):
            return False
        return not (type_ == "index" and reflected and compare_to is None and name == "ix_search_documents_fts")

    def diff(sync_conn):
        context = MigrationContext.configure(
            sync_conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "target_metadata": Base.metadata,
                "include_object": include_object,
            },
        )
        return compare_metadata(context, Base.metadata)

    async with get_engine().connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], f"models differ from migrations; write a migration: {differences}"


async def test_every_table_comes_from_a_migration(migrated_database):
    from sqlalchemy import inspect

    import_all_models()
    async with get_engine().connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
