"""The demo's bulk loading (``marketplace demo --tutors 100000`` within minutes): rows loaded by
``bulk_insert`` read back exactly like rows stored by an ordinary insert, and the same seed gives
the same demo data on an empty database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, insert, select, text

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory, transaction
from marketplace.demo import bulk_insert, bulk_load, demo_create
from marketplace.reviews.models import Review
from marketplace.tutors.models import TutorProfile
from payouts.models import PayoutAccount
from scheduling.models import Availability, AvailabilityOverride, Booking, BookingStatus

WHEN = datetime(2026, 3, 29, 0, 30, 15, 250, tzinfo=UTC)


def _user(email: str) -> dict:
    return {
        "id": uuid.uuid4(),
        "email": email,
        "password_hash": "x",
        "display_name": "Zoë Ünal",
        "role": Role.tutor,
        "timezone": "Europe/Berlin",
        "locale": "de",
        "email_verified_at": WHEN,
        "auth_version": 1,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def _booking(tutor_id: uuid.UUID, student_id: uuid.UUID, offset: int) -> dict:
    # An instant in another zone: stored in UTC like any other; `kind`, `sequence` and
    # `reschedule_count` are left to the columns' defaults.
    starts = (WHEN + timedelta(days=offset)).astimezone(ZoneInfo("America/Sao_Paulo"))
    return {
        "id": uuid.uuid4(),
        "tutor_id": tutor_id,
        "student_id": student_id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=45),
        "blocked_from": starts,
        "blocked_until": starts + timedelta(minutes=45),
        "status": BookingStatus.completed,
        "price_amount": 4500,
        "currency": "EUR",
        "paid_at": None,
        "completed_at": WHEN,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def _override(tutor_id: uuid.UUID, windows: list, offset: int) -> dict:
    return {
        "id": uuid.uuid4(),
        "tutor_id": tutor_id,
        "on_date": date(2026, 4, 1) + timedelta(days=offset),
        "windows": windows,
        "replace": offset % 2 == 0,
        "note": "Konzertreise ♪",
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def _comparable(obj: object, columns: list[str]) -> tuple:
    return tuple(getattr(obj, c) for c in columns if c != "id")


async def test_bulk_insert_stores_what_an_ordinary_insert_stores():
    bulk_user, plain_user = _user("bulk@example.com"), _user("plain@example.com")
    shared_windows = [["08:00", "10:00"]]  # one object in several rows is encoded for each of them
    async with transaction() as session:
        assert await bulk_insert(session, User.__table__, [bulk_user]) == 1
        await session.execute(insert(User.__table__), [plain_user])
        tutor, student = bulk_user["id"], plain_user["id"]
        bulk_rows = [_booking(tutor, student, 0), _booking(tutor, student, 200)]
        plain_rows = [_booking(tutor, student, 0), _booking(tutor, student, 200)]
        await bulk_insert(session, Booking.__table__, bulk_rows)
        await session.execute(insert(Booking.__table__), plain_rows)
        bulk_offs = [_override(tutor, shared_windows, 0), _override(tutor, shared_windows, 1), _override(tutor, [], 2)]
        plain_offs = [_override(student, shared_windows, 0), _override(student, shared_windows, 1)]
        plain_offs.append(_override(student, [], 2))
        await bulk_insert(session, AvailabilityOverride.__table__, bulk_offs)
        await session.execute(insert(AvailabilityOverride.__table__), plain_offs)
        assert await bulk_insert(session, Booking.__table__, []) == 0
    async with session_factory()() as session:
        users = {u.email: u for u in (await session.execute(select(User))).scalars()}
        user_columns = [c.key for c in User.__table__.columns if c.key not in ("email",)]
        assert _comparable(users["bulk@example.com"], user_columns) == _comparable(
            users["plain@example.com"], user_columns
        )
        bookings = (await session.execute(select(Booking).order_by(Booking.starts_at, Booking.tutor_id))).scalars()
        booking_columns = [c.key for c in Booking.__table__.columns]
        stored = [_comparable(b, booking_columns) for b in bookings]
        assert stored[0] == stored[1] and stored[2] == stored[3] and len(stored) == 4
        # As the database holds them, too (SQL compares and sorts the stored text on SQLite).
        raw = (
            await session.execute(
                text(
                    "SELECT starts_at, ends_at, blocked_until, status, kind, sequence, completed_at, paid_at, "
                    "created_at FROM bookings ORDER BY starts_at"
                )
            )
        ).all()
        assert raw[0] == raw[1] and raw[2] == raw[3] and raw[0] != raw[2]
        raw_users = (await session.execute(text("SELECT role, locale, email_verified_at, created_at FROM users"))).all()
        assert raw_users[0] == raw_users[1]
        first = (await session.execute(select(Booking).where(Booking.id == bulk_rows[0]["id"]))).scalar_one()
        assert first.starts_at == WHEN and first.kind == "lesson" and first.sequence == 0
        offs = (await session.execute(select(AvailabilityOverride))).scalars().all()
        by_owner: dict[uuid.UUID, list] = {}
        for o in sorted(offs, key=lambda o: o.on_date):
            by_owner.setdefault(o.tutor_id, []).append((o.on_date, o.windows, o.replace, o.note))
        assert by_owner[tutor] == by_owner[student]
        assert [w for _d, w, _r, _n in by_owner[tutor]] == [[["08:00", "10:00"]], [["08:00", "10:00"]], []]


async def test_bulk_insert_refuses_rows_with_different_keys():
    row = _user("a@example.com")
    other = {k: v for k, v in _user("b@example.com").items() if k != "locale"}
    async with session_factory()() as session:
        with pytest.raises(ValueError, match="every row needs the keys"):
            await bulk_insert(session, User.__table__, [row, other])


async def test_bulk_load_loads_generated_batches_in_order_and_reports_generator_errors():
    users = [_user(f"u{i}@example.com") for i in range(5)]

    def batches():
        yield [(User.__table__, users[:2])]
        yield [(User.__table__, users[2:])]

    async with transaction() as session:
        await bulk_load(session, batches())
    async with session_factory()() as session:
        assert len((await session.execute(select(User.id))).all()) == 5

    def broken():
        yield [(User.__table__, [_user("late@example.com")])]
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        async with transaction() as session:
            await bulk_load(session, broken())
    async with session_factory()() as session:  # the failed load rolled back
        assert await session.scalar(select(User.id).where(User.email == "late@example.com")) is None


async def _snapshot() -> dict[str, list]:
    async with session_factory()() as session:
        return {
            "users": [tuple(r) for r in await session.execute(select(User.id, User.email, User.timezone))],
            "profiles": [
                tuple(r)
                for r in await session.execute(
                    select(TutorProfile.id, TutorProfile.slug, TutorProfile.status, TutorProfile.draft)
                )
            ],
            "reviews": [tuple(r) for r in await session.execute(select(Review.id, Review.rating, Review.text))],
            "bookings": [tuple(r) for r in await session.execute(select(Booking.id, Booking.tutor_id, Booking.status))],
            "availability": [
                tuple(r)
                for r in await session.execute(
                    select(Availability.id, Availability.weekly, Availability.booking_mode, Availability.max_per_day)
                )
            ],
            "overrides": [
                tuple(r)
                for r in await session.execute(
                    select(AvailabilityOverride.id, AvailabilityOverride.windows, AvailabilityOverride.note)
                )
            ],
            "payouts": [tuple(r) for r in await session.execute(select(PayoutAccount.id, PayoutAccount.tutor_id))],
        }


async def test_the_same_seed_gives_the_same_demo_on_an_empty_database():
    await demo_create(tutors=25, students=6, seed=11)
    first = await _snapshot()
    assert all(first.values()) and len(first["profiles"]) == 26
    async with transaction() as session:
        for model in (Review, Booking, AvailabilityOverride, Availability, PayoutAccount, TutorProfile, User):
            await session.execute(delete(model))
    await demo_create(tutors=25, students=6, seed=11)
    again = await _snapshot()
    assert {k: sorted(v, key=repr) for k, v in again.items()} == {k: sorted(v, key=repr) for k, v in first.items()}
