"""No slot is sold twice, under real concurrency.

* 50 students, each with their own signed-in HTTP client, POST the same slot at the same moment
  to the real server (``marketplace run`` in a subprocess, so the requests really run
  concurrently, each in its own database transaction): exactly one gets the hold (303 to
  checkout), the other 49 get a 409 with "This slot was just taken", nobody gets a 5xx.
  Runs on SQLite (serialized writers) and on PostgreSQL (the exclusion constraint decides
  between transactions that ran in parallel).
* On PostgreSQL, two transactions that both passed the service's check and then both insert:
  the exclusion constraint itself rejects the second (sqlstate 23P01), and the service turns
  that into the 409 Conflict.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from marketplace.db import session_factory
from marketplace.settings import get_settings
from scheduling.models import Booking, BookingStatus
from tests.e2e.server import LiveServer, start_server
from tests.helpers import CSRF_RE, make_user
from tests.scheduling.bookings_support import bookable_tutor, next_hour

ATTEMPTS = 50
PASSWORD = "correct horse battery"
START = next_hour(days=5, hour=15)
ISO = START.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_postgres() -> bool:
    return get_settings().database_url.startswith("postgresql")


@pytest.fixture(scope="module")
def server(migrated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real application (``marketplace run``, uvicorn) on a free port, same database."""
    srv = start_server(dict(os.environ), tmp_path_factory.mktemp("collisions") / "server.log")
    yield srv
    srv.stop()


async def signed_in_clients(base_url: str, count: int) -> list[httpx.AsyncClient]:
    """``count`` students, each logged in on an own HTTP client (own session and CSRF cookies)."""
    from marketplace.accounts.models import Role, User
    from marketplace.accounts.services import password_hash
    from marketplace.db import transaction, utcnow

    digest = password_hash(PASSWORD)
    async with transaction() as session:
        for n in range(count):
            session.add(
                User(
                    email=f"racer{n}@example.com",
                    password_hash=digest,
                    display_name=f"Racer {n}",
                    role=Role.student,
                    timezone="UTC",
                    locale="en",
                    email_verified_at=utcnow(),
                )
            )

    async def one(n: int) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=base_url, timeout=60)
        page = await c.get("/login")
        token = CSRF_RE.search(page.text).group(1)
        r = await c.post("/login", data={"_csrf_token": token, "email": f"racer{n}@example.com", "password": PASSWORD})
        assert r.status_code in (200, 303), r.status_code
        return c

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def race(clients: list[httpx.AsyncClient], slug: str) -> list[httpx.Response]:
    tokens = []
    for c in clients:
        page = await c.get(f"/book/{slug}?start={ISO}&duration=60")
        tokens.append(CSRF_RE.search(page.text).group(1))
    gate = asyncio.Event()

    async def attempt(c: httpx.AsyncClient, token: str) -> httpx.Response:
        await gate.wait()
        return await c.post(
            f"/book/{slug}", data={"_csrf_token": token, "start": ISO, "duration": "60"}, follow_redirects=False
        )

    tasks = [asyncio.create_task(attempt(c, t)) for c, t in zip(clients, tokens, strict=True)]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks)


async def slug_of(tutor) -> str:
    from marketplace.tutors.models import TutorProfile

    async with session_factory()() as session:
        return (await session.execute(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))).scalar_one()


async def test_fifty_simultaneous_bookings_of_one_slot_one_wins_the_rest_get_409(server):
    tutor = await bookable_tutor()
    slug = await slug_of(tutor)
    clients = await signed_in_clients(server.url, ATTEMPTS)
    try:
        responses = await race(clients, slug)
    finally:
        for c in clients:
            await c.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.count(303) == 1, statuses
    assert statuses.count(409) == ATTEMPTS - 1, statuses
    for r in responses:
        if r.status_code == 409:
            assert "This slot was just taken. Please choose another time." in r.text
    async with session_factory()() as session:
        active = (
            await session.execute(
                select(func.count()).where(Booking.tutor_id == tutor.id, Booking.status == BookingStatus.held)
            )
        ).scalar_one()
    assert active == 1


@pytest.mark.skipif(not is_postgres(), reason="the exclusion constraint exists on PostgreSQL only")
async def test_postgres_exclusion_constraint_rejects_a_race_that_passed_the_check():
    from scheduling import bookings as svc

    tutor = await bookable_tutor()
    a = await make_user(email="a@example.com")
    b = await make_user(email="b@example.com")
    now = START - timedelta(days=1)

    async with session_factory()() as s1, session_factory()() as s2:
        prepared = []
        for session, stu in ((s1, a), (s2, b)):
            offer, cal = await svc._prepare(
                session, student=stu, tutor_user_id=tutor.id, duration=60, trial=False, now=now
            )
            check = svc.check_slot(cal, starts_at=START, duration=60, now=now)
            assert check.ok  # both transactions see a free slot
            prepared.append(svc._new_booking(offer, cal, student=stu, starts_at=START, now=now))
        await svc._flush_guarded(s1, prepared[0])
        await s1.commit()
        with pytest.raises(svc.SlotTaken) as err:
            await svc._flush_guarded(s2, prepared[1])
        assert err.value.status_code == 409
        assert svc._is_overlap_violation(err.value.__cause__)
        assert "23P01" in {getattr(err.value.__cause__.orig, "sqlstate", None)}
        await s2.rollback()
    async with session_factory()() as session:
        rows = (await session.execute(select(Booking.student_id).where(Booking.tutor_id == tutor.id))).scalars().all()
    assert rows == [a.id]
