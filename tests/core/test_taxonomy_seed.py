"""The taxonomy is seeded by the migrations, with English and German names."""

from sqlalchemy import func, select

from marketplace.db import session_factory
from marketplace.tutors.models import TaxonomyKind, TaxonomyTerm


async def test_migrations_seed_instruments_genres_and_languages_in_english_and_german():
    async with session_factory()() as session:
        counts = dict(
            (await session.execute(select(TaxonomyTerm.kind, func.count()).group_by(TaxonomyTerm.kind))).all()
        )
        piano = (await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.slug == "piano"))).scalar_one()
        terms = (await session.execute(select(TaxonomyTerm))).scalars().all()
    assert counts[TaxonomyKind.instrument] >= 25
    assert counts[TaxonomyKind.genre] >= 15
    assert counts[TaxonomyKind.language] >= 10
    assert piano.name("de") == "Klavier" and piano.name("en") == "Piano"
    assert all(t.names.get("en") and t.names.get("de") for t in terms)
