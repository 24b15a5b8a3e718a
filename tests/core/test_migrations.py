"""The schema is made only by migrations: after `upgrade head` the models and the database agree."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from marketplace.db import Base, get_engine, import_all_models


async def test_models_and_migrations_do_not_drift_apart(migrated_database):
    import_all_models()

    def diff(sync_conn):
        context = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "compare_server_default": True, "target_metadata": Base.metadata}
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
