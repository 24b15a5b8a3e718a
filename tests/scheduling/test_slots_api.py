"""The slots API (GET /api/v1/tutors/{id}/slots) and the week picker on the profile page.

"Now" is frozen at 2026-02-25 12:00 UTC (``scheduling.api.clock``) so that March 2026 is ahead:
the US moves its clocks on 2026-03-08, the EU on 2026-03-29. A Berlin tutor teaching 18:00-21:00
is seen from New York 6 hours earlier, then 5, then 6 again; the expected times are written out,
not computed with zoneinfo.
"""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from marketplace.accounts.models import User
from marketplace.db import transaction, utcnow
from marketplace.tutors.models import ProfileStatus, TutorProfile
from scheduling.models import Availability, AvailabilityOverride, Booking, BookingMode, BookingStatus, ExternalBusy
from tests.helpers import make_user

NOW = datetime(2026, 2, 25, 12, 0, tzinfo=UTC)
EVENINGS = {str(d): [["18:00", "21:00"]] for d in range(7)}


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    import scheduling.api

    monkeypatch.setattr(scheduling.api, "clock", lambda: NOW)
    return NOW


def profile_doc(name: str, durations: tuple[int, ...] = (60,), trial: int | None = None) -> dict[str, Any]:
    return {
        "display_name": name,
        "headline": "Piano lessons",
        "instruments": [{"slug": "piano", "levels": ["beginner"]}],
        "age_groups": ["adults"],
        "languages": ["en"],
        "online": True,
        "currency": "EUR",
        "durations": [{"minutes": m, "price": 4000 + m} for m in durations],
        "trial": {"minutes": trial, "price": 1500} if trial else None,
    }


async def tutor_with_hours(
    *,
    email: str = "berta@example.com",
    name: str = "Berta Berlin",
    zone: str = "Europe/Berlin",
    weekly: dict[str, Any] | None = None,
    durations: tuple[int, ...] = (60,),
    trial: int | None = None,
    status: ProfileStatus = ProfileStatus.approved,
    with_availability: bool = True,
    payouts: bool = True,
    **rules: Any,
) -> tuple[User, TutorProfile]:
    """A tutor with a profile (approved by default), availability (evenings by default) and, as
    the profile's week picker requires to show times, an enabled (offline) payout account."""
    user = await make_user(email=email, role="tutor", name=name, tz=zone)
    doc = profile_doc(name, durations, trial)
    async with transaction() as session:
        profile = TutorProfile(
            user_id=user.id,
            slug=re.sub(r"[^a-z]+", "-", name.lower()),
            status=status,
            onboarding_step=6,
            draft=doc,
            live=doc if status == ProfileStatus.approved else None,
        )
        session.add(profile)
        if with_availability:
            settings = {"notice_minutes": 0, "horizon_days": 60, **rules}
            session.add(Availability(tutor_id=user.id, zone=zone, weekly=weekly or EVENINGS, **settings))
    if payouts:
        from tests.scheduling.bookings_support import enable_offline_payouts

        await enable_offline_payouts(user.id)
    return user, profile


async def add_booking(tutor: User, start: datetime, minutes: int = 60, *, student: User | None = None) -> None:
    student = student or await make_user(email=f"s-{uuid.uuid4().hex[:8]}@example.com")
    async with transaction() as session:
        session.add(
            Booking(
                tutor_id=tutor.id,
                student_id=student.id,
                starts_at=start,
                ends_at=start + timedelta(minutes=minutes),
                blocked_from=start,
                blocked_until=start + timedelta(minutes=minutes),
                status=BookingStatus.confirmed,
                price_amount=4060,
                currency="EUR",
            )
        )


async def get_slots(client, ident: Any, **params: Any):
    return await client.get(f"/api/v1/tutors/{ident}/slots", params=params)


def starts(body: dict[str, Any]) -> list[str]:
    return [slot["start"] for slot in body["slots"]]


def by_date(body: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for slot in body["slots"]:
        out.setdefault(slot["start"][:10], []).append(slot["start"][11:])
    return out


# ---- daylight saving time ---------------------------------------------------------------------


def _evening(hour: int, offset: str) -> list[str]:
    """Five 60-minute starts, every 30 minutes from ``hour``:00 (the tutor's 18:00-21:00)."""
    return [
        f"{h:02d}:{m:02d}:00{offset}" for h, m in ((hour, 0), (hour, 30), (hour + 1, 0), (hour + 1, 30), (hour + 2, 0))
    ]


# Every date of March 2026 as New York sees a Berlin tutor's 18:00-21:00: (first start, offset).
#   until 03-07: 18:00 CET (UTC+1) = 17:00 UTC = 12:00 EST (UTC-5): 6 hours apart
#   03-08..03-28: 18:00 CET = 17:00 UTC = 13:00 EDT (UTC-4): 5 hours apart
#   from 03-29: 18:00 CEST (UTC+2) = 16:00 UTC = 12:00 EDT: 6 hours apart
MARCH_NY = {
    **{date(2026, 3, d): (12, "-05:00") for d in range(1, 8)},
    **{date(2026, 3, d): (13, "-04:00") for d in range(8, 29)},
    **{date(2026, 3, d): (12, "-04:00") for d in range(29, 32)},
}


async def test_every_week_of_march_across_both_dst_changes(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    weeks = [date(2026, 2, 23) + timedelta(weeks=i) for i in range(6)]  # Mondays covering March
    seen: set[date] = set()
    for monday in weeks:
        sunday = monday + timedelta(days=6)
        response = await get_slots(client, profile.id, tz="America/New_York", **{"from": monday, "to": sunday})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tz"] == "America/New_York"
        assert body["duration"] == 60
        days = by_date(body)
        week = [monday + timedelta(days=i) for i in range(7)]
        assert sorted(days) == [d.isoformat() for d in week if d >= NOW.date()]  # nothing in the past
        for day_text, times in days.items():
            day = date.fromisoformat(day_text)
            if day.month != 3:
                continue
            hour, offset = MARCH_NY[day]
            assert times == _evening(hour, offset), day_text
            seen.add(day)
        for slot in body["slots"]:  # every slot is 60 real minutes, shown with the same offset
            start = datetime.fromisoformat(slot["start"])
            end = datetime.fromisoformat(slot["end"])
            assert end - start == timedelta(minutes=60)
            assert slot["end"][-6:] == slot["start"][-6:]
    assert seen == set(MARCH_NY)
    # The local difference between the tutor (Berlin) and the viewer (New York): 6 h, 5 h, 6 h.
    diff = {day: 18 - hour for day, (hour, _offset) in MARCH_NY.items()}
    assert diff[date(2026, 3, 7)] == 6 and diff[date(2026, 3, 8)] == 5
    assert diff[date(2026, 3, 28)] == 5 and diff[date(2026, 3, 29)] == 6


async def test_the_same_week_in_the_tutors_own_zone_keeps_the_wall_clock(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-27", "to": "2026-03-30"})
    ).json()
    assert by_date(body) == {
        "2026-03-27": _evening(18, "+01:00"),
        "2026-03-28": _evening(18, "+01:00"),
        "2026-03-29": _evening(18, "+02:00"),
        "2026-03-30": _evening(18, "+02:00"),
    }


async def test_half_hour_zone_viewer_sees_evenings_across_midnight(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    body = (await get_slots(client, profile.id, tz="Asia/Kolkata", **{"from": "2026-03-03", "to": "2026-03-03"})).json()
    # Monday 18:00-21:00 Berlin (CET) = 22:30 Monday to 01:30 Tuesday in Kolkata (UTC+05:30).
    assert starts(body) == [
        "2026-03-03T00:00:00+05:30",  # Monday 19:30 in Berlin
        "2026-03-03T00:30:00+05:30",  # Monday 20:00 in Berlin
        "2026-03-03T22:30:00+05:30",  # Tuesday 18:00 in Berlin
        "2026-03-03T23:00:00+05:30",
        "2026-03-03T23:30:00+05:30",
    ]
    assert body["slots"][0]["end"] == "2026-03-03T01:00:00+05:30"


# ---- rules that remove slots --------------------------------------------------------------------


async def test_buffers_around_an_existing_booking_remove_slots(client, frozen) -> None:
    tutor, profile = await tutor_with_hours(buffer_before=15, buffer_after=15)
    await add_booking(tutor, datetime(2026, 3, 3, 17, 0, tzinfo=UTC))  # 18:00-19:00 in Berlin
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-02", "to": "2026-03-03"})
    ).json()
    days = by_date(body)
    assert days["2026-03-02"] == _evening(18, "+01:00")
    # 18:00, 18:30 overlap the lesson; 19:00 would start 45 minutes after it ends (15 + 15 minutes of
    # breaks needed, but 19:00 - 15 min = 18:45 < 19:00 + 15 min); 19:30 is the first free start.
    assert days["2026-03-03"] == ["19:30:00+01:00", "20:00:00+01:00"]


async def test_without_buffers_the_slot_right_after_a_booking_is_free(client, frozen) -> None:
    tutor, profile = await tutor_with_hours()
    await add_booking(tutor, datetime(2026, 3, 3, 17, 0, tzinfo=UTC))
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-03", "to": "2026-03-03"})
    ).json()
    assert by_date(body)["2026-03-03"] == ["19:00:00+01:00", "19:30:00+01:00", "20:00:00+01:00"]


async def test_external_busy_time_blocks_slots(client, frozen) -> None:
    tutor, profile = await tutor_with_hours()
    async with transaction() as session:
        from scheduling.models import ExternalCalendar

        cal = ExternalCalendar(tutor_id=tutor.id, url="https://example.com/cal.ics")
        session.add(cal)
        await session.flush()
        start = datetime(2026, 3, 3, 18, 30, tzinfo=UTC)  # 19:30-20:00 in Berlin
        session.add(
            ExternalBusy(calendar_id=cal.id, tutor_id=tutor.id, starts_at=start, ends_at=start + timedelta(minutes=30))
        )
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-03", "to": "2026-03-03"})
    ).json()
    assert by_date(body)["2026-03-03"] == ["18:00:00+01:00", "18:30:00+01:00", "20:00:00+01:00"]


async def test_a_day_off_override_has_no_slots_and_extra_hours_add_some(client, frozen) -> None:
    tutor, profile = await tutor_with_hours()
    async with transaction() as session:
        session.add(
            AvailabilityOverride(tutor_id=tutor.id, on_date=date(2026, 3, 4), windows=[], replace=True, note="Holiday")
        )
        session.add(
            AvailabilityOverride(
                tutor_id=tutor.id, on_date=date(2026, 3, 5), windows=[["09:00", "10:00"]], replace=False, note=""
            )
        )
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-03", "to": "2026-03-05"})
    ).json()
    days = by_date(body)
    assert "2026-03-04" not in days
    assert days["2026-03-03"] == _evening(18, "+01:00")
    assert days["2026-03-05"] == ["09:00:00+01:00", *_evening(18, "+01:00")]


async def test_max_lessons_per_day_closes_a_full_day(client, frozen) -> None:
    tutor, profile = await tutor_with_hours(max_per_day=1)
    await add_booking(tutor, datetime(2026, 3, 5, 17, 0, tzinfo=UTC))
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-04", "to": "2026-03-06"})
    ).json()
    days = by_date(body)
    assert "2026-03-05" not in days
    assert days["2026-03-04"] == _evening(18, "+01:00")
    assert days["2026-03-06"] == _evening(18, "+01:00")


async def test_notice_and_horizon_limit_the_range(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(notice_minutes=6 * 60 + 30)  # earliest start 18:30 UTC on 02-25
    body = (await get_slots(client, profile.id, tz="UTC", **{"from": "2026-02-25", "to": "2026-02-25"})).json()
    assert starts(body) == ["2026-02-25T18:30:00+00:00", "2026-02-25T19:00:00+00:00"]
    # Past the horizon (60 days: until 2026-04-26 12:00 UTC) there are just fewer slots.
    late = await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-04-20", "to": "2026-05-10"})
    assert late.status_code == 200
    assert sorted(by_date(late.json())) == [f"2026-04-{d}" for d in range(20, 26)]


# ---- defaults ---------------------------------------------------------------------------------


async def test_defaults_today_in_tz_a_week_and_the_first_duration(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(durations=(90, 60), trial=30)
    body = (await get_slots(client, profile.id, tz="Europe/Berlin")).json()
    assert body["duration"] == 90
    assert sorted(by_date(body)) == [f"2026-02-{d}" for d in range(25, 29)] + [f"2026-03-0{d}" for d in range(1, 4)]
    assert by_date(body)["2026-02-25"] == ["18:00:00+01:00", "18:30:00+01:00", "19:00:00+01:00", "19:30:00+01:00"]
    trial = (await get_slots(client, profile.id, tz="Europe/Berlin", duration=30, **{"from": "2026-03-02"})).json()
    assert trial["duration"] == 30
    assert len(by_date(trial)["2026-03-02"]) == 6  # 18:00 ... 20:30


async def test_today_is_the_viewers_date(client, monkeypatch: pytest.MonkeyPatch) -> None:
    import scheduling.api

    # 2026-02-26 02:00 UTC is still the 25th in New York, already the 26th in Tokyo.
    monkeypatch.setattr(scheduling.api, "clock", lambda: datetime(2026, 2, 26, 2, 0, tzinfo=UTC))
    _tutor, profile = await tutor_with_hours()
    ny = (await get_slots(client, profile.id, tz="America/New_York", to="2026-02-26")).json()
    tokyo = (await get_slots(client, profile.id, tz="Asia/Tokyo", to="2026-02-27")).json()
    assert sorted(by_date(ny)) == ["2026-02-26"]  # the 25th's evening in Berlin is over
    assert starts(tokyo)[0] == "2026-02-27T02:00:00+09:00"  # Thursday 18:00 in Berlin


async def test_slug_works_like_the_id(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    by_id = (await get_slots(client, profile.id, tz="UTC", **{"from": "2026-03-02"})).json()
    by_slug = (await get_slots(client, profile.slug, tz="UTC", **{"from": "2026-03-02"})).json()
    assert by_id == by_slug and by_id["slots"]


async def test_a_tutor_without_availability_has_no_slots(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(with_availability=False)
    response = await get_slots(client, profile.id, tz="UTC")
    assert response.status_code == 200
    assert response.json() == {"tz": "UTC", "duration": 60, "slots": []}


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"tz": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
        ({"tz": "localtime"}, "not a time zone"),
        ({"from": "2026-3-2"}, "must be a date"),
        ({"from": "2026-02-30"}, "must be a date"),
        ({"to": "tomorrow"}, "must be a date"),
        ({"from": "2026-03-10", "to": "2026-03-09"}, "must not be after"),
        ({"from": "2026-03-01", "to": "2026-06-01"}, "at most 90 days"),
        ({"from": "9999-12-31"}, "too far"),
        ({"duration": "45"}, "does not offer 45-minute lessons"),
        ({"duration": "sixty"}, "malformed"),
    ],
)
async def test_bad_input_is_a_clear_400(client, frozen, params: dict[str, str], needle: str) -> None:
    _tutor, profile = await tutor_with_hours(durations=(60,), trial=30)
    response = await get_slots(client, profile.id, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    assert needle in body["detail"], body


async def test_only_public_profiles_have_slots(client, frozen) -> None:
    _t1, pending = await tutor_with_hours(email="p@example.com", name="Pat Pending", status=ProfileStatus.pending)
    banned_user, banned = await tutor_with_hours(email="b@example.com", name="Bo Banned")
    async with transaction() as session:
        (await session.get(User, banned_user.id)).banned_at = utcnow()
    for ident in (pending.id, pending.slug, banned.id, uuid.uuid4(), "nobody-here"):
        response = await get_slots(client, ident)
        assert response.status_code == 404, ident
        assert response.json()["status"] == 404


async def test_the_api_is_documented_in_the_openapi_schema(client) -> None:
    schema = (await client.get("/api/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/tutors/{tutor}/slots"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"tutor", "from", "to", "tz", "duration"}
    assert params["from"]["schema"]["format"] == "date" and params["to"]["schema"]["format"] == "date"
    assert "integer" in str(params["duration"]["schema"])
    assert all(p.get("description") for p in params.values())
    assert {"200", "400", "404"} <= set(operation["responses"])
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    ref = ok["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"tz", "duration", "slots"}


# ---- the week picker on the profile page ---------------------------------------------------------


async def test_profile_page_shows_a_week_of_times_in_the_chosen_zone(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(durations=(60, 45), trial=30)
    response = await client.get(f"/tutors/{profile.slug}", params={"tz": "America/New_York", "week": "2026-03-06"})
    assert response.status_code == 200
    html = response.text
    assert 'id="week-picker"' in html
    assert '<option value="America/New_York" selected>America/New York</option>' in html
    # Friday 6 March (EST) and Sunday 8 March (EDT, after the US change) in New York.
    assert '<time datetime="2026-03-06T12:00:00-05:00">12:00\u202fPM</time>' in html
    assert '<time datetime="2026-03-08T13:00:00-04:00">1:00\u202fPM</time>' in html
    assert f'href="/book/{profile.slug}?start=2026-03-06T17:00:00Z&amp;duration=60"' in html
    assert "Friday, March 6" in html
    assert html.count('class="week-day"') == 7
    assert '<h3 id="week-range">Mar 6\u2009\u2013\u200912, 2026</h3>' in html
    # Lesson lengths: the offered ones and the trial; the paging links work without JavaScript.
    assert '<option value="30"' in html and "30 minutes (trial lesson)" in html
    assert f'href="/tutors/{profile.slug}?week=2026-03-13&amp;tz=America%2FNew_York&amp;duration=60#book"' in html
    assert f'href="/tutors/{profile.slug}?week=2026-02-27&amp;tz=America%2FNew_York&amp;duration=60#book"' in html


async def test_week_picker_days_without_times_say_so_and_past_weeks_start_today(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(weekly={"0": [["18:00", "21:00"]]})  # Mondays only
    html = (await client.get(f"/tutors/{profile.slug}", params={"tz": "Europe/Berlin", "week": "2020-01-01"})).text
    assert html.count("No times available") == 6  # 2026-02-25 .. 03-03: only Monday 2 March has times
    assert '<time datetime="2026-03-02T18:00:00+01:00">' in html
    assert 'id="week-prev" class="week-link-disabled"' in html


async def test_week_picker_zone_defaults_to_the_signed_in_users_zone(client, frozen) -> None:
    from tests.helpers import log_in

    _tutor, profile = await tutor_with_hours()
    await make_user(email="nina@example.com", tz="Asia/Kolkata")
    await log_in(client, "nina@example.com", "correct horse battery")
    html = (await client.get(f"/tutors/{profile.slug}", params={"week": "2026-03-03"})).text
    assert '<option value="Asia/Kolkata" selected>' in html
    assert 'data-zone-source="user"' in html
    assert '<time datetime="2026-03-03T22:30:00+05:30">' in html


async def test_week_picker_for_an_anonymous_visitor_uses_the_default_zone_and_tells_the_script(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    html = (await client.get(f"/tutors/{profile.slug}")).text
    assert 'data-zone-source="default"' in html
    assert '<option value="UTC" selected>' in html
    assert '<script src="/static/js/scheduling.js" defer></script>' in html
    unknown = (await client.get(f"/tutors/{profile.slug}", params={"tz": "Nowhere/Land"})).text
    assert "We do not know that time zone" in unknown


async def test_week_partial_for_htmx_and_redirect_without_it(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours()
    params = {"tz": "America/New_York", "week": "2026-03-09", "duration": "60"}
    partial = await client.get(f"/tutors/{profile.slug}/week", params=params, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert 'hx-swap-oob="innerHTML"' in partial.text and "35 times available" in partial.text
    assert 'id="week-start" value="2026-03-09" hx-swap-oob="true"' in partial.text
    assert '<time datetime="2026-03-09T13:00:00-04:00">' in partial.text
    assert partial.headers["hx-push-url"] == f"/tutors/{profile.slug}?week=2026-03-09&tz=America%2FNew_York&duration=60"
    plain = await client.get(f"/tutors/{profile.slug}/week", params=params, follow_redirects=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/tutors/{profile.slug}?week=2026-03-09&tz=America%2FNew_York&duration=60#book"
    missing = await client.get("/tutors/nobody/week", headers={"HX-Request": "true"})
    assert missing.status_code == 404


async def test_profile_page_without_availability_still_renders(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(with_availability=False)
    html = (await client.get(f"/tutors/{profile.slug}")).text
    assert "This tutor has not published their hours yet." in html
    assert html.count("No times available") == 7


async def test_a_tutor_without_payouts_shows_no_times_on_the_profile_but_the_api_answers(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(payouts=False)
    html = (await client.get(f"/tutors/{profile.slug}", params={"week": "2026-03-02"})).text
    assert 'id="bookings-closed"' in html and "slot-link" not in html
    body = (await get_slots(client, profile.id, tz="UTC", **{"from": "2026-03-02", "to": "2026-03-02"})).json()
    assert len(body["slots"]) == 5


async def test_request_mode_tutors_offer_slots_too(client, frozen) -> None:
    _tutor, profile = await tutor_with_hours(booking_mode=BookingMode.request)
    body = (
        await get_slots(client, profile.id, tz="Europe/Berlin", **{"from": "2026-03-02", "to": "2026-03-02"})
    ).json()
    assert by_date(body) == {"2026-03-02": _evening(18, "+01:00")}


# ---- demo data ------------------------------------------------------------------------------------


async def test_demo_tutors_get_hours_exceptions_and_non_overlapping_lessons(client) -> None:
    from sqlalchemy import select

    from marketplace.demo import TUTOR_EMAIL, demo_create

    await demo_create(tutors=30, students=5, seed=3)
    async with transaction(write=False) as session:
        tutors = (await session.execute(select(User).where(User.role == "tutor"))).scalars().all()
        avail = {a.tutor_id: a for a in (await session.execute(select(Availability))).scalars()}
        offs = (await session.execute(select(AvailabilityOverride))).scalars().all()
        future = (
            (await session.execute(select(Booking).where(Booking.status == BookingStatus.confirmed))).scalars().all()
        )
        clara = next(t for t in tutors if t.email == TUTOR_EMAIL)
        clara_profile = (
            await session.execute(select(TutorProfile).where(TutorProfile.user_id == clara.id))
        ).scalar_one()
    assert {t.id for t in tutors} == set(avail)
    assert all(a.zone == t.timezone and a.weekly for t in tutors for a in [avail[t.id]])
    assert {a.booking_mode for a in avail.values()} == {BookingMode.instant, BookingMode.request}
    assert len({a.free_cancel_hours for a in avail.values()}) > 1
    assert any(o.replace and not o.windows for o in offs)  # holidays
    assert future and all(b.starts_at > utcnow() for b in future)
    by_tutor: dict[uuid.UUID, list[Booking]] = {}
    for b in future:
        a = avail[b.tutor_id]
        assert b.blocked_from == b.starts_at - timedelta(minutes=a.buffer_before)
        assert b.blocked_until == b.ends_at + timedelta(minutes=a.buffer_after)
        by_tutor.setdefault(b.tutor_id, []).append(b)
    for rows in by_tutor.values():
        rows.sort(key=lambda b: b.blocked_from)
        assert all(x.blocked_until <= y.blocked_from for x, y in itertools.pairwise(rows))
    # Clara's calendar gives real slots through the API.
    body = (await get_slots(client, clara_profile.slug, tz="Europe/Berlin")).json()
    assert body["slots"], body
