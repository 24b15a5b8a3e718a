"""Weekly availability as UTC hour buckets: the pure conversion (DST, half-hour zones, nights), the
contract "availability buckets across zones" on every backend, and the path from stored
availability through the index to the API and the page."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime

import pytest

from search.availability import tutor_buckets, viewer_buckets, zones_changing
from search.backend import SearchBackend, SearchQuery, SearchQueryError
from tests.search.corpus import corpus, profile_id

TUESDAY = 1
WINTER = date(2026, 11, 25)  # Berlin CET (+1), New York EST (-5), Kolkata IST (+5:30)
WINTER_NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def hours(day: int, *utc_hours: int) -> set[int]:
    return {day * 24 + h for h in utc_hours}


# ---- pure ----------------------------------------------------------------------------------


def test_berlin_tuesday_evening_is_utc_17_to_20_in_winter():
    buckets = tutor_buckets("Europe/Berlin", {"1": [["18:00", "21:00"]]}, today=WINTER)
    assert set(buckets) == hours(TUESDAY, 17, 18, 19)


def test_a_dst_change_inside_the_period_gives_both_offsets():
    # 2026-03-29 Berlin springs forward: the four weeks from 2026-03-16 hold CET and CEST Tuesdays.
    buckets = tutor_buckets("Europe/Berlin", {"1": [["18:00", "21:00"]]}, today=date(2026, 3, 16))
    assert set(buckets) == hours(TUESDAY, 16, 17, 18, 19)
    summer = tutor_buckets("Europe/Berlin", {"1": [["18:00", "21:00"]]}, today=date(2026, 6, 1))
    assert set(summer) == hours(TUESDAY, 16, 17, 18)


def test_windows_that_cross_utc_midnight_and_the_week_wrap():
    # Sydney (UTC+11 in November): Monday 08:00-10:00 is Sunday 21:00-23:00 UTC.
    assert set(tutor_buckets("Australia/Sydney", {"0": [["08:00", "10:00"]]}, today=WINTER)) == hours(6, 21, 22)
    # A window to midnight ("24:00") in New York reaches into the next UTC day.
    assert set(tutor_buckets("America/New_York", {"4": [["22:00", "24:00"]]}, today=WINTER)) == hours(5, 3, 4)


def test_half_hour_zone_touches_both_hours():
    buckets = tutor_buckets("Asia/Kolkata", {"1": [["18:00", "20:00"]]}, today=WINTER)
    assert set(buckets) == hours(TUESDAY, 12, 13, 14)  # 12:30-14:30 UTC


def test_overrides_replace_the_weekly_windows_of_their_date():
    weekly = {"1": [["18:00", "21:00"]]}
    tuesdays = [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 15), date(2026, 12, 22)]
    off = {d: () for d in tuesdays}
    assert tutor_buckets("Europe/Berlin", weekly, off, today=WINTER) == ()
    extra = {date(2026, 11, 28): ((9 * 60, 10 * 60),)}  # a Saturday morning
    assert set(tutor_buckets("Europe/Berlin", weekly, extra, today=WINTER)) == hours(TUESDAY, 17, 18, 19) | hours(5, 8)


def test_no_zone_or_an_unknown_one_gives_no_buckets():
    assert tutor_buckets(None, {"1": [["18:00", "21:00"]]}, today=WINTER) == ()
    assert tutor_buckets("Mars/Olympus", {"1": [["18:00", "21:00"]]}, today=WINTER) == ()
    assert tutor_buckets("Europe/Berlin", {"1": [["bad"]], "9": [["10:00", "11:00"]]}, today=WINTER) == ()


def test_viewer_choices_in_their_zone():
    # New York Tuesday afternoon (12-17 EST) is 17:00-22:00 UTC.
    assert viewer_buckets(["tue"], ["afternoon"], "America/New_York", now=WINTER_NOW) == hours(TUESDAY, *range(17, 22))
    # Kolkata Tuesday evening (17-22 IST) is 11:30-16:30 UTC: six hours touched.
    assert viewer_buckets(["tue"], ["evening"], "Asia/Kolkata", now=WINTER_NOW) == hours(TUESDAY, *range(11, 17))
    # Sunday night runs into Monday morning and wraps around the week.
    assert viewer_buckets(["sun"], ["night"], "UTC", now=WINTER_NOW) == hours(6, 22, 23) | hours(0, *range(6))
    # No day: every day; no time: the whole day.
    assert len(viewer_buckets([], ["morning"], "UTC", now=WINTER_NOW)) == 7 * 6
    assert viewer_buckets(["wed"], [], "UTC", now=WINTER_NOW) == hours(2, *range(24))


def test_zones_changing_near_the_period_edges():
    zones = ["Europe/Berlin", "Asia/Kolkata", "America/New_York"]
    # Berlin changes on 29 March (entering the four weeks from 1 March); New York on 8 March (leaving
    # the period on that day).
    assert zones_changing(zones, today=date(2026, 3, 1)) == {"Europe/Berlin"}
    assert zones_changing(zones, today=date(2026, 3, 8)) == {"America/New_York"}
    assert zones_changing(zones, today=date(2026, 6, 1)) == set()


def test_query_refuses_bad_buckets():
    for bad in ([168], [-1], ["1"], "12", [True]):
        with pytest.raises(SearchQueryError) as caught:
            SearchQuery(availability=bad)
        assert caught.value.code == "bad_availability"
    assert SearchQuery(availability=[5, 3, 5]).availability == (3, 5)


# ---- the contract: availability buckets across zones ----------------------------------------


def _with(key: str, zone: str, weekly: dict) -> object:
    doc = next(d for d in corpus() if d.profile_id == profile_id(key))
    return dataclasses.replace(doc, availability=tutor_buckets(zone, weekly, today=WINTER))


async def _found(backend: SearchBackend, days: list[str], times: list[str], zone: str, **kw) -> set[uuid.UUID]:
    wanted = viewer_buckets(days, times, zone, now=WINTER_NOW)
    result = await backend.search(SearchQuery(availability=tuple(wanted), per_page=50, **kw))
    assert result.total == len(result.hits)
    return {h.profile_id for h in result.hits}


async def test_availability_buckets_across_zones(backend: SearchBackend):
    await backend.index(
        [
            _with("anna", "Europe/Berlin", {"1": [["18:00", "21:00"]]}),  # Tue evening in Berlin
            _with("yuki", "Asia/Kolkata", {"1": [["18:00", "20:00"]]}),  # Tue evening in Kolkata
            _with("tom", "Europe/London", {"1": [["07:00", "09:00"]]}),  # Tue morning in London
            _with("jose", "Europe/Madrid", {}),  # availability set, no windows
        ]
    )
    anna, yuki, tom = profile_id("anna"), profile_id("yuki"), profile_id("tom")
    # A Berlin evening tutor matches a New York viewer's afternoon (17-22 UTC).
    assert await _found(backend, ["tue"], ["afternoon"], "America/New_York") == {anna}
    # ... and not a New York Tuesday evening (22-03 UTC) or a Wednesday afternoon.
    assert await _found(backend, ["tue"], ["evening"], "America/New_York") == set()
    assert await _found(backend, ["wed"], ["afternoon"], "America/New_York") == set()
    # The Kolkata tutor (12:30-14:30 UTC) for a Kolkata viewer's evening, and a Berlin viewer's afternoon
    # (11-16 UTC, which also holds nobody else).
    assert await _found(backend, ["tue"], ["evening"], "Asia/Kolkata") == {yuki}
    assert await _found(backend, ["tue"], ["afternoon"], "Europe/Berlin") == {yuki}
    # A New York viewer's Tuesday early hours (night of Monday) hold London's 07:00? No: 07-09 UTC is 02-04 EST.
    assert await _found(backend, ["mon"], ["night"], "America/New_York") == {tom}
    # Several days and times: any of them; combined with other filters (AND).
    assert await _found(backend, ["tue"], ["morning", "evening"], "Europe/London") == {tom, anna}
    assert await _found(backend, ["tue"], [], "UTC", filters={"instrument": ["piano"]}) == {anna, yuki}
    # Facet counts follow the availability filter.
    wanted = viewer_buckets(["tue"], [], "UTC", now=WINTER_NOW)
    result = await backend.search(SearchQuery(availability=tuple(wanted)))
    assert result.total == 3 and result.facets["instrument"] == {"piano": 2, "drums": 1, "voice": 1}


def test_meilisearch_filters_the_availability_array():
    from search.meili import filter_expression

    query = SearchQuery(availability=[41, 40], filters={"instrument": ["piano"]})
    assert filter_expression(query) == '(instrument = "piano") AND availability IN [40, 41]'


# ---- stored availability -> index -> API and page -------------------------------------------


@pytest.fixture
async def berlin_tutor():
    """Anna (Berlin, Tuesday 18-21) and Tom (no availability) as approved profiles, indexed through sync."""
    from marketplace.accounts.models import Role, User
    from marketplace.db import transaction
    from marketplace.tutors.models import ProfileStatus, TutorProfile
    from scheduling.models import Availability
    from search.sync import reindex_all
    from tests.search import corpus as c

    users = {}
    async with transaction() as session:
        for row in c.TUTORS:
            if row[0] not in ("anna", "tom"):
                continue
            user = User(
                email=f"{row[0]}@example.com",
                password_hash="x",
                display_name=row[1],
                role=Role.tutor,
                timezone="UTC",
                locale="en",
            )
            session.add(user)
            await session.flush()
            users[row[0]] = user.id
            session.add(
                TutorProfile(
                    id=c.profile_id(row[0]),
                    user_id=user.id,
                    slug=row[0],
                    status=ProfileStatus.approved,
                    draft=c.live(row),
                    live=c.live(row),
                    approved_at=c.NOW,
                )
            )
        session.add(Availability(tutor_id=users["anna"], zone="Europe/Berlin", weekly={"1": [["18:00", "21:00"]]}))
    await reindex_all()
    return users


def _viewer_afternoon_in_new_york() -> str:
    # The evening in Berlin is an afternoon in New York whatever the date (both zones shift together
    # except for a few weeks a year; the assertion below only uses Tuesday afternoon, 12-17).
    return "day=tue&time=afternoon&tz=America/New_York"


async def test_api_and_page_filter_by_day_and_time_in_the_viewers_zone(client, berlin_tutor):
    response = await client.get("/api/v1/tutors?" + _viewer_afternoon_in_new_york())
    assert response.status_code == 200, response.text
    assert [h["slug"] for h in response.json()["hits"]] == ["anna"]
    morning = await client.get("/api/v1/tutors?day=tue&time=morning&tz=America/New_York")
    assert morning.json()["total"] == 0
    everyone = await client.get("/api/v1/tutors")
    assert everyone.json()["total"] == 2
    page = await client.get("/tutors?" + _viewer_afternoon_in_new_york())
    assert page.status_code == 200
    assert 'href="/tutors/anna"' in page.text and 'href="/tutors/tom"' not in page.text
    assert 'name="day" value="tue" checked' in page.text and 'name="time" value="afternoon" checked' in page.text
    assert "America/New_York" in page.text  # the zone the choice is read in


@pytest.mark.parametrize(
    "query",
    ["day=someday", "time=teatime", "tz=Mars/Olympus&day=tue", "day=" + "x" * 5000],
)
async def test_bad_availability_input_is_a_clear_4xx(client, query):
    api = await client.get("/api/v1/tutors?" + query)
    assert api.status_code == 400 and api.json()["detail"]
    page = await client.get("/tutors?" + query)
    assert page.status_code == 422


async def test_saving_availability_and_scheduling_the_indexer_reindexes(client, berlin_tutor, drain_jobs):
    from sqlalchemy import select

    from marketplace.db import transaction
    from marketplace.ports import search_indexer
    from scheduling.models import Availability
    from search.sync import schedule_tutor_index
    from tests.search.corpus import profile_id

    async with transaction() as session:
        avail = (
            await session.execute(select(Availability).where(Availability.tutor_id == berlin_tutor["anna"]))
        ).scalar_one()
        avail.weekly = {"1": [["09:00", "10:00"]]}  # Tuesday morning in Berlin: 08-09 UTC
        search_indexer().schedule(session, profile_id("anna"))
    drain_jobs()
    moved = await client.get("/api/v1/tutors?day=tue&time=morning&tz=Europe/Berlin")
    assert [h["slug"] for h in moved.json()["hits"]] == ["anna"]

    async with transaction() as session:
        session.add(
            Availability(tutor_id=berlin_tutor["tom"], zone="Europe/London", weekly={"5": [["10:00", "11:00"]]})
        )
        schedule_tutor_index(session, berlin_tutor["tom"])
    drain_jobs()
    saturday = await client.get("/api/v1/tutors?day=sat&time=morning&tz=Europe/London")
    assert [h["slug"] for h in saturday.json()["hits"]] == ["tom"]


async def test_reindex_loads_availability_in_bulk(berlin_tutor):
    from search.sync import reindex_all
    from tests.helpers import count_statements

    with count_statements() as statements:
        await reindex_all()
    availability_reads = [s for s in statements if "FROM availabilities" in s]
    assert len(availability_reads) == 1  # one query for the batch, not one per tutor
