"""Bookable times, for machines and for people: the slots JSON API and the profile's week picker.

- ``GET /api/v1/tutors/{tutor}/slots?from=&to=&tz=&duration=``: the bookable slots of a public
  tutor (``tutor`` is the profile id or its slug), documented in the OpenAPI schema. ``from`` and
  ``to`` are dates in ``tz`` (default: today and six days later); every time carries the offset
  of ``tz`` at that instant. Bad input is a 400 JSON error ``{error, detail, status}``; a profile
  the public cannot see is a 404.
- The week picker on ``/tutors/{slug}`` (section ``#book``): seven days of times in the viewer's
  zone, with the zone and the lesson length to choose and the previous/next week. Plain links and
  a GET form without JavaScript; with htmx, ``GET /tutors/{slug}/week`` returns only the week
  (the URL of the page is pushed, the status line is announced). Each time links to
  ``/book/{slug}?start=<UTC instant>&duration=<minutes>``.

Both read availability through :mod:`scheduling.availability` (one loader, one engine). The zone
of a visitor: ``?tz=``, else the signed-in user's zone, else the zone the browser reported
(cookie), else ``DEFAULT_TIMEZONE``; a tiny script (static/js/scheduling.js) switches a visitor
whose zone the server did not know yet to the browser's zone.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from babel.dates import format_date, format_interval, format_skeleton
from babel.dates import format_time as babel_format_time
from litestar import Controller, Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import FromPath, Parameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.db import session_factory
from marketplace.errors import AppError, NotFound
from marketplace.i18n import all_timezones, current_locale, is_valid_timezone, ngettext
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.tutors import services as tutor_services
from marketplace.tutors.models import TutorProfile
from marketplace.tutors.public import document, register_profile_section
from marketplace.web import TZ_COOKIE, current_user, is_htmx, redirect
from scheduling.availability import load_calendar, query_for
from scheduling.editor import rule_message
from scheduling.rules import RuleError, RuleErrors, zone_or_none
from scheduling.slots import MAX_HORIZON_DAYS, Interval, compute_slots

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 90  # the most days one API call may ask for (to - from)
MAX_DATE_DISTANCE_DAYS = 3660  # dates further than this from today are refused as malformed
WEEK_DAYS = 7
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def clock() -> datetime:
    """The current instant (tests replace it to look at a fixed week)."""
    return datetime.now(UTC)


# ---- shared parsing ------------------------------------------------------------------------


def valid_zone(name: str | None) -> bool:
    return bool(name) and is_valid_timezone(name) and zone_or_none(name or "") is not None


def parse_zone(raw: str) -> str:
    name = raw.strip()
    if not valid_zone(name):
        raise AppError(rule_message(RuleError("unknown_zone", "tz", (name[:64],))))
    return name


def parse_day(raw: str, name: str, today: date) -> date:
    text = raw.strip()
    parsed: date | None = None
    if _DATE_RE.match(text):
        try:
            parsed = date.fromisoformat(text)
        except ValueError:
            parsed = None
    if parsed is None:
        raise AppError(_("“%(name)s” must be a date like 2026-03-02 (year-month-day).", name=name))
    if abs((parsed - today).days) > MAX_DATE_DISTANCE_DAYS:
        raise AppError(_("“%(name)s” is too far from today.", name=name))
    return parsed


def offered_durations(doc: dict[str, Any]) -> list[int]:
    """The lesson lengths the tutor offers (pricing step), then the trial length if it differs."""
    minutes = [int(d["minutes"]) for d in doc.get("durations") or [] if isinstance(d.get("minutes"), int)]
    trial = doc.get("trial") or {}
    if isinstance(trial.get("minutes"), int) and trial["minutes"] not in minutes:
        minutes.append(int(trial["minutes"]))
    return minutes


def trial_minutes(doc: dict[str, Any]) -> int | None:
    trial = doc.get("trial") or {}
    return int(trial["minutes"]) if isinstance(trial.get("minutes"), int) else None


async def public_profile(session: AsyncSession, ident: str) -> TutorProfile:
    """An approved profile of a tutor who is not banned, by id or slug; 404 otherwise."""
    try:
        key = TutorProfile.id == uuid.UUID(ident)
    except ValueError:
        key = TutorProfile.slug == ident[:64]
    row = (
        await session.execute(
            select(TutorProfile, User.banned_at).join(User, User.id == TutorProfile.user_id).where(key)
        )
    ).first()
    if row is None or not row[0].is_public or row[1] is not None:
        raise NotFound(_("We could not find that tutor."))
    return row[0]


def _iso(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()


def utc_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def book_url(slug: str, start: datetime, duration: int) -> str:
    """The booking page for one slot (``scheduling.pages``): the start as a UTC instant."""
    return f"/book/{slug}?" + urlencode({"start": utc_instant(start), "duration": duration}, safe=":")


# ---- the JSON API ----------------------------------------------------------------------------


class SlotOut(msgspec.Struct):
    start: str  # ISO 8601 with the offset of tz at that instant
    end: str


class SlotsOut(msgspec.Struct):
    tz: str
    duration: int
    slots: list[SlotOut]


class ErrorOut(msgspec.Struct):
    error: str
    detail: str
    status: int


@dataclass(frozen=True)
class SlotRequest:
    zone: str
    date_from: date
    date_to: date
    duration: int


def slot_request(
    doc: dict[str, Any], *, tz: str | None, from_: str | None, to: str | None, duration: int | None, now: datetime
) -> SlotRequest:
    """Check the API's parameters against the tutor's offer; AppError (400) with a clear message."""
    zone = parse_zone(tz) if tz is not None and tz.strip() else _default_zone()
    today = now.astimezone(ZoneInfo(zone)).date()
    date_from = parse_day(from_, "from", today) if from_ else today
    date_to = parse_day(to, "to", today) if to else date_from + timedelta(days=WEEK_DAYS - 1)
    if date_to < date_from:
        raise AppError(_("“from” must not be after “to”."))
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise AppError(_("Ask for at most %(max)d days at a time.", max=MAX_RANGE_DAYS))
    offered = offered_durations(doc)
    if duration is None:
        if not offered:
            raise AppError(_("This tutor offers no lessons yet."))
        duration = offered[0]
    elif duration not in offered:
        lengths = ", ".join(str(m) for m in offered) or "—"
        raise AppError(
            _(
                "This tutor does not offer %(minutes)d-minute lessons. Choose one of: %(list)s.",
                minutes=duration,
                list=lengths,
            )
        )
    return SlotRequest(zone=zone, date_from=date_from, date_to=date_to, duration=duration)


def _default_zone() -> str:
    from marketplace.i18n import current_timezone

    zone = current_timezone()
    return zone if valid_zone(zone) else "UTC"


def load_until(date_to: date, now: datetime) -> datetime:
    """How far bookings and busy times are read: past the last viewer date by a margin wider than
    any zone offset plus a lesson and its breaks (the loader's default reads the whole horizon)."""
    return min(
        datetime(date_to.year, date_to.month, date_to.day, tzinfo=UTC) + timedelta(days=3), now + timedelta(days=92)
    )


async def safe_slots(session: AsyncSession, tutor_id: uuid.UUID, req: SlotRequest, now: datetime) -> list[Interval]:
    """The tutor's slots (what :func:`scheduling.availability.tutor_slots` computes, with bookings
    read only up to the requested dates); stored rules the engine refuses are logged and show no
    times (never a 500)."""
    cal = await load_calendar(session, tutor_id, now=now, until=load_until(req.date_to, now))
    if cal is None:
        return []
    try:
        return compute_slots(
            query_for(
                cal, duration=req.duration, now=now, viewer_zone=req.zone, date_from=req.date_from, date_to=req.date_to
            )
        )
    except RuleErrors as exc:
        log.error("availability of tutor %s refused by the slot engine: %s", tutor_id, exc)
        return []


_SLOTS_DOC = (
    "The times a public tutor can be booked for, computed from the tutor's weekly hours (in the tutor's "
    "zone), date exceptions, breaks between lessons, minimum notice, booking window, daily maximum, "
    "existing bookings and busy times from linked calendars. Times are shown in `tz` with the offset "
    "in force at each instant, so they stay right across daylight-saving changes. Past the tutor's "
    "booking window there are simply fewer slots. Bad input is a 400 JSON error {error, detail, status}; "
    "a tutor the public cannot see is a 404."
)


class SlotsApiController(Controller):
    """The public slots API (JSON, documented in /api/schema)."""

    path = "/api/v1"
    tags = ["scheduling"]
    include_in_schema = True

    @get(
        "/tutors/{tutor:str}/slots",
        name="api_tutor_slots",
        summary="Bookable times of a tutor",
        description=_SLOTS_DOC,
        responses={
            400: ResponseSpec(ErrorOut, description="Bad parameters (zone, dates, range or duration)."),
            404: ResponseSpec(ErrorOut, description="No public tutor with this id or slug."),
        },
    )
    async def slots(
        self,
        tutor: Annotated[str, Parameter(description="The tutor profile's id (UUID) or its slug.")],
        from_: Annotated[
            str | None,
            QueryParameter(
                name="from",
                description="First date, in tz (YYYY-MM-DD). Default: today in tz.",
                format=OpenAPIFormat.DATE,
            ),
        ] = None,
        to: Annotated[
            str | None,
            QueryParameter(
                description=f"Last date, in tz, inclusive (YYYY-MM-DD). Default: from + 6 days. "
                f"At most {MAX_RANGE_DAYS} days after from.",
                format=OpenAPIFormat.DATE,
            ),
        ] = None,
        tz: Annotated[
            str | None,
            QueryParameter(
                description="IANA time zone of the viewer, e.g. America/New_York. Default: the signed-in "
                "user's zone, else the server's default zone."
            ),
        ] = None,
        duration: Annotated[
            int | None,
            QueryParameter(
                description="Lesson length in minutes; one the tutor offers (lesson lengths or the trial "
                "lesson). Default: the tutor's first lesson length."
            ),
        ] = None,
    ) -> SlotsOut:
        now = clock()
        async with session_factory()() as session:
            profile = await public_profile(session, tutor)
            req = slot_request(document(profile), tz=tz, from_=from_, to=to, duration=duration, now=now)
            found = await safe_slots(session, profile.user_id, req, now)
        zone = ZoneInfo(req.zone)
        return SlotsOut(
            tz=req.zone,
            duration=req.duration,
            slots=[SlotOut(start=_iso(s.start, zone), end=_iso(s.end, zone)) for s in found],
        )


# ---- the week picker -------------------------------------------------------------------------


def viewer_zone(request: Request, raw: str | None) -> tuple[str, str, bool]:
    """(zone, where it came from, whether ?tz= was given but unknown)."""
    bad = False
    if raw:
        if valid_zone(raw.strip()):
            return raw.strip(), "param", False
        bad = True
    user = current_user(request)
    if user is not None and valid_zone(user.timezone):
        return user.timezone, "user", bad
    cookie = request.cookies.get(TZ_COOKIE)
    if valid_zone(cookie):
        return str(cookie), "cookie", bad
    default = get_settings().default_timezone
    return (default if valid_zone(default) else "UTC"), "default", bad


def day_heading(day: date, locale: str) -> str:
    """ "Friday, March 6" / "Freitag, 6. März": the weekday in full, then the date without the year."""
    return f"{format_date(day, 'EEEE', locale=locale)}, {format_skeleton('MMMMd', day, locale=locale)}"


def _locale() -> str:
    return current_locale()


def _duration_label(minutes: int, trial: int | None, regular: list[int]) -> str:
    if minutes == trial and minutes not in regular:
        return _("%(minutes)d minutes (trial lesson)", minutes=minutes)
    return _("%(minutes)d minutes", minutes=minutes)


async def week_picker_context(
    session: AsyncSession, request: Request, *, profile: TutorProfile, doc: dict[str, Any]
) -> dict[str, Any]:
    """Everything ``scheduling/_week_picker*.html`` shows, from the request's ``week``/``tz``/``duration``."""
    params = request.query_params
    zone, source, bad_zone = viewer_zone(request, params.get("tz"))
    tz = ZoneInfo(zone)
    now = clock()
    today = now.astimezone(tz).date()
    offered = offered_durations(doc)
    trial = trial_minutes(doc)
    regular = [int(d["minutes"]) for d in doc.get("durations") or [] if isinstance(d.get("minutes"), int)]
    raw_duration = params.get("duration") or ""
    duration = int(raw_duration) if raw_duration.isdigit() and int(raw_duration) in offered else None
    if duration is None:
        duration = offered[0] if offered else 60
    start = today
    raw_week = params.get("week") or ""
    if _DATE_RE.match(raw_week):
        try:
            start = date.fromisoformat(raw_week)
        except ValueError:
            start = today
    start = min(max(start, today), today + timedelta(days=MAX_HORIZON_DAYS))
    end = start + timedelta(days=WEEK_DAYS - 1)
    cal = await load_calendar(session, profile.user_id, now=now, until=load_until(end, now))
    horizon = cal.availability.horizon_days if cal is not None else MAX_HORIZON_DAYS
    last_start = today + timedelta(days=horizon)
    if start > last_start:  # past this tutor's booking window: show its last week
        start, end = last_start, last_start + timedelta(days=WEEK_DAYS - 1)
        cal = await load_calendar(session, profile.user_id, now=now, until=load_until(end, now))
    found: list[Interval] = []
    if cal is not None and offered:
        try:
            found = compute_slots(
                query_for(cal, duration=duration, now=now, viewer_zone=zone, date_from=start, date_to=end)
            )
        except RuleErrors as exc:
            log.error("availability of tutor %s refused by the slot engine: %s", profile.user_id, exc)
    locale = _locale()
    by_day: dict[date, list[dict[str, str]]] = {start + timedelta(days=i): [] for i in range(WEEK_DAYS)}
    slug = profile.slug
    for slot in found:
        local = slot.start.astimezone(tz)
        items = by_day.get(local.date())
        if items is None:
            continue
        items.append(
            {
                "label": babel_format_time(local, format="short", tzinfo=tz, locale=locale),
                "datetime": local.isoformat(),
                "href": book_url(slug, slot.start, duration),
            }
        )
    days = [
        {
            "date": day,
            "id": f"day-{day.isoformat()}",
            "heading": day_heading(day, locale),
            "slots": slots,
        }
        for day, slots in by_day.items()
    ]

    def query(week: date) -> str:
        return urlencode({"week": week.isoformat(), "tz": zone, "duration": duration})

    prev_start = max(start - timedelta(days=WEEK_DAYS), today)
    next_start = start + timedelta(days=WEEK_DAYS)
    range_label = format_interval(start, end, skeleton="yMMMd", locale=locale)
    count = len(found)
    status = ngettext(
        "%(range)s, times in %(zone)s: %(num)d time available.",
        "%(range)s, times in %(zone)s: %(num)d times available.",
        count,
        range=range_label,
        zone=zone.replace("_", " "),
    )
    zones = all_timezones()
    return {
        "slug": slug,
        "zone": zone,
        "zone_label": zone.replace("_", " "),
        "zone_source": source,
        "bad_zone": bad_zone,
        "zones": zones,
        "duration": duration,
        "durations": [(m, _duration_label(m, trial, regular)) for m in offered],
        "week": start.isoformat(),
        "range_label": range_label,
        "days": days,
        "count": count,
        "status": status,
        "has_hours": cal is not None and bool(offered),
        "prev_url": f"/tutors/{slug}?{query(prev_start)}#book" if start > today else None,
        "prev_partial": f"/tutors/{slug}/week?{query(prev_start)}",
        "next_url": f"/tutors/{slug}?{query(next_start)}#book" if next_start <= last_start else None,
        "next_partial": f"/tutors/{slug}/week?{query(next_start)}",
        "page_url": f"/tutors/{slug}?{query(start)}",
        "action": f"/tutors/{slug}",
        "partial_action": f"/tutors/{slug}/week",
    }


async def profile_week_picker(session: AsyncSession, request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """The profile page's section (registered with marketplace.tutors.public)."""
    profile = context["profile"]
    return {"week_picker": await week_picker_context(session, request, profile=profile, doc=document(profile))}


register_profile_section(profile_week_picker)


class WeekPickerController(Controller):
    """The week picker's htmx partial; without htmx, the profile page with the same week."""

    path = "/tutors"
    include_in_schema = False
    tags = ["scheduling"]

    @get("/{slug:str}/week", name="tutor_week_picker")
    async def week(self, request: Request, slug: FromPath[str]) -> Template | Redirect:
        viewer = current_user(request)
        async with session_factory()() as session:
            profile, _banned = await tutor_services.profile_lookup(session, slug=slug, viewer=viewer)
            picker = await week_picker_context(session, request, profile=profile, doc=document(profile))
        if not is_htmx(request):
            return redirect(picker["page_url"] + "#book")
        return Template(
            "scheduling/_week_picker_body.html",
            context={"week_picker": picker, "oob": True},
            headers={"HX-Push-Url": picker["page_url"], "Vary": "HX-Request", "Cache-Control": "no-store"},
        )
