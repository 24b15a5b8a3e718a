"""Deterministic demo data: the same seed gives the same people. Later issues extend it
(profiles, availability, bookings) through their own services.

``marketplace demo --tutors 100000`` must stay fast (issue 4: the whole command within three
minutes), so the demo modules build plain rows and load them with :func:`bulk_insert` (COPY on
PostgreSQL, one prepared ``executemany`` per large chunk on SQLite), never through the ORM's unit of
work or one query per tutor. Each step is idempotent: it only fills in what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import operator
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.accounts.services import password_hash
from marketplace.db import transaction, utcnow

DEMO_DOMAIN = "demo.cadenza.test"
DEMO_PASSWORD = "cadenza-demo-2026"  # noqa: S105 - printed for the demo on purpose
ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
TUTOR_EMAIL = f"tutor@{DEMO_DOMAIN}"
STUDENT_EMAIL = f"student@{DEMO_DOMAIN}"

FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Lucía",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zoë",
    "Amara",
    "Bruno",
    "Camille",
    "Diego",
    "Esther",
    "Felix",
    "Giulia",
    "Hannah",
    "Ivan",
    "Jasmin",
]
LAST = [
    "Almeida",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "López",
    "Müller",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Umarov",
    "Vargas",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
    "Novak",
    "Silva",
    "Moreau",
    "Lindqvist",
]
ZONES = [
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Africa/Lagos",
    "Europe/Paris",
    "America/Mexico_City",
    "Asia/Seoul",
    "Europe/Stockholm",
    "America/Toronto",
]


@dataclass
class DemoResult:
    tutors: int = 0
    students: int = 0
    profiles: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the command's summary


# ---- bulk loading ----------------------------------------------------------------------------

BULK_CHUNK = 10_000  # rows per executemany / COPY
SQLITE_BULK_CACHE_KIB = 256 * 1024  # page cache of the loading connection (SQLite's default is 2 MiB)


@asynccontextmanager
async def bulk_transaction() -> AsyncIterator[AsyncSession]:
    """:func:`marketplace.db.transaction` for loading many rows.

    On SQLite the loading connection gets a larger page cache while the block runs (random UUID
    keys touch every page of the indexes; with the default 2 MiB cache most of the time goes to
    re-reading them). It only changes that connection's memory use: durability and locking stay
    as configured in ``marketplace.db``.
    """
    async with transaction() as session:
        conn = await session.connection()
        if conn.dialect.name != "sqlite":
            yield session
            return
        previous = int((await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one())
        await conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")
        yield session
        await conn.exec_driver_sql(f"PRAGMA cache_size = {previous}")  # (after an error the pool keeps it)


def _column_defaults(table: Table, given: Sequence[str]) -> list[tuple[str, Callable[[], Any]]]:
    """Python-side defaults of the columns the rows leave out (as an ORM or Core insert applies them)."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        default = column.default
        if column.key in given or default is None:
            continue  # given, or NULL / a server default
        if default.is_scalar:
            out.append((column.key, lambda value=default.arg: value))
        elif default.is_callable:
            out.append((column.key, lambda fn=default.arg: fn(None)))
        else:
            raise ValueError(f"bulk_insert cannot apply the SQL default of {table.name}.{column.key}")
    return out


def _repetitive(column: Column[Any]) -> bool:
    if column.type._type_affinity in (DateTime, Date):
        return True
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return False
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _memoized(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # Keyed with the zone too: equal instants in different zones may be stored differently.
    seen: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        key = (value, getattr(value, "tzinfo", None))
        try:
            return seen[key]
        except KeyError:
            out = seen[key] = proc(value)
            return out

    return run


def _last_object(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: list[Any] = [None, None]  # the last value (kept alive, so identity is meaningful) and its output

    def run(value: Any) -> Any:
        if value is None or value is not last[0]:
            last[0], last[1] = value, proc(value)
        return last[1]

    return run


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts keyed by column, all with the same keys) into ``table`` in the
    session's transaction, fast: values go through the columns' own bind processing (JSON, enums,
    UTC instants, UUIDs exactly as SQLAlchemy stores them) and then straight to the driver, by
    COPY on PostgreSQL and by ``executemany`` on SQLite. No ORM events fire, as with any bulk
    insert. Values are read when this runs (an object shared by several rows is encoded once).
    Returns the number of rows."""
    if not rows:
        return 0
    conn = await session.connection()
    dialect = conn.dialect
    keys = list(rows[0])
    defaults = _column_defaults(table, keys)
    columns = [table.c[key] for key in keys] + [table.c[key] for key, _ in defaults]
    processors = []
    shared: dict[Any, Callable[[Any], Any]] = {}
    for index, column in enumerate(columns):
        proc = column.type.dialect_impl(dialect).bind_processor(dialect)
        if proc is None:
            continue
        if _repetitive(column):  # instants, dates, enums: few distinct values, each converted once
            proc = _memoized(proc)
        elif column.type._type_affinity is JSON:  # the same document in two columns is encoded once
            proc = shared.setdefault(type(column.type), _last_object(proc))
        processors.append((index, proc))
    width = len(keys)
    fillers = [fn for _, fn in defaults]
    keys_in_order = [column.key for column in columns]
    if dialect.name == "postgresql" and dialect.driver == "asyncpg":
        order = list(range(len(columns)))
    else:  # one compiled INSERT (its own column order), executed by the driver a whole chunk at a time
        compiled = insert(table).compile(dialect=dialect, column_keys=keys_in_order)
        positions = list(compiled.positiontup or ())
        if not dialect.positional or sorted(positions) != sorted(keys_in_order):
            raise NotImplementedError(f"bulk_insert does not support {dialect.name}+{dialect.driver}")
        order = [keys_in_order.index(key) for key in positions]
    pick = operator.itemgetter(*order) if len(order) > 1 else (lambda values: (values[order[0]],))

    def record(row: dict[str, Any]) -> tuple[Any, ...]:
        if len(row) != width:
            raise ValueError(f"bulk_insert into {table.name}: every row needs the keys {keys}")
        values = [row[key] for key in keys]
        values += [fn() for fn in fillers]
        for index, proc in processors:
            values[index] = proc(values[index])
        return pick(values)

    if dialect.name == "postgresql" and dialect.driver == "asyncpg":
        # COPY runs on the driver connection, inside the transaction the session has begun
        # (asyncpg's adapter starts it with the first statement: make sure there was one).
        await conn.exec_driver_sql("SELECT 1")
        driver = (await conn.get_raw_connection()).driver_connection
        names = [column.name for column in columns]
        for start in range(0, len(rows), BULK_CHUNK):
            records = [record(row) for row in rows[start : start + BULK_CHUNK]]
            await driver.copy_records_to_table(table.name, records=records, columns=names, schema_name=table.schema)
        return len(rows)
    for start in range(0, len(rows), BULK_CHUNK):
        await conn.exec_driver_sql(compiled.string, [record(row) for row in rows[start : start + BULK_CHUNK]])
    return len(rows)


def _demo_tables() -> list[Table]:
    from marketplace.reviews.models import Review
    from marketplace.tutors.models import TutorProfile
    from payouts.models import PayoutAccount
    from scheduling.models import Availability, AvailabilityOverride, Booking

    models = (TutorProfile, Booking, Review, Availability, AvailabilityOverride, PayoutAccount)
    return [model.__table__ for model in models]


Batch = list[tuple[Table, list[dict[str, Any]]]]  # rows for several tables, loaded in this order


async def bulk_load(session: AsyncSession, batches: Iterator[Batch]) -> None:
    """Load what ``batches`` generates, producing the next batch in a worker thread while the
    database stores the current one (SQLite works in its own thread, PostgreSQL in its own
    process), so generation and storage overlap. The generator runs one step at a time, in order,
    so a seeded generator gives the same rows as without the overlap."""

    def step() -> Batch | None:
        return next(batches, None)

    pending = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(step))
            for table, rows in batch:
                await bulk_insert(session, table, rows)
    finally:
        if not pending.done():  # loading failed: let the generator's step finish before unwinding
            with contextlib.suppress(Exception):
                await pending


def _people(rng: random.Random, count: int, role: Role, prefix: str, hashed: str) -> list[dict]:
    now = utcnow()
    rows = []
    for i in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "email": f"{prefix}{i:06d}@{DEMO_DOMAIN}",
                "password_hash": hashed,
                "display_name": f"{first} {last}",
                "role": role,
                "timezone": rng.choice(ZONES),
                "locale": "de" if rng.random() < 0.25 else "en",
                "email_verified_at": now,
                "auth_version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


async def demo_create(*, tutors: int, students: int, seed: int) -> DemoResult:
    # Millions of short-lived row objects and no cycles worth collecting: the cyclic collector
    # would only walk the ever larger heap again and again (a third of the time at 100,000 tutors).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _demo_create(tutors=tutors, students=students, seed=seed)
    finally:
        if collecting:
            gc.enable()


async def _demo_create(*, tutors: int, students: int, seed: int) -> DemoResult:
    rng = random.Random(seed)
    hashed = password_hash(DEMO_PASSWORD)  # one hash for every demo account: hashing is slow by design
    result = DemoResult(tutors=tutors, students=students)
    fixed = [
        (Role.admin, ADMIN_EMAIL, "Ada Admin", "Europe/Berlin"),
        (Role.tutor, TUTOR_EMAIL, "Clara Klavier", "Europe/Berlin"),
        (Role.student, STUDENT_EMAIL, "Sam Student", "America/New_York"),
    ]
    clock = time.perf_counter()

    def done(step: str) -> None:
        nonlocal clock
        result.timings[step], clock = time.perf_counter() - clock, time.perf_counter()

    rows = [
        {
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "email": email,
            "password_hash": hashed,
            "display_name": name,
            "role": role,
            "timezone": tz,
            "locale": "en",
            "email_verified_at": utcnow(),
            "auth_version": 1,
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }
        for role, email, name, tz in fixed
    ]
    rows += _people(rng, tutors, Role.tutor, "tutor", hashed)
    rows += _people(rng, students, Role.student, "student", hashed)
    async with bulk_transaction() as session:
        existing = set((await session.execute(select(User.email).where(User.email.like(f"%@{DEMO_DOMAIN}")))).scalars())
        await bulk_insert(session, User.__table__, [r for r in rows if r["email"] not in existing])
    del rows
    done("users")
    async with bulk_transaction() as session:
        from marketplace.tutors.demo import demo_tutor_profiles

        result.profiles = await demo_tutor_profiles(session, rng=rng)
    done("profiles")
    async with bulk_transaction() as session:
        from scheduling.demo import demo_availability  # hours, exceptions and upcoming lessons

        await demo_availability(session, rng=rng)
    done("availability")
    async with bulk_transaction() as session:
        from payouts.demo import demo_payout_accounts  # enabled test-mode payouts: bookings are open

        await demo_payout_accounts(session)
    done("payouts")
    async with transaction() as session:
        if (await session.connection()).dialect.name == "postgresql":
            # PostgreSQL's advice after a bulk load: fresh statistics, so that what runs next (the
            # search reindex, the first pages) gets good plans without waiting for autovacuum.
            names = ", ".join(t.name for t in (User.__table__, *_demo_tables()))
            await session.execute(text(f"ANALYZE {names}"))
            done("analyze")
    result.logins = [(role.value, email, DEMO_PASSWORD) for role, email, _, _ in fixed]
    return result
