"""Demo tutors: believable profiles over the whole taxonomy, 40+ real cities on five continents,
prices in the city's currency, avatars, reviews from completed lessons; most approved, some
pending, some suspended and a few unfinished drafts so that the admin pages have work."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.db import utcnow
from marketplace.reviews.models import Review
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TaxonomyTerm, TutorProfile
from marketplace.tutors.places import City, city_search
from marketplace.tutors.schemas import LEVELS
from scheduling.models import Booking, BookingStatus

# (city, country code, currency, languages spoken there besides English)
CITIES = [
    ("Berlin", "DE", "EUR", ["de"]),
    ("Munich", "DE", "EUR", ["de"]),
    ("Hamburg", "DE", "EUR", ["de"]),
    ("Vienna", "AT", "EUR", ["de"]),
    ("Zurich", "CH", "CHF", ["de", "fr"]),
    ("Paris", "FR", "EUR", ["fr"]),
    ("Lyon", "FR", "EUR", ["fr"]),
    ("Madrid", "ES", "EUR", ["es"]),
    ("Barcelona", "ES", "EUR", ["es"]),
    ("Valencia", "ES", "EUR", ["es"]),
    ("Seville", "ES", "EUR", ["es"]),
    ("Lisbon", "PT", "EUR", ["pt"]),
    ("Porto", "PT", "EUR", ["pt"]),
    ("Rome", "IT", "EUR", ["it"]),
    ("Milan", "IT", "EUR", ["it"]),
    ("Amsterdam", "NL", "EUR", ["nl"]),
    ("Brussels", "BE", "EUR", ["fr", "nl"]),
    ("Stockholm", "SE", "SEK", ["sv"]),
    ("Warsaw", "PL", "PLN", ["pl"]),
    ("Kraków", "PL", "PLN", ["pl"]),
    ("London", "GB", "GBP", []),
    ("Manchester", "GB", "GBP", []),
    ("Dublin", "IE", "EUR", []),
    ("Istanbul", "TR", "EUR", ["tr"]),
    ("New York City", "US", "USD", ["es"]),
    ("Los Angeles", "US", "USD", ["es"]),
    ("Chicago", "US", "USD", []),
    ("Austin", "US", "USD", ["es"]),
    ("Nashville", "US", "USD", []),
    ("Toronto", "CA", "CAD", ["fr"]),
    ("Montréal", "CA", "CAD", ["fr"]),
    ("Mexico City", "MX", "MXN", ["es"]),
    ("Buenos Aires", "AR", "USD", ["es"]),
    ("São Paulo", "BR", "BRL", ["pt"]),
    ("Rio de Janeiro", "BR", "BRL", ["pt"]),
    ("Tokyo", "JP", "JPY", ["ja"]),
    ("Osaka", "JP", "JPY", ["ja"]),
    ("Seoul", "KR", "USD", ["ko"]),
    ("Mumbai", "IN", "INR", ["hi"]),
    ("Bengaluru", "IN", "INR", ["hi"]),
    ("Singapore", "SG", "USD", ["zh"]),
    ("Sydney", "AU", "AUD", []),
    ("Melbourne", "AU", "AUD", []),
    ("Cape Town", "ZA", "USD", []),
    ("Lagos", "NG", "USD", []),
    ("Nairobi", "KE", "USD", []),
]
# Price of a 60-minute lesson, in major units: (low, high)
PRICE_60 = {
    "EUR": (25, 80),
    "USD": (30, 95),
    "GBP": (25, 75),
    "CHF": (50, 120),
    "CAD": (35, 100),
    "AUD": (40, 110),
    "SEK": (300, 900),
    "PLN": (80, 250),
    "JPY": (3000, 9000),
    "INR": (800, 3000),
    "BRL": (80, 250),
    "MXN": (300, 1200),
}
ZERO_DECIMAL = {"JPY"}
HEADLINES = [
    "{instrument} lessons for curious beginners",
    "Patient {instrument} teacher, {genre} and more",
    "Conservatory-trained {instrument} tutor",
    "{genre} {instrument}: technique, theory and fun",
    "Learn {instrument} the way you love music",
    "{instrument} for adults who always wanted to play",
    "Exam preparation and {genre} repertoire on {instrument}",
    "Touring musician teaching {genre} {instrument}",
]
BIOS = [
    "I have taught **{instrument}** for {years} years, to children and adults alike.\n\n"
    "My lessons mix technique with songs you actually want to play. We start where you are.",
    "Hello! I studied {genre} and play in a band. In lessons we work on:\n\n"
    "- sound and technique\n- reading and ear training\n- *your* favourite pieces",
    "Music should be fun. I prepare students for exams and auditions, and I love helping adults "
    "rediscover the {instrument} after a long break.",
]
QUALIFICATIONS = [
    "Bachelor of Music, {city}",
    "Master's degree in performance",
    "Certified music teacher",
    "Twenty years of stage experience",
    "Member of the city orchestra",
]
AVATAR_COLOURS = [(107, 45, 92), (11, 95, 89), (31, 78, 140), (150, 60, 20), (60, 90, 30), (90, 50, 140)]


def demo_cities() -> list[tuple[City, str, list[str]]]:
    found = []
    for name, country, currency, langs in CITIES:
        matches = [c for c in city_search(name, limit=20) if c.country == country]
        if matches:
            found.append((matches[0], currency, langs))
    return found


def _price(hourly: float, currency: str, minutes: int) -> int:
    """A lesson's price from the tutor's hourly rate (shorter lessons cost a little more per minute)."""
    major = hourly * (minutes / 60) ** 0.9
    step = 100 if currency in {"JPY", "INR", "SEK", "MXN"} else 1
    major = max(step, round(major / step) * step)
    return int(major) if currency in ZERO_DECIMAL else int(major) * 100


def _avatar(letter: str, colour: tuple[int, int, int]) -> dict[str, Any]:
    """A generated portrait placeholder (initial on colour), through the same photo pipeline."""
    from PIL import Image, ImageDraw, ImageFont

    from marketplace.tutors import photos
    from marketplace.tutors.controllers import store_photo

    image = Image.new("RGB", (640, 640), colour)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", 340)
    except OSError:
        font = ImageFont.load_default(size=340)
    draw.text((320, 330), letter, fill=(255, 255, 255), font=font, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return store_photo(photos.process_photo(buffer.getvalue()))


class _Taxonomy:
    """The active taxonomy, with the per-tutor lists precomputed (a demo draws from them 100,000 times)."""

    def __init__(self, taxonomy: dict[str, list[str]], names: dict[str, str]) -> None:
        self.instruments = taxonomy["instrument"]
        self.genres = taxonomy["genre"]
        self.languages = taxonomy["language"]
        self.language_set = frozenset(self.languages)
        self.names = names
        self.other_instruments = {slug: [i for i in self.instruments if i != slug] for slug in self.instruments}
        self.other_genres = {slug: [g for g in self.genres if g != slug] for slug in self.genres}


def _document(
    rng: random.Random,
    index: int,
    user: dict,
    city: dict[str, Any],
    city_name: str,
    currency: str,
    local_langs: list[str],
    taxonomy: _Taxonomy,
    avatar: dict | None,
) -> dict[str, Any]:
    # The first instrument and genre go round the taxonomy, so that even a small demo covers it.
    main_instrument = taxonomy.instruments[index % len(taxonomy.instruments)]
    main_genre = taxonomy.genres[index % len(taxonomy.genres)]
    if user["display_name"] == "Clara Klavier":  # the demo log-in teaches what her name says
        main_instrument, main_genre = "piano", "jazz"
    others = taxonomy.other_instruments.get(main_instrument)
    if others is None:  # (a main instrument outside the active taxonomy)
        others = [i for i in taxonomy.instruments if i != main_instrument]
    instruments = [main_instrument, *rng.sample(others, k=rng.choice((0, 0, 1, 2)))]
    other_genres = taxonomy.other_genres.get(main_genre)
    if other_genres is None:
        other_genres = [g for g in taxonomy.genres if g != main_genre]
    genres = [main_genre, *rng.sample(other_genres, k=rng.randint(0, 3))]
    langs = list(dict.fromkeys(["en", *local_langs, *rng.sample(taxonomy.languages, k=rng.choice((0, 0, 1)))]))
    langs = [lang for lang in langs if lang in taxonomy.language_set][:4]
    first = taxonomy.names[instruments[0]]
    genre = taxonomy.names[genres[0]]
    years = rng.randint(2, 35)
    durations = sorted([*rng.sample([30, 45, 90], k=rng.randint(0, 2)), 60])
    hourly = rng.uniform(*PRICE_60[currency])
    in_person = rng.random() < 0.45
    doc: dict[str, Any] = {
        "display_name": user["display_name"],
        "headline": rng.choice(HEADLINES).format(instrument=first, genre=genre)[:120],
        "instruments": [
            {"slug": slug, "levels": [lvl for lvl in LEVELS if rng.random() < 0.7] or ["beginner"]}
            for slug in instruments
        ],
        "genres": genres,
        "age_groups": [a for a in ("children", "teens", "adults") if rng.random() < 0.7] or ["adults"],
        "languages": langs,
        "online": (not in_person) or rng.random() < 0.7,
        "in_person": in_person,
        "city": city,
        "travel_radius_km": rng.choice((0, 5, 10, 25)) if in_person else 0,
        "currency": currency,
        "durations": [{"minutes": m, "price": _price(hourly, currency, m)} for m in sorted(set(durations))],
        "trial": {"minutes": 30, "price": _price(hourly * 0.6, currency, 30)} if rng.random() < 0.35 else None,
        "bio": rng.choice(BIOS).format(instrument=first.lower(), genre=genre.lower(), years=years),
        "intro_video": "https://www.youtube.com/watch?v=dQw4w9WgXcQ" if rng.random() < 0.2 else None,
        "experience_years": years,
        "qualifications": rng.choice(QUALIFICATIONS).format(city=city_name),
    }
    if avatar:
        doc["photo"] = avatar
    return doc


RATINGS = (5, 4, 3, 2, 1)
RATING_CUM_WEIGHTS = (60, 85, 94, 98, 100)  # weights 60, 25, 9, 4, 2
REVIEWS_PER_TUTOR = (0, 1, 2, 3, 5, 8)
CHUNK_TUTORS = 10_000  # tutors generated and loaded at a time (bounded memory at any demo size)


async def demo_tutor_profiles(session: AsyncSession, *, rng: random.Random, with_reviews: bool = True) -> int:
    """Give every demo tutor without a profile one, plus reviews for the approved ones."""
    from marketplace.demo import DEMO_DOMAIN, TUTOR_EMAIL, Batch, bulk_load
    from marketplace.tutors.services import slugify

    terms = (await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.active.is_(True)))).scalars().all()
    by_kind: dict[str, list[str]] = {k.value: [] for k in TaxonomyKind}
    names = {}
    for term in sorted(terms, key=lambda t: (t.kind.value, t.slug)):
        by_kind[term.kind.value].append(term.slug)
        names[term.slug] = term.names.get("en", term.slug)
    taxonomy = _Taxonomy(by_kind, names)
    tutors = (
        await session.execute(
            select(User.id, User.email, User.display_name)
            .outerjoin(TutorProfile, TutorProfile.user_id == User.id)
            .where(User.role == Role.tutor, User.email.like(f"%@{DEMO_DOMAIN}"), TutorProfile.id.is_(None))
            .order_by(User.email)
        )
    ).all()
    if not tutors:
        return 0
    students = (
        (
            await session.execute(
                select(User.id)
                .where(User.role == Role.student, User.email.like(f"%@{DEMO_DOMAIN}"))
                .order_by(User.email)
            )
        )
        .scalars()
        .all()
    )

    def batches() -> Iterator[Batch]:
        # One shared location dict per city (rows are serialized one by one; nothing mutates them).
        cities = [(city.as_dict(), city.name, currency, langs) for city, currency, langs in demo_cities()]
        slugs: dict[str, str] = {}  # display name -> slug (a few hundred distinct names)
        avatars: dict[str, dict] = {}
        now = utcnow()
        choice, randint, getrandbits = rng.choice, rng.randint, rng.getrandbits
        profiles: list[dict[str, Any]] = []
        bookings: list[dict[str, Any]] = []
        reviews: list[dict[str, Any]] = []
        for index, (user_id, email, display_name) in enumerate(tutors):
            city, city_name, currency, local_langs = cities[index % len(cities)] if email != TUTOR_EMAIL else cities[0]
            letter = (display_name[:1] or "C").upper()
            if letter not in avatars and len(avatars) < 40:
                avatars[letter] = _avatar(letter, AVATAR_COLOURS[len(avatars) % len(AVATAR_COLOURS)])
            doc = _document(
                rng,
                index,
                {"display_name": display_name},
                city,
                city_name,
                currency,
                local_langs,
                taxonomy,
                avatars.get(letter),
            )
            # Fixed shares, so that even a small demo has work in every admin queue.
            status = (
                ProfileStatus.approved
                if email == TUTOR_EMAIL
                else ProfileStatus.pending
                if index % 20 == 7
                else ProfileStatus.suspended
                if index % 25 == 11
                else ProfileStatus.draft
                if index % 50 == 3
                else ProfileStatus.approved
            )
            profile_id = uuid.UUID(int=getrandbits(128), version=4)
            created = now - timedelta(days=randint(1, 700))
            rating_count = rating_sum = lessons = 0
            if with_reviews and status == ProfileStatus.approved and students:
                price = doc["durations"][0]["price"]
                for _ in range(choice(REVIEWS_PER_TUTOR)):
                    student_id = choice(students)
                    starts = now - timedelta(days=randint(3, 300), hours=randint(0, 12))
                    booking_id = uuid.UUID(int=getrandbits(128), version=4)
                    ends = starts + timedelta(minutes=60)
                    bookings.append(
                        {
                            "id": booking_id,
                            "tutor_id": user_id,
                            "student_id": student_id,
                            "starts_at": starts,
                            "ends_at": ends,
                            "blocked_from": starts,
                            "blocked_until": ends,
                            "status": BookingStatus.completed,
                            "price_amount": price,
                            "currency": currency,
                            "paid_at": starts - timedelta(days=2),
                            "completed_at": ends,
                            "created_at": starts - timedelta(days=3),
                            "updated_at": starts,
                        }
                    )
                    rating = rng.choices(RATINGS, cum_weights=RATING_CUM_WEIGHTS)[0]
                    reviewed = starts + timedelta(hours=2)
                    reviews.append(
                        {
                            "id": uuid.UUID(int=getrandbits(128), version=4),
                            "booking_id": booking_id,
                            "tutor_id": user_id,
                            "student_id": student_id,
                            "rating": rating,
                            "text": choice(REVIEW_TEXTS[rating]),
                            "editable_until": starts + timedelta(days=7, hours=2),
                            "created_at": reviewed,
                            "updated_at": reviewed,
                        }
                    )
                    rating_count += 1
                    rating_sum += rating
                    lessons += 1
            slug = slugs.get(display_name)
            if slug is None:
                slug = slugs[display_name] = slugify(display_name)
            profiles.append(
                {
                    "id": profile_id,
                    "user_id": user_id,
                    "slug": "clara-klavier" if email == TUTOR_EMAIL else f"{slug}-{index + 1}",
                    "status": status,
                    "onboarding_step": 6 if status != ProfileStatus.draft else 3,
                    "draft": doc,
                    "live": doc if status in (ProfileStatus.approved, ProfileStatus.suspended) else None,
                    "changes_pending": False,
                    "submitted_at": created if status != ProfileStatus.draft else None,
                    "approved_at": created + timedelta(days=1)
                    if status in (ProfileStatus.approved, ProfileStatus.suspended)
                    else None,
                    "suspension_reason": "Reported for asking students to pay outside Cadenza."
                    if status == ProfileStatus.suspended
                    else None,
                    "rating_count": rating_count,
                    "rating_sum": rating_sum,
                    "lessons_taught": lessons,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if len(profiles) >= CHUNK_TUTORS:
                # Bookings before the reviews that point at them.
                yield [(TutorProfile.__table__, profiles), (Booking.__table__, bookings), (Review.__table__, reviews)]
                profiles, bookings, reviews = [], [], []
        if profiles:
            yield [(TutorProfile.__table__, profiles), (Booking.__table__, bookings), (Review.__table__, reviews)]

    await bulk_load(session, batches())
    return len(tutors)


REVIEW_TEXTS = {
    5: [
        "Wonderful teacher: patient, precise and great fun. I play better every week.",
        "Exactly what I needed. Clear explanations and lovely pieces to practise.",
        "My daughter looks forward to every lesson. Highly recommended!",
    ],
    4: [
        "Very good lessons, well structured. Sometimes a little fast for me.",
        "Great feedback on my technique; the online sound was excellent.",
    ],
    3: ["Good teacher, but we spent a lot of time on theory.", "Fine lessons, nothing special."],
    2: ["Started late twice. The teaching itself was okay."],
    1: ["Did not match what the profile promised."],
}
