"""Index sync: the search index follows approvals, suspensions, live edits, reviews and bans through
jobs enqueued after commit; the jobs are idempotent; reindex and reconcile repair what they missed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from marketplace import jobs
from marketplace.accounts.models import User
from marketplace.accounts.services import user_ban, user_unban
from marketplace.cli import main
from marketplace.db import session_factory, transaction, utcnow
from marketplace.reviews import services as review_services
from marketplace.tutors import services
from marketplace.tutors.models import TutorProfile
from search.backend import SearchHit, SearchQuery
from search.documents import document_from_profile
from search.sql import DOCS, SqlSearchBackend
from search.sync import index_profile, reconcile, reindex_all, search_backend
from tests.reviews.support import completed_lesson, quick_user
from tests.tutors_profiles.test_moderation import fill, submit

GOOD_TEXT = "A patient teacher; my scales finally make sense."


def forms(name: str, *, price: str = "45") -> dict:
    return {
        "basics": {"display_name": [name], "headline": ["Lessons for adult beginners"]},
        "teaching": {"instrument": ["piano"], "levels_piano": ["beginner"], "genre": ["jazz"], "age_group": ["adults"]},
        "place": {"language": ["de", "en"], "online": ["1"]},
        "pricing": {"currency": ["EUR"], "offer_60": ["1"], "price_60": [price]},
    }


async def tutor_with_profile(name: str = "Clara Weiss", *, approve_by: User | None = None) -> tuple[User, uuid.UUID]:
    tutor = await quick_user(role="tutor", name=name)
    profile = await fill(tutor, forms(name))
    await submit(tutor)
    if approve_by is not None:
        async with transaction() as session:
            await services.profile_approve(session, admin=approve_by, profile_id=profile.id)
    return tutor, profile.id


async def hits(q: str = "") -> dict[uuid.UUID, SearchHit]:
    result = await SqlSearchBackend().search(SearchQuery(q=q, per_page=50))
    return {hit.profile_id: hit for hit in result.hits}


async def indexed_ids() -> set[uuid.UUID]:
    async with session_factory()() as session:
        return set((await session.execute(select(DOCS.c.profile_id))).scalars())


@pytest.fixture
async def admin() -> User:
    return await quick_user(role="admin", name="Root")


@pytest.fixture
def drain(drain_jobs):
    async def go() -> None:
        await asyncio.to_thread(drain_jobs)

    return go


async def test_approval_makes_a_profile_searchable_suspension_removes_it_reinstatement_brings_it_back(admin, drain):
    _tutor, profile_id = await tutor_with_profile()
    await drain()
    assert await hits() == {}  # pending: not searchable
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile_id)
    await drain()
    found = await hits("klavier")  # the instrument's German name is indexed too
    assert list(found) == [profile_id]
    assert found[profile_id].name == "Clara Weiss" and found[profile_id].price_minor == 4500

    async with transaction() as session:
        await services.profile_suspend(session, admin=admin, profile_id=profile_id, reason="Reported for spam")
    await drain()
    assert await hits() == {} and await SqlSearchBackend().count() == 0

    async with transaction() as session:
        await services.profile_reinstate(session, admin=admin, profile_id=profile_id, reason="Appeal")
    await drain()
    assert list(await hits("weiss")) == [profile_id]


async def test_jobs_are_enqueued_only_after_commit(admin, monkeypatch):
    _tutor, profile_id = await tutor_with_profile()
    sent: list = []
    monkeypatch.setattr(jobs.broker, "enqueue", lambda message, **kw: sent.append(message))
    with pytest.raises(RuntimeError):
        async with transaction() as session:
            await services.profile_approve(session, admin=admin, profile_id=profile_id)
            raise RuntimeError("boom")
    assert sent == []
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile_id)
        assert sent == []
    assert [(m.actor_name, m.args) for m in sent] == [("search_index_profile", (str(profile_id),))]


async def test_a_non_material_price_edit_updates_the_indexed_price(admin, drain):
    tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    assert (await hits())[profile_id].price_minor == 4500
    await fill(tutor, {"pricing": forms("Clara Weiss", price="50,50")["pricing"]})
    await drain()
    assert (await hits())[profile_id].price_minor == 5050


async def test_reviews_move_the_indexed_rating(admin, drain):
    tutor, profile_id = await tutor_with_profile(approve_by=admin)
    student = await quick_user(name="Ana Student")
    booking = await completed_lesson(tutor, student)
    await drain()
    assert (await hits())[profile_id].rating is None
    async with transaction() as session:
        me = await session.get(User, student.id)
        review = await review_services.review_create(
            session, student=me, booking_id=booking.id, rating=4, text=GOOD_TEXT
        )
    await drain()
    hit = (await hits())[profile_id]
    assert (hit.rating, hit.review_count) == (4.0, 1)
    async with transaction() as session:
        await review_services.review_hide(session, admin=admin, review_id=review.id, reason="Personal data")
    await drain()
    hit = (await hits())[profile_id]
    assert (hit.rating, hit.review_count) == (None, 0)


async def test_banning_the_tutor_removes_the_profile_and_unbanning_restores_it(admin, drain):
    tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    assert profile_id in await hits()
    async with transaction() as session:
        await user_ban(session, admin=admin, user_id=tutor.id, reason="fraud")
    await drain()
    assert await hits() == {}
    async with transaction() as session:
        await user_unban(session, admin=admin, user_id=tutor.id, reason="appeal")
    await drain()
    assert profile_id in await hits()


async def test_indexing_is_idempotent_and_a_missing_profile_is_deleted(admin, drain):
    _tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    assert await index_profile(profile_id=profile_id) == "indexed"
    assert await index_profile(profile_id=profile_id) == "indexed"
    assert await SqlSearchBackend().count() == 1
    assert await index_profile(profile_id=uuid.uuid4()) == "deleted"
    assert await SqlSearchBackend().count() == 1


async def test_reindex_all_rebuilds_everything_and_deletes_stale_documents(admin, monkeypatch):
    monkeypatch.setattr(jobs.broker, "enqueue", lambda message, **kw: None)  # the jobs are "lost"
    visible = {(await tutor_with_profile(f"Tutor {n}", approve_by=admin))[1] for n in range(5)}
    _pending_tutor, pending = await tutor_with_profile("Pending Tutor")
    suspended = visible.pop()
    async with transaction() as session:
        await services.profile_suspend(session, admin=admin, profile_id=suspended, reason="Reported for spam")
    backend = SqlSearchBackend()
    await backend.index([orphan_document(), orphan_document()])
    async with transaction(write=False) as session:
        profile = await session.get(TutorProfile, suspended)
    await backend.index([document_from_profile(profile.id, profile.user_id, profile.slug, profile.live, 0, 0, 0, None)])
    assert await backend.count() == 3

    calls: list[tuple[int, int]] = []
    assert await reindex_all(batch=2, progress=lambda done, total: calls.append((done, total))) == 4
    assert await indexed_ids() == visible and pending not in visible
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and len(calls) == 3  # pages of two
    assert await reindex_all() == 4  # again: the same index
    assert await indexed_ids() == visible


def orphan_document():
    live = {"display_name": "Gone Tutor", "headline": "x", "currency": "EUR"}
    return document_from_profile(uuid.uuid4(), uuid.uuid4(), f"gone-{uuid.uuid4().hex[:8]}", live, 0, 0, 0, None)


async def test_reconcile_repairs_missing_stale_and_orphan_documents(admin, drain):
    ids = [(await tutor_with_profile(f"Tutor {n}", approve_by=admin))[1] for n in range(3)]
    await drain()
    assert await reconcile() == {"visible": 3, "missing": 0, "stale": 0, "extra": 0, "indexed": 0, "deleted": 0}
    backend = SqlSearchBackend()
    await backend.delete([ids[0]])  # a lost job
    await backend.index([orphan_document()])  # a profile deleted behind the index's back
    async with transaction() as session:  # changed without the service (no job)
        profile = await session.get(TutorProfile, ids[1])
        profile.live = {**profile.live, "durations": [{"minutes": 60, "price": 9900}]}
    result = await reconcile()
    assert result == {"visible": 3, "missing": 1, "stale": 1, "extra": 1, "indexed": 2, "deleted": 1}
    assert await indexed_ids() == set(ids)
    assert (await hits())[ids[1]].price_minor == 9900


async def test_the_periodic_clock_sends_the_reconcile_job_which_repairs_drift(admin, drain):
    from marketplace import periodic

    profile_id = (await tutor_with_profile("Tutor Drift", approve_by=admin))[1]
    await drain()
    await SqlSearchBackend().delete([profile_id])  # a lost job
    job = periodic.registered()["search_reconcile"]
    assert job.seconds == 15 * 60
    periodic.tick(now=job.next_at)  # due: the clock sends it (with whatever else is due)
    await drain()
    assert await indexed_ids() == {profile_id}


def run_cli(*args: str):
    # Called through asyncio.to_thread: the command runs (and closes) its own event loop.
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


async def test_the_reindex_command_prints_the_count(admin, monkeypatch):
    monkeypatch.setattr(jobs.broker, "enqueue", lambda message, **kw: None)
    for n in range(2):
        await tutor_with_profile(f"Tutor {n}", approve_by=admin)
    result = await asyncio.to_thread(run_cli, "search", "reindex", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert "Indexed 2 tutor profiles in" in result.output
    assert await SqlSearchBackend().count() == 2
    result = await asyncio.to_thread(run_cli, "search", "reconcile")
    assert result.exit_code == 0 and "missing: 0" in result.output


async def test_demo_tutors_are_searchable():
    result = await asyncio.to_thread(run_cli, "demo", "--tutors", "6", "--students", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    async with session_factory()() as session:
        visible = (
            await session.execute(
                select(TutorProfile.id)
                .join(User, User.id == TutorProfile.user_id)
                .where(TutorProfile.status == "approved", User.banned_at.is_(None))
            )
        ).scalars()
        visible = set(visible)
    assert visible and await indexed_ids() == visible
    assert f"{len(visible)} tutors searchable" in result.output


def test_the_backend_follows_the_settings(monkeypatch):
    from marketplace.settings import get_settings

    monkeypatch.delenv("MEILI_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert isinstance(search_backend(), SqlSearchBackend)
    finally:
        get_settings.cache_clear()


async def test_stale_timestamps_are_compared_in_utc(admin, drain):
    _tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    async with transaction() as session:  # indexed long ago: stale
        await session.execute(update(DOCS).values(indexed_at=utcnow().replace(year=2000)))
    result = await reconcile()
    assert (result["stale"], result["indexed"]) == (1, 1)
    assert profile_id in await indexed_ids()


def test_a_stopping_in_process_worker_gives_fetched_messages_back():
    """Otherwise a message fetched by a worker that stops is lost and ``drain`` waits for it forever."""
    import dramatiq

    broker = jobs._StubBroker(middleware=[])
    broker.declare_queue("search")
    broker.enqueue(dramatiq.Message(queue_name="search", actor_name="a", args=(), kwargs={}, options={}))
    queue = broker.queues["search"]
    consumer = broker.consume("search")
    fetched = next(consumer)
    assert queue.qsize() == 0 and queue.unfinished_tasks == 1
    consumer.requeue([fetched])
    assert queue.qsize() == 1 and queue.unfinished_tasks == 1
    consumer.ack(next(consumer))
    assert queue.unfinished_tasks == 0


def test_one_backend_factory_passes_the_rates_to_meilisearch(monkeypatch):
    from decimal import Decimal

    from marketplace.settings import get_settings
    from search import controllers
    from search.backend import search_backend as factory
    from search.meili import MeiliSearchBackend

    assert controllers.search_backend is factory and search_backend is factory  # one factory
    monkeypatch.setenv("MEILI_URL", "http://meili.test:7700")
    get_settings.cache_clear()
    try:
        fresh = factory(rates={"USD": Decimal("1.5")}, shared=False)
        assert isinstance(fresh, MeiliSearchBackend) and fresh.rates == {"EUR": 1, "USD": Decimal("1.5")}
        shared = factory(rates={"GBP": Decimal("0.9")})
        assert factory() is shared and shared.rates["GBP"] == Decimal("0.9")
        factory(rates={"GBP": Decimal("0.8")})
        assert shared.rates["GBP"] == Decimal("0.8")  # the shared client follows the current table
    finally:
        monkeypatch.delenv("MEILI_URL")
        get_settings.cache_clear()


async def test_reconcile_reindexes_a_tutor_whose_availability_changed(admin, drain):
    from scheduling.models import Availability

    tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    assert (await reconcile())["stale"] == 0
    async with transaction() as session:  # saved without scheduling the indexer (a lost job)
        session.add(Availability(tutor_id=tutor.id, zone="Europe/Berlin", weekly={"1": [["18:00", "21:00"]]}))
    result = await reconcile()
    assert (result["stale"], result["indexed"]) == (1, 1)
    async with transaction(write=False) as session:
        buckets = (await session.execute(select(DOCS.c.availability).where(DOCS.c.profile_id == profile_id))).scalar()
    assert buckets and set(buckets) <= set(range(24, 48))  # Tuesday in UTC


async def test_daily_refresh_reindexes_tutors_in_zones_whose_offset_changes(admin, drain):
    from datetime import date

    from scheduling.models import Availability
    from search.sync import refresh_availability

    tutor, profile_id = await tutor_with_profile(approve_by=admin)
    await drain()
    async with transaction() as session:
        session.add(Availability(tutor_id=tutor.id, zone="Europe/Berlin", weekly={"1": [["18:00", "21:00"]]}))
    assert await refresh_availability(today=date(2026, 6, 1)) == 0  # no change near June
    assert await refresh_availability(today=date(2026, 3, 1)) == 1  # 29 March enters the four weeks
    async with transaction(write=False) as session:
        buckets = (await session.execute(select(DOCS.c.availability).where(DOCS.c.profile_id == profile_id))).scalar()
    assert buckets  # computed from the stored rules


@pytest.mark.parametrize("scan_above", [0, 5000])
async def test_availability_buckets_by_scan_equal_those_by_lookup(admin, scan_above, monkeypatch):
    """A full reindex reads the availability tables whole; a few tutors are looked up by id: the
    buckets are the same (overrides applied, tutors with only overrides or nothing get none)."""
    from datetime import timedelta

    from scheduling.models import Availability, AvailabilityOverride
    from search import availability

    tutors = [(await tutor_with_profile(f"Tutor {n}", approve_by=admin))[0] for n in range(4)]
    today = utcnow().date()
    async with transaction() as session:
        session.add(Availability(tutor_id=tutors[0].id, zone="Europe/Berlin", weekly={"1": [["18:00", "21:00"]]}))
        session.add(Availability(tutor_id=tutors[1].id, zone="Asia/Kolkata", weekly={"2": [["09:30", "12:00"]]}))
        for offset in range(7):  # tutor 1 takes this week off; tutor 2 has overrides but no rules
            for tutor in tutors[1:3]:
                day = today + timedelta(days=offset)
                session.add(AvailabilityOverride(tutor_id=tutor.id, on_date=day, windows=[], replace=True, note=""))
    ids = [t.id for t in tutors]
    monkeypatch.setattr(availability, "_SCAN_ABOVE", 5000)
    async with transaction(write=False) as session:
        by_lookup = await availability.availability_buckets(session, ids)
    monkeypatch.setattr(availability, "_SCAN_ABOVE", scan_above)
    async with transaction(write=False) as session:
        by_scan = await availability.availability_buckets(session, ids[:3])
    assert set(by_lookup) == {tutors[0].id, tutors[1].id} and by_lookup[tutors[0].id]
    assert by_scan == {k: v for k, v in by_lookup.items() if k in ids[:3]}
    assert await reindex_all() == 4
    async with transaction(write=False) as session:
        rows = dict((await session.execute(select(DOCS.c.user_id, DOCS.c.availability))).tuples().all())
    assert {k: tuple(v) for k, v in rows.items() if v} == by_lookup
