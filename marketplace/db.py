"""Database: engine and session configuration, the declarative Base, after-commit hooks.

The engine is created lazily per event loop: the web server and the in-process job worker
run on different loops, and async drivers bind their connections to one loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator, Uuid

from marketplace.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC; always comes back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a zone first")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Entity(Base):
    """UUID primary key plus created/updated timestamps."""

    __abstract__ = True

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (below), so the driver must not.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writes are serialized on SQLite: a write transaction takes the lock when it begins
    # (BEGIN IMMEDIATE) and so queues behind other writers instead of failing on upgrade.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | None = None) -> AsyncEngine:
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pooled engine: opening an aiosqlite connection starts a thread and runs the pragmas,
        # which cost more than most requests' queries.
        engine = create_async_engine(url, pool_size=5, max_overflow=10)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


_engines: dict[int, tuple[asyncio.AbstractEventLoop, AsyncEngine, async_sessionmaker[AsyncSession]]] = {}


def _current() -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    loop = asyncio.get_running_loop()
    entry = _engines.get(id(loop))
    if entry is None or entry[0] is not loop:
        engine = make_engine()
        entry = (loop, engine, async_sessionmaker(engine, expire_on_commit=False))
        _engines[id(loop)] = entry
    return entry[1], entry[2]


def get_engine() -> AsyncEngine:
    return _current()[0]


def session_factory() -> async_sessionmaker[AsyncSession]:
    return _current()[1]


async def dispose_engines() -> None:
    """Dispose the engine of the running loop (others are disposed by their own loops)."""
    loop = asyncio.get_running_loop()
    entry = _engines.pop(id(loop), None)
    if entry is not None:
        await entry[1].dispose()


def forget_engines() -> None:
    """Drop every cached engine (tests change DATABASE_URL between apps)."""
    _engines.clear()


@asynccontextmanager
async def transaction(*, write: bool = True) -> AsyncIterator[AsyncSession]:
    """A session whose work commits at the end of the block, or rolls back on error.

    ``write=True`` takes SQLite's write lock at the start so that concurrent writers queue.
    """
    async with session_factory()() as session, session.begin():
        if write:
            await session.connection(execution_options={"sqlite_immediate": True})
        yield session


# ---- after-commit hooks -------------------------------------------------------------------


def after_commit(session: AsyncSession | Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction commits; drop it on rollback."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault("after_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for cb in callbacks:
        cb()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop("after_commit", None)


MODEL_MODULES = (
    "marketplace.accounts.models",
    "marketplace.admin.models",
    "marketplace.audit",
    "marketplace.mail",
    "marketplace.messaging.jobs",  # declares the notification actor
    "marketplace.messaging.models",
    "marketplace.reviews.models",
    "marketplace.tutors.models",
    "lessons.models",
    "lessons.services",  # registers the booking listener that prepares rooms; declares the lesson jobs
    "scheduling.models",
    "search.models",
    "payouts.jobs",  # payments tables and actors; registers the booking listener with scheduling
    "scheduling.services",  # registers the lesson facts with marketplace.ports
    "scheduling.external",  # external calendar fetch actors (periodic refresh)
    "scheduling.reminders",  # lesson reminder actor (periodic)
    "scheduling.jobs",  # hold and request expiry actor (periodic)
    "search.sync",  # declares the index actors; registers the search indexer with marketplace.ports
)


def import_all_models() -> None:
    """Import every domain's models so that Base.metadata is complete (Alembic, tests), and the
    domains' service modules that register themselves with ``marketplace.ports``."""
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
