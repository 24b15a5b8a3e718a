"""Deterministic demo data: the same seed gives the same people. Later issues extend it
(profiles, availability, bookings) through their own services."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from sqlalchemy import insert, select

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
    rng = random.Random(seed)
    hashed = password_hash(DEMO_PASSWORD)  # one hash for every demo account: hashing is slow by design
    result = DemoResult(tutors=tutors, students=students)
    fixed = [
        (Role.admin, ADMIN_EMAIL, "Ada Admin", "Europe/Berlin"),
        (Role.tutor, TUTOR_EMAIL, "Clara Klavier", "Europe/Berlin"),
        (Role.student, STUDENT_EMAIL, "Sam Student", "America/New_York"),
    ]
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
    async with transaction() as session:
        existing = set((await session.execute(select(User.email).where(User.email.like(f"%@{DEMO_DOMAIN}")))).scalars())
        missing = [r for r in rows if r["email"] not in existing]
        for start in range(0, len(missing), 2000):
            await session.execute(insert(User), missing[start : start + 2000])
    async with transaction() as session:
        from marketplace.tutors.demo import demo_tutor_profiles

        result.profiles = await demo_tutor_profiles(session, rng=rng)
    async with transaction() as session:
        from scheduling.demo import demo_availability  # hours, exceptions and upcoming lessons

        await demo_availability(session, rng=rng)
    async with transaction() as session:
        from payouts.demo import demo_payout_accounts  # enabled test-mode payouts: bookings are open

        await demo_payout_accounts(session)
    result.logins = [(role.value, email, DEMO_PASSWORD) for role, email, _, _ in fixed]
    return result
