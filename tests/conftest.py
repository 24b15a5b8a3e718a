"""Test configuration. The database comes from the environment: SQLite in a temporary
directory by default, PostgreSQL when DATABASE_URL is set (CI). With CI=true a service that
a test needs and cannot reach is a failure, never a skip."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="cadenza-tests-"))
os.environ["MODE"] = "test"
os.environ.setdefault("VAR_DIR", str(_TMP))
os.environ.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{_TMP / 'test.db'}")
os.environ["SECRET_KEY"] = "test-secret-key-that-is-long-enough-0123456789"
os.environ["MIGRATE_ON_START"] = "false"
os.environ["BASE_URL"] = "http://testserver.local"
os.environ.setdefault("LOG_LEVEL", "WARNING")

import asyncio  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from marketplace.settings import get_settings  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need_service(name: str, reason: str) -> None:
    """Fail in CI, skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{name} is required in CI but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


def _reset_postgres(url: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> str:
    """Build the schema through the Alembic migrations, once per run, on the configured database."""
    from marketplace.migrations import upgrade_head_sync

    url = get_settings().database_url
    if url.startswith("postgresql"):
        try:
            _reset_postgres(url)
        except OSError as exc:
            pytest.exit(f"PostgreSQL at {url} is unreachable: {exc}", returncode=3)
    upgrade_head_sync(url)
    return url


def _tables() -> list[str]:
    from marketplace.db import Base, import_all_models

    import_all_models()
    return [t.name for t in reversed(Base.metadata.sorted_tables)]


def _migration_seeds() -> list:
    """The seed functions of data migrations (reference data such as the taxonomy)."""
    import importlib.util

    from marketplace.settings import ROOT

    seeds = []
    for path in sorted((ROOT / "alembic" / "versions").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seeds += [getattr(module, name) for name in sorted(dir(module)) if name.startswith("seed_")]
    return seeds


SEEDS: list = []


def _reseed(sync_conn) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with Operations.context(MigrationContext.configure(sync_conn)):
        for seed in SEEDS:
            seed()


async def empty_tables_and_redis() -> None:
    """Empty every table (and the Redis db when REDIS_URL is set) on the running loop's engine,
    then put back the reference data that the migrations seed (the taxonomy)."""
    from marketplace.db import get_engine

    if not SEEDS:
        SEEDS.extend(_migration_seeds())
    from dramatiq.brokers.stub import StubBroker

    from marketplace import jobs

    if isinstance(jobs.broker, StubBroker):
        # Jobs a previous test enqueued (and dead letters of jobs whose rows are gone) are dropped.
        jobs.broker.flush_all()
    engine = get_engine()
    async with engine.begin() as conn:
        # DELETE, children first, on both databases: a test leaves a few rows, and on PostgreSQL
        # one TRUNCATE of every table cost 100 ms (new files for each) where this costs 15 ms,
        # about two minutes over the suite. Triggers fire as in the application (search_fts).
        for table in _tables():
            await conn.execute(text(f'DELETE FROM "{table}"'))
        await conn.run_sync(_reseed)
    settings = get_settings()
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()


@pytest.fixture(autouse=True)
async def clean_state(migrated_database: str) -> AsyncIterator[None]:
    """Every test starts with empty tables (and an empty Redis db when REDIS_URL is set)."""
    from marketplace.db import dispose_engines

    await empty_tables_and_redis()
    yield
    await dispose_engines()


@pytest.fixture
async def app():
    from marketplace.app import create_app

    return create_app()


@pytest.fixture
async def client(app):
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app, base_url="http://testserver.local") as c:
        yield c


@pytest.fixture
def drain_jobs():
    """Wait for the in-process worker to finish every queued job."""
    from marketplace import jobs

    def drain() -> None:
        jobs.in_process_worker.drain()

    return drain
