"""Builders for approved tutors, completed lessons with reviews, photos and threads."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import transaction
from marketplace.reviews.models import Review
from marketplace.tutors import services
from marketplace.tutors.models import TutorProfile
from tests.helpers import make_user
from tests.tutors_profiles.test_moderation import fill, submit

PASSWORD = "correct horse battery"
BERLIN = {
    "geonameid": 2950159,
    "name": "Berlin",
    "country": "DE",
    "lat": 52.52,
    "lng": 13.41,
    "timezone": "Europe/Berlin",
}


async def admin_user(email: str = "root@example.com") -> User:
    async with transaction() as session:
        found = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    return found or await make_user(email=email, role="admin", name="Root Admin")


def photo_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def write_photo(seed: str) -> dict[str, Any]:
    """Renditions on disk as the onboarding stores them (the bytes need not be a real image here)."""
    from marketplace.tutors.controllers import media_dir

    digest = photo_hash(seed)
    folder = media_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for size in (96, 256, 640):
        (folder / f"{digest}-{size}.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 " + seed.encode())
    (folder / f"{digest}-640.jpg").write_bytes(b"\xff\xd8\xff\xe0" + seed.encode())
    return {"hash": digest, "sizes": [96, 256, 640]}


async def approved_tutor(
    email: str = "clara@example.com", name: str = "Clara Klavier", *, photo: bool = True, **extra: Any
) -> tuple[User, TutorProfile]:
    """A tutor with an approved profile: the moderation tests' complete forms plus place, about,
    trial and photo."""
    admin = await admin_user()
    tutor = await make_user(email=email, role="tutor", name=name)
    await fill(tutor)
    fragments = {
        "basics": {"display_name": name, "headline": "Jazz piano for adult beginners"},
        "place": {
            "languages": ["de", "en"],
            "online": True,
            "in_person": True,
            "city": BERLIN,
            "travel_radius_km": 15,
        },
        "pricing": {
            "currency": "EUR",
            "durations": [{"minutes": 45, "price": 3500}, {"minutes": 60, "price": 4500}],
            "trial": {"minutes": 30, "price": 1500},
        },
        "about": {
            "bio": "I love **jazz**.\n\n- standards\n- improvisation",
            "intro_video": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "experience_years": 12,
            "qualifications": "Master of Music, Berlin\nJazz diploma",
        },
    }
    if photo:
        fragments["photo"] = {"photo": write_photo(email)}
    for key, value in extra.items():
        fragments.setdefault("about", {})[key] = value
    async with transaction() as session:
        for step, fragment in fragments.items():
            await services.profile_save_step(session, user=tutor, step=step, fragment=fragment)
    await submit(tutor)
    async with transaction() as session:
        profile = await services.profile_approve(session, admin=admin, profile_id=(await _profile_id(session, tutor)))
    return tutor, profile


async def _profile_id(session, tutor: User):
    return (await services.profile_for_user(session, user=tutor)).id


async def set_live(profile_id, **fields: Any) -> None:
    """Change the live document directly (data written before today's validation rules)."""
    async with transaction() as session:
        profile = await session.get(TutorProfile, profile_id)
        live = copy.deepcopy(profile.live)
        live.update(fields)
        profile.live = live


async def add_reviews(tutor: User, count: int, *, start: int = 0, reply: str | None = None) -> list[Review]:
    """``count`` completed lessons, each with a review (the n-th one newer than the one before),
    by students created on the way; the profile's rating aggregates follow."""
    from scheduling.services import booking_record_completed

    base = datetime(2026, 1, 1, 10, tzinfo=UTC)
    reviews = []
    students = [
        await make_user(email=f"student{start + n}@example.com", name=f"Stu{start + n} Dent") for n in range(count)
    ]
    async with transaction() as session:
        for n, student in enumerate(students, start=start):
            starts = base + timedelta(days=n)
            booking = await booking_record_completed(
                session,
                tutor_id=tutor.id,
                student_id=student.id,
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                price_amount=4500,
                currency="EUR",
            )
            rating = 5 if n % 2 == 0 else 4
            review = Review(
                booking_id=booking.id,
                tutor_id=tutor.id,
                student_id=student.id,
                rating=rating,
                text=f"Review number {n}",
                editable_until=starts + timedelta(days=14),
                reply_text=reply,
                created_at=starts + timedelta(hours=2),
            )
            session.add(review)
            reviews.append(review)
        profile = await services.profile_for_user(session, user=tutor)
        profile.rating_count += count
        profile.rating_sum += sum(r.rating for r in reviews)
    return reviews
