"""The tutor's availability editor: weekly hours in the tutor's zone, booking rules, date overrides.

Pages (tutors and admins; students get 403, visitors are sent to log in):

- ``GET /tutor/availability``: the editor. One form holds the zone, the weekly grid (several
  "HH:MM" from/to rows per weekday, in a fieldset per day) and the booking rules (buffers, notice,
  horizon, lessons per day, instant or request booking, cancellation policy). Below it, the
  upcoming date overrides with a delete button each, and a form to add one (a day off, extra
  hours, or different hours on one date). The lesson lengths come from the profile's pricing step
  and are shown read-only with a link there.
- ``POST /tutor/availability``: save the form. Without JavaScript, rows are added and removed
  with submit buttons (``op=add-<weekday>``, ``op=remove-<weekday>-<row>``): the page comes back
  with the typed values and one row more or less, nothing saved. A save validates everything
  first and writes nothing on any error: the page comes back (400) with the typed values, an
  error summary that takes the focus and a message tied to each field (``aria-describedby``).
  A valid save writes availability in one transaction, schedules a search re-index of the
  tutor's profile (``marketplace.ports``) and redirects (303).
- ``POST /tutor/availability/overrides``: add an override (the same 400 on bad input).
- ``POST /tutor/availability/overrides/{id}/delete``: delete one of the tutor's overrides.

Validation reuses the pure rules (:mod:`scheduling.rules`): ``RuleError`` codes become
translated messages through :func:`rule_message`, the one map from code to sentence (the slots
API uses it too). Weekly windows and stored overrides must agree (extra hours on a date may not
overlap that weekday's hours), because the slot engine refuses inconsistent rules.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_day_names
from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.db import transaction
from marketplace.errors import NotFound
from marketplace.i18n import all_timezones, current_locale, is_valid_timezone
from marketplace.i18n import gettext as _
from marketplace.ports import search_indexer
from marketplace.tutors.models import TutorProfile
from marketplace.web import current_user, flash, page, redirect, tutor_required
from scheduling.availability import overrides_of, weekly_rules, windows_from_json, windows_to_json
from scheduling.models import (
    FREE_CANCEL_HOURS,
    LATE_REFUND_PERCENTS,
    Availability,
    AvailabilityOverride,
    BookingMode,
)
from scheduling.rules import (
    Override,
    RuleError,
    RuleErrors,
    WeeklyRules,
    Window,
    parse_window,
    parse_windows,
    validate_overrides,
    validate_rules,
    validate_windows,
    validate_zone,
)
from scheduling.slots import DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS

BASE = "/tutor/availability"
MAX_WINDOWS_PER_DAY = 8
MAX_BUFFER_MINUTES = 240
MAX_NOTICE_HOURS = 14 * 24
MAX_LESSONS_PER_DAY = 24
OVERRIDE_AHEAD_DAYS = 365
NOTE_MAX = 120
DEFAULT_NOTICE_HOURS = 12
WEEKDAYS = range(7)  # 0 = Monday, as in the stored JSON and in Babel
OVERRIDE_KINDS = ("off", "extra", "replace")
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---- messages ------------------------------------------------------------------------------


def rule_message(error: RuleError) -> str:
    """The translated sentence for one :class:`RuleError` (every code in ``rules.ERROR_CODES``)."""
    code, values = error.code, error.values
    first = values[0] if values else ""
    if code == "unknown_zone":
        return _("“%(zone)s” is not a time zone we know. Choose one from the list, like Europe/Berlin.", zone=first)
    if code == "inverted":
        return _("The end time must be after the start time (%(window)s).", window=_dash(first))
    if code == "overlap":
        other = values[0] if values else ""
        return _("This time overlaps %(other)s. Make the times follow each other.", other=_dash(other))
    if code == "not_whole_minute":
        return _("Times are whole minutes, like 18:00 or 18:30.")
    if code == "aware_time":
        return _("Enter a time of day without a time zone, like 18:00.")
    if code == "bad_weekday":
        return _("This day of the week is not valid.")
    if code == "bad_format":
        return _("Enter times as hours and minutes, like 18:00 to 21:00 (24-hour clock).")
    if code == "duplicate_override":
        return _("You already have an exception on this date. Delete it first to change it.")
    if code == "horizon_too_long":
        return _("Students can book at most %(max)d days ahead.", max=MAX_HORIZON_DAYS)
    if code == "negative":
        return _("This cannot be negative.")
    if code == "not_positive":
        return _("This must be more than zero.")
    if code == "bad_max_per_day":
        return _("Allow at least one lesson a day, or leave the field empty for no limit.")
    if code == "naive_datetime":
        return _("A date and time is missing its time zone.")
    if code == "inverted_interval":
        return _("A time range ends before it starts.")
    if code == "inverted_range":
        return _("The last date is before the first date.")
    return _("Check this value.")


def _dash(window: str) -> str:
    """``"18:00-21:00"`` with an en dash between the times (reads as "to")."""
    return window.replace("-", "–")


def weekday_names() -> dict[int, str]:
    """Monday ... Sunday in the viewer's language (0 = Monday)."""
    names = get_day_names("wide", locale=current_locale())
    return {d: str(names[d]) for d in WEEKDAYS}


def booking_mode_labels() -> dict[str, tuple[str, str]]:
    return {
        BookingMode.instant.value: (
            _("Instant booking"),
            _("A paid booking is confirmed at once."),
        ),
        BookingMode.request.value: (
            _("Booking on request"),
            _("You accept or decline each booking within 24 hours; the student pays only once you accept."),
        ),
    }


def override_kind_labels() -> dict[str, str]:
    return {
        "off": _("Day off (no lessons on this date)"),
        "extra": _("Extra hours (added to this weekday's hours)"),
        "replace": _("Different hours (instead of this weekday's hours)"),
    }


# ---- form parsing --------------------------------------------------------------------------


@dataclass
class EditorForm:
    """What the tutor typed (or what is stored), as strings, ready to be shown again."""

    zone: str = ""
    rows: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    buffer_before: str = "0"
    buffer_after: str = "0"
    notice_hours: str = str(DEFAULT_NOTICE_HOURS)
    horizon_days: str = str(DEFAULT_HORIZON_DAYS)
    max_per_day: str = ""
    booking_mode: str = BookingMode.instant.value
    free_cancel_hours: str = "24"
    late_refund_percent: str = "0"

    def shown_rows(self) -> dict[int, list[tuple[str, str]]]:
        """Rows per weekday as the page shows them: a day without rows gets one empty row."""
        return {d: list(self.rows.get(d) or [("", "")]) for d in WEEKDAYS}


def _minutes_text(value: int) -> str:
    return str(value)


def form_from_availability(avail: Availability | None, *, default_zone: str) -> EditorForm:
    if avail is None:
        return EditorForm(zone=default_zone)
    rows: dict[int, list[tuple[str, str]]] = {}
    for key, raw in (avail.weekly or {}).items():
        windows = sorted(windows_from_json(raw), key=lambda w: w.start_minute)
        rows[int(key)] = [tuple(pair) for pair in windows_to_json(windows)]  # type: ignore[misc]
    notice = avail.notice_minutes
    return EditorForm(
        zone=avail.zone,
        rows=rows,
        buffer_before=_minutes_text(avail.buffer_before),
        buffer_after=_minutes_text(avail.buffer_after),
        notice_hours=str(notice // 60) if notice % 60 == 0 else f"{notice / 60:g}",
        horizon_days=str(avail.horizon_days),
        max_per_day="" if avail.max_per_day is None else str(avail.max_per_day),
        booking_mode=avail.booking_mode.value,
        free_cancel_hours=str(avail.free_cancel_hours),
        late_refund_percent=str(avail.late_refund_percent),
    )


def _first(data: dict[str, list[str]], name: str) -> str:
    values = data.get(name) or []
    return values[0].strip()[:100] if values else ""


def form_from_post(data: dict[str, list[str]]) -> EditorForm:
    """The posted form. Rows come as repeated ``d<weekday>_start`` / ``d<weekday>_end`` fields."""
    rows: dict[int, list[tuple[str, str]]] = {}
    for d in WEEKDAYS:
        starts = [s.strip()[:10] for s in data.get(f"d{d}_start", [])]
        ends = [e.strip()[:10] for e in data.get(f"d{d}_end", [])]
        count = min(max(len(starts), len(ends)), MAX_WINDOWS_PER_DAY + 2)
        starts += [""] * (count - len(starts))
        ends += [""] * (count - len(ends))
        rows[d] = list(zip(starts[:count], ends[:count], strict=True))
    return EditorForm(
        zone=_first(data, "zone"),
        rows=rows,
        buffer_before=_first(data, "buffer_before"),
        buffer_after=_first(data, "buffer_after"),
        notice_hours=_first(data, "notice_hours"),
        horizon_days=_first(data, "horizon_days"),
        max_per_day=_first(data, "max_per_day"),
        booking_mode=_first(data, "booking_mode"),
        free_cancel_hours=_first(data, "free_cancel_hours"),
        late_refund_percent=_first(data, "late_refund_percent"),
    )


def apply_row_op(form: EditorForm, op: str) -> bool:
    """``add-<d>`` adds an empty row to weekday d, ``remove-<d>-<i>`` removes row i. True if applied."""
    parts = op.split("-")
    if len(parts) == 2 and parts[0] == "add" and parts[1].isdigit() and int(parts[1]) in WEEKDAYS:
        d = int(parts[1])
        rows = [r for r in form.rows.get(d, []) if r != ("", "")] or []
        if len(rows) < MAX_WINDOWS_PER_DAY:
            rows.append(("", ""))
        form.rows[d] = rows
        return True
    if len(parts) == 3 and parts[0] == "remove" and parts[1].isdigit() and parts[2].isdigit():
        d, i = int(parts[1]), int(parts[2])
        rows = list(form.rows.get(d, []))
        if d in WEEKDAYS and i < len(rows):
            del rows[i]
            form.rows[d] = rows
        return True
    return False


@dataclass
class CleanAvailability:
    zone: str
    weekly: dict[str, list[list[str]]]
    rules: WeeklyRules
    buffer_before: int
    buffer_after: int
    notice_minutes: int
    horizon_days: int
    max_per_day: int | None
    booking_mode: BookingMode
    free_cancel_hours: int
    late_refund_percent: int


def _int_field(
    raw: str, name: str, errors: dict[str, str], *, low: int, high: int, too_high: str, allow_empty: bool = False
) -> int | None:
    text = raw.strip()
    if not text:
        if allow_empty:
            return None
        errors[name] = _("Enter a whole number.")
        return None
    if not re.fullmatch(r"[+-]?\d{1,6}", text):
        errors[name] = _("Enter a whole number, like 15.")
        return None
    value = int(text)
    if value < low:
        if value < 0:
            errors[name] = rule_message(RuleError("negative", name, (text,)))
        elif name == "max_per_day":
            errors[name] = rule_message(RuleError("bad_max_per_day", name, (text,)))
        else:
            errors[name] = _("Enter at least %(min)d.", min=low)
        return None
    if value > high:
        errors[name] = too_high
        return None
    return value


def clean_weekly(form: EditorForm, errors: dict[str, str]) -> dict[int, tuple[Window, ...]]:
    """Per weekday, the valid windows sorted by start; problems go to ``errors`` keyed by row
    (``d<weekday>-<row>``) or by day (``d<weekday>``)."""
    days: dict[int, tuple[Window, ...]] = {}
    for d in WEEKDAYS:
        filled = [(i, s, e) for i, (s, e) in enumerate(form.rows.get(d, [])) if s or e]
        if len(filled) > MAX_WINDOWS_PER_DAY:
            errors[f"d{d}"] = _("At most %(max)d times a day.", max=MAX_WINDOWS_PER_DAY)
            continue
        valid: list[tuple[int, Window]] = []
        for i, start, end in filled:
            key = f"d{d}-{i}"
            if not start or not end:
                errors[key] = _("Enter both a start and an end time, like 18:00 and 21:00.")
                continue
            if not (_TIME_RE.match(start) and _TIME_RE.match(end)):
                errors[key] = rule_message(RuleError("bad_format", key, (f"{start}-{end}",)))
                continue
            try:
                window = parse_window(f"{start}-{end}")
            except RuleErrors as exc:
                errors[key] = rule_message(exc.errors[0])
                continue
            problems = validate_windows([window], key)
            if problems:
                errors[key] = rule_message(problems[0])
                continue
            valid.append((i, window))
        valid.sort(key=lambda item: (item[1].start_minute, item[1].end_minute))
        flagged: set[int] = set()
        for problem in validate_windows([w for _i, w in valid], f"d{d}"):
            if problem.code != "overlap":
                continue
            before, after = problem.values
            for i, w in valid:
                if str(w) == after and i not in flagged:
                    errors[f"d{d}-{i}"] = rule_message(RuleError("overlap", problem.where, (before, after)))
                    flagged.add(i)
                    break
        if not any(key == f"d{d}" or key.startswith(f"d{d}-") for key in errors):
            days[d] = tuple(w for _i, w in valid)
    return days


def clean_availability(form: EditorForm) -> tuple[CleanAvailability | None, dict[str, str]]:
    errors: dict[str, str] = {}
    zone = form.zone
    zone_problems = validate_zone(zone, "zone")
    if zone_problems or not is_valid_timezone(zone):
        errors["zone"] = rule_message(zone_problems[0] if zone_problems else RuleError("unknown_zone", "zone", (zone,)))
    days = clean_weekly(form, errors)
    buffer_before = _int_field(
        form.buffer_before,
        "buffer_before",
        errors,
        low=0,
        high=MAX_BUFFER_MINUTES,
        too_high=_("At most %(max)d minutes.", max=MAX_BUFFER_MINUTES),
    )
    buffer_after = _int_field(
        form.buffer_after,
        "buffer_after",
        errors,
        low=0,
        high=MAX_BUFFER_MINUTES,
        too_high=_("At most %(max)d minutes.", max=MAX_BUFFER_MINUTES),
    )
    notice = _int_field(
        form.notice_hours,
        "notice_hours",
        errors,
        low=0,
        high=MAX_NOTICE_HOURS,
        too_high=_("At most %(max)d hours (two weeks).", max=MAX_NOTICE_HOURS),
    )
    horizon = _int_field(
        form.horizon_days,
        "horizon_days",
        errors,
        low=1,
        high=MAX_HORIZON_DAYS,
        too_high=rule_message(RuleError("horizon_too_long", "horizon_days", (form.horizon_days,))),
    )
    max_per_day = _int_field(
        form.max_per_day,
        "max_per_day",
        errors,
        low=1,
        high=MAX_LESSONS_PER_DAY,
        too_high=_("At most %(max)d lessons a day.", max=MAX_LESSONS_PER_DAY),
        allow_empty=True,
    )
    if form.booking_mode not in {m.value for m in BookingMode}:
        errors["booking_mode"] = _("Choose instant booking or booking on request.")
    free_hours = int(form.free_cancel_hours) if form.free_cancel_hours.isdigit() else -1
    if free_hours not in FREE_CANCEL_HOURS:
        errors["free_cancel_hours"] = _("Choose one of the offered cancellation times.")
    late = int(form.late_refund_percent) if form.late_refund_percent.isdigit() else -1
    if late not in LATE_REFUND_PERCENTS:
        errors["late_refund_percent"] = _("Choose no refund or a 50% refund.")
    if errors:
        return None, errors
    rules = WeeklyRules(zone=zone, days={d: ws for d, ws in days.items() if ws})
    problems = validate_rules(rules)  # the engine's own check; the steps above already cover it
    if problems:
        return None, {
            "zone" if p.where == "zone" else f"d{p.where.rsplit('.', 1)[-1]}": rule_message(p) for p in problems
        }
    assert buffer_before is not None and buffer_after is not None and notice is not None and horizon is not None
    return (
        CleanAvailability(
            zone=zone,
            weekly={str(d): windows_to_json(ws) for d, ws in sorted(rules.days.items())},
            rules=rules,
            buffer_before=buffer_before,
            buffer_after=buffer_after,
            notice_minutes=notice * 60,
            horizon_days=horizon,
            max_per_day=max_per_day,
            booking_mode=BookingMode(form.booking_mode),
            free_cancel_hours=free_hours,
            late_refund_percent=late,
        ),
        {},
    )


@dataclass
class OverrideForm:
    on_date: str = ""
    kind: str = "off"
    hours: str = ""
    note: str = ""


def override_form_from_post(data: dict[str, list[str]]) -> OverrideForm:
    return OverrideForm(
        on_date=_first(data, "on_date"),
        kind=_first(data, "kind") or "off",
        hours=(data.get("hours") or [""])[0].strip()[:200],
        note=(data.get("note") or [""])[0].strip()[:500],
    )


def tutor_today(zone: str, now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (KeyError, ValueError, OSError):
        return now.date()


def clean_override(
    form: OverrideForm, *, rules: WeeklyRules, taken: set[date], today: date
) -> tuple[Override | None, str, dict[str, str]]:
    """The override to store and its note, or the errors keyed ``on_date``/``kind``/``hours``/``note``."""
    errors: dict[str, str] = {}
    on_date: date | None = None
    try:
        on_date = date.fromisoformat(form.on_date) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", form.on_date) else None
    except ValueError:
        on_date = None
    if on_date is None:
        errors["on_date"] = _("Enter a date like %(example)s.", example=(today + timedelta(days=7)).isoformat())
    elif on_date < today:
        errors["on_date"] = _("This date is in the past. Choose today or a later date.")
    elif on_date > today + timedelta(days=OVERRIDE_AHEAD_DAYS):
        errors["on_date"] = _("Choose a date within the next year.")
    elif on_date in taken:
        errors["on_date"] = rule_message(RuleError("duplicate_override", "on_date", (on_date.isoformat(),)))
    if form.kind not in OVERRIDE_KINDS:
        errors["kind"] = _("Choose a day off, extra hours or different hours.")
    windows: tuple[Window, ...] = ()
    if form.kind in ("extra", "replace"):
        if not form.hours:
            errors["hours"] = _("Enter the hours, like 10:00-12:00 or 10:00-12:00, 14:00-16:00.")
        else:
            try:
                windows = parse_windows(form.hours)
            except RuleErrors as exc:
                errors["hours"] = rule_message(exc.errors[0])
            else:
                if not windows:
                    errors["hours"] = _("Enter the hours, like 10:00-12:00 or 10:00-12:00, 14:00-16:00.")
    note = _CONTROL.sub(" ", form.note).strip()
    if len(note) > NOTE_MAX:
        errors["note"] = _("At most %(max)d characters, please (you wrote %(length)d).", max=NOTE_MAX, length=len(note))
    if errors or on_date is None:
        return None, note, errors
    override = Override(date=on_date, windows=tuple(windows), replace=form.kind != "extra")
    problems = validate_overrides(rules, [override])
    if problems:
        return None, note, {"hours": rule_message(problems[0])}
    return override, note, {}


# ---- loading and saving --------------------------------------------------------------------


async def _user(session: AsyncSession, request: Request) -> User:
    user = await session.get(User, current_user(request).id)
    assert user is not None  # the guard let a signed-in user through
    return user


async def _availability(session: AsyncSession, tutor_id: uuid.UUID, *, lock: bool = False) -> Availability | None:
    query = select(Availability).where(Availability.tutor_id == tutor_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def _overrides(
    session: AsyncSession, tutor_id: uuid.UUID, since: date | None = None
) -> list[AvailabilityOverride]:
    query = select(AvailabilityOverride).where(AvailabilityOverride.tutor_id == tutor_id)
    if since is not None:
        query = query.where(AvailabilityOverride.on_date >= since)
    return list((await session.execute(query.order_by(AvailabilityOverride.on_date))).scalars())


async def _profile(session: AsyncSession, tutor_id: uuid.UUID) -> TutorProfile | None:
    return (await session.execute(select(TutorProfile).where(TutorProfile.user_id == tutor_id))).scalar_one_or_none()


def _reindex(session: AsyncSession, profile: TutorProfile | None) -> None:
    """Search shows availability: re-index the tutor's profile once this transaction commits."""
    if profile is not None:
        search_indexer().schedule(session, profile.id)


async def availability_save(
    session: AsyncSession, *, tutor: User, clean: CleanAvailability, now: datetime | None = None
) -> tuple[Availability | None, dict[str, str]]:
    """Store the weekly hours and rules (one transaction: the caller's). Overrides of today and
    later must still agree with the new weekly hours (extra hours may not overlap them): such a
    conflict is an error and nothing is written. Past overrides that conflict are dropped (they no
    longer matter and would make the slot engine refuse the calendar)."""
    today = tutor_today(clean.zone, now)
    stored = await _overrides(session, tutor.id)
    upcoming = [o for o in stored if o.on_date >= today]
    problems = validate_overrides(clean.rules, overrides_of(upcoming))
    if problems:
        first = problems[0]
        day = first.where.rsplit(".", 1)[-1]
        return None, {
            "weekly": _(
                "Your extra hours on %(date)s overlap the new weekly hours. Delete that exception first, "
                "or change the weekly hours.",
                date=day,
            )
        }
    stale = [o.id for o in stored if o.on_date < today and validate_overrides(clean.rules, overrides_of([o]))]
    if stale:
        await session.execute(delete(AvailabilityOverride).where(AvailabilityOverride.id.in_(stale)))
    avail = await _availability(session, tutor.id, lock=True)
    if avail is None:
        avail = Availability(tutor_id=tutor.id)
        session.add(avail)
    avail.zone = clean.zone
    avail.weekly = clean.weekly
    avail.buffer_before = clean.buffer_before
    avail.buffer_after = clean.buffer_after
    avail.notice_minutes = clean.notice_minutes
    avail.horizon_days = clean.horizon_days
    avail.max_per_day = clean.max_per_day
    avail.booking_mode = clean.booking_mode
    avail.free_cancel_hours = clean.free_cancel_hours
    avail.late_refund_percent = clean.late_refund_percent
    await session.flush()
    _reindex(session, await _profile(session, tutor.id))
    return avail, {}


def hours_text(windows: list[Any]) -> str:
    return ", ".join(_dash(f"{s}-{e}") for s, e in windows)


# ---- page context --------------------------------------------------------------------------


def _error_links(errors: dict[str, str], form: EditorForm, names: dict[int, str]) -> list[tuple[str, str]]:
    """(target id, message) for the error summary, in the order of the page."""
    order = ["zone", "weekly"]
    for d in WEEKDAYS:
        order.append(f"d{d}")
        order += [f"d{d}-{i}" for i in range(len(form.shown_rows()[d]))]
    order += [
        "buffer_before",
        "buffer_after",
        "notice_hours",
        "horizon_days",
        "max_per_day",
        "booking_mode",
        "free_cancel_hours",
        "late_refund_percent",
        "on_date",
        "kind",
        "hours",
        "note",
    ]
    links = []
    for key in order:
        if key not in errors:
            continue
        if key.startswith("d") and "-" in key:
            d, i = (int(x) for x in key[1:].split("-"))
            label = _("%(day)s, time %(number)d", day=names[d], number=i + 1)
            links.append((f"f-{key}-start", f"{label}: {errors[key]}"))
        elif key.startswith("d") and key[1:].isdigit():
            links.append((f"day-{key[1:]}", f"{names[int(key[1:])]}: {errors[key]}"))
        elif key == "weekly":
            links.append(("weekly-hours", errors[key]))
        elif key in ("booking_mode", "free_cancel_hours", "late_refund_percent", "kind"):
            links.append((f"f-{key}-0", errors[key]))
        else:
            links.append((f"f-{key}", errors[key]))
    return links


async def editor_context(
    session: AsyncSession,
    user: User,
    *,
    form: EditorForm | None = None,
    errors: dict[str, str] | None = None,
    override_form: OverrideForm | None = None,
    override_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    avail = await _availability(session, user.id)
    default_zone = user.timezone if is_valid_timezone(user.timezone) else "UTC"
    form = form or form_from_availability(avail, default_zone=default_zone)
    zone = avail.zone if avail else default_zone
    today = tutor_today(zone)
    overrides = await _overrides(session, user.id, since=today)
    profile = await _profile(session, user.id)
    doc = (profile.draft or {}) if profile is not None else {}
    names = weekday_names()
    kinds = override_kind_labels()
    errors = errors or {}
    override_errors = override_errors or {}
    upcoming = []
    for o in overrides:
        kind = "off" if o.replace and not o.windows else ("replace" if o.replace else "extra")
        upcoming.append(
            {
                "id": o.id,
                "date": o.on_date,
                "kind": kind,
                "kind_label": kinds[kind],
                "hours": hours_text(o.windows),
                "note": o.note,
            }
        )
    zones = all_timezones()
    if form.zone and form.zone not in zones:
        zones = (form.zone, *zones)  # show what was sent (the error says why it is refused)
    return {
        "form": form,
        "rows": form.shown_rows(),
        "errors": errors,
        "override_form": override_form or OverrideForm(),
        "override_errors": override_errors,
        "error_links": _error_links({**errors, **override_errors}, form, names),
        "weekdays": [(d, names[d]) for d in WEEKDAYS],
        "zones": zones,
        "has_availability": avail is not None,
        "stored_zone": zone,
        "overrides": upcoming,
        "override_kinds": list(kinds.items()),
        "booking_modes": list(booking_mode_labels().items()),
        "free_cancel_hours": FREE_CANCEL_HOURS,
        "late_refund_percents": LATE_REFUND_PERCENTS,
        "max_windows": MAX_WINDOWS_PER_DAY,
        "max_horizon": MAX_HORIZON_DAYS,
        "max_buffer": MAX_BUFFER_MINUTES,
        "max_notice": MAX_NOTICE_HOURS,
        "max_lessons": MAX_LESSONS_PER_DAY,
        "note_max": NOTE_MAX,
        "today": today,
        "min_date": today.isoformat(),
        "max_date": (today + timedelta(days=OVERRIDE_AHEAD_DAYS)).isoformat(),
        "currency": doc.get("currency") or "EUR",
        "durations": [d for d in doc.get("durations") or [] if d.get("minutes")],
        "trial": doc.get("trial") if (doc.get("trial") or {}).get("minutes") else None,
        "profile_slug": profile.slug if profile is not None and profile.is_public else None,
        "action": BASE,
    }


def render_editor(request: Request, context: dict[str, Any], status_code: int = 200) -> Template:
    return page(request, "scheduling/availability.html", status_code=status_code, **context)


async def _form_lists(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    data: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "_csrf_token":
            data.setdefault(key, []).append(value)
    return data


# ---- controller ----------------------------------------------------------------------------


class AvailabilityEditorController(Controller):
    """The tutor's availability editor under /tutor/availability."""

    path = BASE
    guards = [tutor_required]
    include_in_schema = False
    tags = ["scheduling"]

    @get("/", name="tutor_availability")
    async def show(self, request: Request) -> Template:
        async with transaction(write=False) as session:
            context = await editor_context(session, await _user(session, request))
        return render_editor(request, context)

    @post("/", name="tutor_availability_save")
    async def save(self, request: Request) -> Template | Redirect:
        data = await _form_lists(request)
        form = form_from_post(data)
        op = _first(data, "op")
        if op and apply_row_op(form, op):
            async with transaction(write=False) as session:
                context = await editor_context(session, await _user(session, request), form=form)
            parts = op.split("-")
            context["focus"] = (parts[0], int(parts[1]))
            return render_editor(request, context)
        clean, errors = clean_availability(form)
        if clean is not None:
            async with transaction() as session:
                user = await _user(session, request)
                _avail, errors = await availability_save(session, tutor=user, clean=clean)  # writes nothing on errors
        if errors:
            async with transaction(write=False) as session:
                context = await editor_context(session, await _user(session, request), form=form, errors=errors)
            return render_editor(request, context, status_code=400)
        flash(request, _("Your availability was saved."))
        return redirect(BASE)

    @post("/overrides", name="tutor_availability_override_add")
    async def add_override(self, request: Request) -> Template | Redirect:
        data = await _form_lists(request)
        form = override_form_from_post(data)
        errors: dict[str, str] = {}
        try:
            async with transaction() as session:
                user = await _user(session, request)
                avail = await _availability(session, user.id)
                zone = avail.zone if avail else (user.timezone if is_valid_timezone(user.timezone) else "UTC")
                rules = weekly_rules(avail) if avail else WeeklyRules(zone=zone)
                today = tutor_today(zone)
                taken = {o.on_date for o in await _overrides(session, user.id, since=today)}
                override, note, errors = clean_override(form, rules=rules, taken=taken, today=today)
                if override is not None:
                    session.add(
                        AvailabilityOverride(
                            tutor_id=user.id,
                            on_date=override.date,
                            windows=windows_to_json(override.windows),
                            replace=override.replace,
                            note=note,
                        )
                    )
                    await session.flush()
                    _reindex(session, await _profile(session, user.id))
        except IntegrityError:  # the same date added twice at the same moment
            errors = {"on_date": rule_message(RuleError("duplicate_override", "on_date", (form.on_date,)))}
        if errors:
            async with transaction(write=False) as session:
                context = await editor_context(
                    session, await _user(session, request), override_form=form, override_errors=errors
                )
            return render_editor(request, context, status_code=400)
        flash(request, _("The exception was added."))
        return redirect(f"{BASE}#overrides")

    @post("/overrides/{override_id:uuid}/delete", name="tutor_availability_override_delete")
    async def delete_override(self, request: Request, override_id: FromPath[uuid.UUID]) -> Redirect:
        async with transaction() as session:
            user = await _user(session, request)
            result = await session.execute(
                delete(AvailabilityOverride).where(
                    AvailabilityOverride.id == override_id, AvailabilityOverride.tutor_id == user.id
                )
            )
            if result.rowcount == 0:
                raise NotFound(_("We could not find that exception."))
            _reindex(session, await _profile(session, user.id))
        flash(request, _("The exception was deleted."))
        return redirect(f"{BASE}#overrides")
