"""The booking service: holds, payment confirmation, requests, rescheduling, cancellation,
completion, no-shows and expiry. Every verb takes the caller's ``AsyncSession`` inside its write
transaction (``async with transaction(write=True) as session``) and keyword-only arguments.

State machine (an invalid transition is a clear error, never a silent overwrite)::

    held --pay--> confirmed (instant mode)      held --time runs out--> expired
    held --pay--> requested (request mode) --accept--> confirmed
                                           --decline--> declined (full refund)
                                           --24 h without answer--> expired (full refund)
    confirmed --reschedule (<= MAX_RESCHEDULES)--> confirmed (new time, SEQUENCE + 1)
    held/requested/confirmed --cancel--> cancelled (refund by policy: :func:`refund_for`)
    confirmed --complete--> completed
    confirmed --no-show (student absent)--> no_show; (tutor absent)--> cancelled by tutor, full refund
    confirmed/completed/no_show --student disputes (payments)--> disputed --admin resolves--> resolved
    (completion, no-show and attendance leave a disputed lesson alone: they act on confirmed ones)

No slot is sold twice: the slot is re-checked with the slot engine inside the write transaction
(serialized on SQLite by BEGIN IMMEDIATE) and on PostgreSQL the exclusion constraint
``ex_bookings_tutor_no_overlap`` rejects whatever slipped past the check; its violation (23P01)
becomes :class:`Conflict` ("This slot was just taken").

A tutor whose payouts are not enabled takes no booking at all (:class:`BookingsClosed`, 409): the
payments domain answers through ``marketplace.ports.payments()``, so this module never imports it.

Other domains follow bookings without being imported here: :func:`on_booking_change` registers a
listener called with ``(session, booking, change)`` inside the transaction after every state change
(payments refund on ``cancelled``/``declined``/``expired``, transfer on ``completed``/``no_show``).

Refund rounding: a late-cancellation percentage that leaves a fraction of a minor unit is rounded
*up*, in the student's favour (50 % of 15.01 EUR refunds 7.51 EUR).
"""

from __future__ import annotations

import enum
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.i18n import format_datetime, ngettext
from marketplace.i18n import gettext as _
from marketplace.ports import payments
from marketplace.settings import _env_int
from marketplace.tutors.models import TutorProfile
from scheduling.availability import TutorCalendar, load_calendar, query_for
from scheduling.models import (
    ACTIVE_STATUSES,
    MAX_RESCHEDULES,
    Availability,
    Booking,
    BookingKind,
    BookingMode,
    BookingStatus,
    CancelledBy,
)
from scheduling.notify import BookingEvent, notify_booking
from scheduling.rules import RuleErrors
from scheduling.slots import Interval, compute_slots

#: Minutes a held slot waits for payment (``BOOKING_HOLD_MINUTES`` overrides it).
HOLD_MINUTES = 15
#: Hours a tutor in request mode has to accept or decline.
REQUEST_HOURS = 24
SERIES_MIN_WEEKS = 2
SERIES_MAX_WEEKS = 12
#: ``cancel_reason`` of a lesson the tutor did not attend (counted as a no-show, not a cancellation).
TUTOR_NO_SHOW_REASON = "tutor-no-show"
EXCLUSION_CONSTRAINT = "ex_bookings_tutor_no_overlap"


def hold_minutes() -> int:
    """The hold window, read from the environment at call time (default :data:`HOLD_MINUTES`)."""
    minutes = _env_int("BOOKING_HOLD_MINUTES", HOLD_MINUTES)
    return minutes if minutes > 0 else HOLD_MINUTES


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def slot_taken_message() -> str:
    return _("This slot was just taken. Please choose another time.")


class SlotTaken(Conflict):
    """Another booking got the slot first (HTTP 409)."""

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        super().__init__(message or slot_taken_message(), **kw)


def bookings_closed_message() -> str:
    return _("This tutor is not taking bookings yet: bookings open once their payouts are set up.")


class BookingsClosed(Conflict):
    """The tutor cannot take paid bookings: their payouts are not enabled (HTTP 409)."""

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        super().__init__(message or bookings_closed_message(), **kw)


class HoldLapsed(Conflict):
    """Payment arrived for a hold that lapsed and can no longer become a lesson (its slot was taken,
    or the booking was cancelled/declined meanwhile). The payments module refunds on this."""


# ---- change listeners ------------------------------------------------------------------------


class BookingChange(enum.StrEnum):
    """What happened to a booking (a superset of the mail events in ``scheduling.notify``)."""

    held = "held"
    requested = "requested"
    confirmed = "confirmed"
    declined = "declined"
    expired = "expired"
    rescheduled = "rescheduled"
    cancelled = "cancelled"
    completed = "completed"
    no_show = "no_show"
    disputed = "disputed"
    resolved = "resolved"


Listener = Callable[[AsyncSession, Booking, BookingChange], Awaitable[None] | None]
_listeners: list[Listener] = []


def on_booking_change(callback: Listener) -> Listener:
    """Register ``callback(session, booking, change)``; called inside the transaction after every
    state change (sync or async). Usable as a decorator; registering twice is a no-op."""
    if callback not in _listeners:
        _listeners.append(callback)
    return callback


def remove_booking_listener(callback: Listener) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


_MAILED = {
    BookingChange.requested: BookingEvent.requested,
    BookingChange.confirmed: BookingEvent.confirmed,
    BookingChange.declined: BookingEvent.declined,
    BookingChange.expired: BookingEvent.expired,
    BookingChange.rescheduled: BookingEvent.rescheduled,
    BookingChange.cancelled: BookingEvent.cancelled,
}


async def _changed(session: AsyncSession, booking: Booking, change: BookingChange, *, mail: bool = True) -> None:
    await session.flush()
    if mail and change in _MAILED:
        await notify_booking(session, booking, _MAILED[change])
    for listener in list(_listeners):
        result = listener(session, booking, change)
        if inspect.isawaitable(result):
            await result


# ---- pure policy -----------------------------------------------------------------------------


def refund_for(
    price: int,
    starts_at: datetime,
    cancelled_at: datetime,
    free_cancel_hours: int,
    late_refund_percent: int,
    by: CancelledBy | str,
) -> int:
    """The refund (minor units) for cancelling a lesson of ``price``.

    The tutor (or the system) cancelling refunds everything. A student cancelling at least
    ``free_cancel_hours`` before the start gets everything back, later ``late_refund_percent`` of
    the price, rounded up to a whole minor unit (in the student's favour).
    """
    if price <= 0:
        return 0
    if CancelledBy(by) != CancelledBy.student:
        return price
    if starts_at - cancelled_at >= timedelta(hours=free_cancel_hours):
        return price
    percent = min(max(late_refund_percent, 0), 100)
    return -((-price * percent) // 100)


# ---- lookups ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    tutor_id: uuid.UUID
    profile: TutorProfile
    tutor: User
    minutes: int
    price: int
    currency: str
    trial: bool


async def _bookable_tutor(session: AsyncSession, tutor_user_id: uuid.UUID) -> tuple[TutorProfile, User]:
    row = (
        await session.execute(
            select(TutorProfile, User).join(User, User.id == TutorProfile.user_id).where(User.id == tutor_user_id)
        )
    ).first()
    if row is None:
        raise NotFound(_("We could not find that tutor."))
    profile, tutor = row
    if tutor.banned_at is not None or not profile.is_public:
        raise NotFound(_("This tutor is not taking bookings at the moment."))
    return profile, tutor


def offered_lengths(live: dict[str, Any] | None) -> list[dict[str, int]]:
    return [d for d in (live or {}).get("durations") or [] if isinstance(d, dict) and d.get("minutes")]


def _offer(profile: TutorProfile, tutor: User, duration: int, trial: bool) -> Offer:
    live = profile.live or {}
    currency = live.get("currency") or "EUR"
    if trial:
        spec = live.get("trial")
        if not spec:
            raise ValidationFailed(_("This tutor does not offer a trial lesson."), errors={"trial": "no-trial"})
        if int(spec.get("minutes", 0)) != duration:
            raise ValidationFailed(
                _("A trial lesson with this tutor lasts %(minutes)s minutes.") % {"minutes": spec.get("minutes")},
                errors={"duration": "trial-length"},
            )
        return Offer(tutor.id, profile, tutor, duration, int(spec["price"]), currency, True)
    for item in offered_lengths(live):
        if int(item["minutes"]) == duration:
            return Offer(tutor.id, profile, tutor, duration, int(item["price"]), currency, False)
    raise ValidationFailed(
        _("This tutor does not offer %(minutes)s-minute lessons.") % {"minutes": duration},
        errors={"duration": "not-offered"},
    )


ONE_TRIAL_INDEX = "uq_bookings_one_trial"


def _trial_used() -> ValidationFailed:
    return ValidationFailed(
        _("You have already had a trial lesson with this tutor. Please book a regular lesson."),
        errors={"trial": "used"},
    )


async def _had_trial(session: AsyncSession, *, student_id: uuid.UUID, tutor_id: uuid.UUID) -> bool:
    gone = (BookingStatus.cancelled, BookingStatus.expired, BookingStatus.declined)
    row = await session.execute(
        select(Booking.id)
        .where(
            Booking.student_id == student_id,
            Booking.tutor_id == tutor_id,
            Booking.kind == BookingKind.trial,
            Booking.status.not_in(gone),
        )
        .limit(1)
    )
    return row.first() is not None


async def _availability(session: AsyncSession, tutor_id: uuid.UUID) -> Availability:
    avail = (await session.execute(select(Availability).where(Availability.tutor_id == tutor_id))).scalar_one_or_none()
    if avail is None:
        raise ValidationFailed(_("This tutor has not opened their calendar yet."))
    return avail


def _notice_text(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return ngettext("%(num)d hour", "%(num)d hours", hours)
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)


def _aware(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(_("Please choose a valid start time."), errors={"start": "invalid"})
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SlotCheck:
    """Whether one start time can be booked: ``ok``, or ``taken`` (another booking or hold has
    it: 409) or ``invalid`` (outside the tutor's rules: 422) with a translated ``message``."""

    starts_at: datetime
    ends_at: datetime
    ok: bool
    taken: bool = False
    message: str = ""


def check_slot(cal: TutorCalendar, *, starts_at: datetime, duration: int, now: datetime) -> SlotCheck:
    """Is ``[starts_at, starts_at + duration)`` a bookable slot of this calendar right now? Pure."""
    a = cal.availability
    ends_at = starts_at + timedelta(minutes=duration)

    def refuse(message: str, *, taken: bool = False) -> SlotCheck:
        return SlotCheck(starts_at, ends_at, False, taken, message)

    if starts_at <= now:
        return refuse(_("This time is in the past. Please choose a time in the future."))
    if starts_at < now + timedelta(minutes=a.notice_minutes):
        return refuse(
            _("This tutor needs at least %(notice)s notice. Please choose a later time.")
            % {"notice": _notice_text(a.notice_minutes)}
        )
    if starts_at > now + timedelta(days=a.horizon_days):
        return refuse(
            ngettext(
                "This tutor takes bookings at most %(num)d day ahead.",
                "This tutor takes bookings at most %(num)d days ahead.",
                a.horizon_days,
            )
        )
    day = starts_at.astimezone(UTC).date()
    query = query_for(cal, duration=duration, now=now, viewer_zone="UTC", date_from=day, date_to=day)
    wanted = Interval(starts_at, ends_at)
    try:
        if wanted in compute_slots(query):
            return SlotCheck(starts_at, ends_at, True)
        free = compute_slots(replace(query, bookings=(), max_per_day=None))
    except RuleErrors:
        return refuse(_("This time is not available. Please choose one of the tutor's free times."))
    if wanted in free:
        return refuse(slot_taken_message(), taken=True)
    return refuse(_("This time is not available. Please choose one of the tutor's free times."))


def _raise_refusal(check: SlotCheck) -> None:
    if check.taken:
        raise SlotTaken()
    raise ValidationFailed(check.message, errors={"start": check.message})


def _is_overlap_violation(exc: IntegrityError) -> bool:
    orig = getattr(exc, "orig", None)
    codes = {getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None)}
    cause = getattr(orig, "__cause__", None)
    codes.add(getattr(cause, "sqlstate", None))
    return "23P01" in codes or EXCLUSION_CONSTRAINT in str(exc)


async def _flush_guarded(session: AsyncSession, *objects: Booking) -> None:
    """Flush inside a savepoint; an exclusion violation becomes :class:`SlotTaken` (and only the
    savepoint is rolled back, so the caller's transaction stays usable until it re-raises)."""
    try:
        async with session.begin_nested():
            for obj in objects:
                session.add(obj)
            await session.flush()
    except IntegrityError as exc:
        if _is_overlap_violation(exc):
            raise SlotTaken() from exc
        if ONE_TRIAL_INDEX in str(exc) or "bookings.student_id, bookings.tutor_id" in str(exc):
            raise _trial_used() from exc
        raise


async def _expire_lapsed_holds(
    session: AsyncSession, *, tutor_id: uuid.UUID | None, now: datetime, keep: uuid.UUID | None = None
) -> int:
    query = select(Booking).where(
        Booking.status == BookingStatus.held, Booking.hold_expires_at.is_not(None), Booking.hold_expires_at <= now
    )
    if tutor_id is not None:
        query = query.where(Booking.tutor_id == tutor_id)
    if keep is not None:
        query = query.where(Booking.id != keep)
    rows = list((await session.execute(query.with_for_update(skip_locked=True))).scalars())
    for booking in rows:
        booking.status = BookingStatus.expired
        booking.sequence += 1
        await _changed(session, booking, BookingChange.expired, mail=False)
    return len(rows)


def _blocked(avail: Availability, starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    return (
        starts_at - timedelta(minutes=avail.buffer_before),
        ends_at + timedelta(minutes=avail.buffer_after),
    )


# ---- holds -----------------------------------------------------------------------------------


async def _prepare(
    session: AsyncSession,
    *,
    student: User,
    tutor_user_id: uuid.UUID,
    duration: int,
    trial: bool,
    now: datetime,
    write: bool = True,
) -> tuple[Offer, TutorCalendar]:
    if student.id == tutor_user_id:
        raise ValidationFailed(_("You cannot book a lesson with yourself."))
    if student.banned_at is not None:
        raise Forbidden(_("Your account cannot book lessons."))
    profile, tutor = await _bookable_tutor(session, tutor_user_id)
    if not await payments().tutor_takes_paid_bookings(session, tutor_id=tutor.id):
        raise BookingsClosed()
    try:
        duration = int(duration)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(_("Please choose a lesson length."), errors={"duration": "invalid"}) from exc
    offer = _offer(profile, tutor, duration, trial)
    if trial and await _had_trial(session, student_id=student.id, tutor_id=tutor.id):
        raise _trial_used()
    if write:
        await _expire_lapsed_holds(session, tutor_id=tutor.id, now=now)
    cal = await load_calendar(session, tutor.id, now=now)
    if cal is None:
        raise ValidationFailed(_("This tutor has not opened their calendar yet."))
    return offer, cal


def _new_booking(
    offer: Offer, cal: TutorCalendar, *, student: User, starts_at: datetime, now: datetime, series_id=None
) -> Booking:
    ends_at = starts_at + timedelta(minutes=offer.minutes)
    blocked_from, blocked_until = _blocked(cal.availability, starts_at, ends_at)
    return Booking(
        id=uuid.uuid4(),
        tutor_id=offer.tutor_id,
        student_id=student.id,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        status=BookingStatus.held,
        kind=BookingKind.trial if offer.trial else BookingKind.lesson,
        price_amount=offer.price,
        currency=offer.currency,
        hold_expires_at=now + timedelta(minutes=hold_minutes()),
        series_id=series_id,
        reschedule_count=0,
        sequence=0,
    )


async def booking_hold(
    session: AsyncSession,
    *,
    student: User,
    tutor_user_id: uuid.UUID,
    starts_at: datetime,
    duration: int,
    trial: bool = False,
    now: datetime | None = None,
) -> Booking:
    """Reserve one slot for ``hold_minutes()`` while the student pays."""
    now = _now(now)
    starts_at = _aware(starts_at)
    offer, cal = await _prepare(
        session, student=student, tutor_user_id=tutor_user_id, duration=duration, trial=trial, now=now
    )
    check = check_slot(cal, starts_at=starts_at, duration=offer.minutes, now=now)
    if not check.ok:
        _raise_refusal(check)
    booking = _new_booking(offer, cal, student=student, starts_at=starts_at, now=now)
    await _flush_guarded(session, booking)
    await _changed(session, booking, BookingChange.held)
    return booking


def series_starts(first_start: datetime, weeks: int, zone: str) -> list[datetime]:
    """``weeks`` weekly starts at the same wall-clock time in the tutor's ``zone`` (so a weekly
    lesson keeps its local time across daylight-saving changes), as UTC instants."""
    tz = ZoneInfo(zone)
    local = first_start.astimezone(tz)
    wall = local.replace(tzinfo=None)
    starts = []
    for k in range(weeks):
        naive = wall + timedelta(days=7 * k)
        starts.append(naive.replace(tzinfo=tz, fold=local.fold).astimezone(UTC))
    return starts


def _check_weeks(weeks: int) -> int:
    try:
        weeks = int(weeks)
    except (TypeError, ValueError):
        weeks = 0
    if not SERIES_MIN_WEEKS <= weeks <= SERIES_MAX_WEEKS:
        raise ValidationFailed(
            _("A weekly series has between %(low)d and %(high)d lessons.")
            % {"low": SERIES_MIN_WEEKS, "high": SERIES_MAX_WEEKS},
            errors={"weeks": "range"},
        )
    return weeks


async def booking_series_check(
    session: AsyncSession,
    *,
    student: User,
    tutor_user_id: uuid.UUID,
    first_start: datetime,
    duration: int,
    weeks: int,
    now: datetime | None = None,
) -> list[SlotCheck]:
    """The per-occurrence check of a weekly series (read-only; the page shows it before booking)."""
    now = _now(now)
    weeks = _check_weeks(weeks)
    first_start = _aware(first_start)
    offer, cal = await _prepare(
        session, student=student, tutor_user_id=tutor_user_id, duration=duration, trial=False, now=now
    )
    return [
        check_slot(cal, starts_at=s, duration=offer.minutes, now=now)
        for s in series_starts(first_start, weeks, cal.availability.zone)
    ]


@dataclass(frozen=True, slots=True)
class Preview:
    """What the booking page shows before anything is reserved (read-only)."""

    offer: Offer
    availability: Availability
    checks: list[SlotCheck]


async def booking_preview(
    session: AsyncSession,
    *,
    student: User,
    tutor_user_id: uuid.UUID,
    starts_at: datetime,
    duration: int,
    trial: bool = False,
    weeks: int = 1,
    now: datetime | None = None,
) -> Preview:
    """Offer, policy and the per-occurrence check of one lesson (``weeks=1``) or a weekly series,
    without writing: raises the same errors as :func:`booking_hold` for the tutor and offer."""
    now = _now(now)
    starts_at = _aware(starts_at)
    weeks = 1 if weeks == 1 else _check_weeks(weeks)
    offer, cal = await _prepare(
        session, student=student, tutor_user_id=tutor_user_id, duration=duration, trial=trial, now=now, write=False
    )
    starts = series_starts(starts_at, weeks, cal.availability.zone) if weeks > 1 else [starts_at]
    checks = [check_slot(cal, starts_at=s, duration=offer.minutes, now=now) for s in starts]
    return Preview(offer, cal.availability, checks)


def _series_refusal(checks: list[SlotCheck]) -> None:
    bad = [c for c in checks if not c.ok]
    if not bad:
        return
    dates = ", ".join(format_datetime(c.starts_at, "short") for c in bad)
    message = ngettext(
        "%(num)d lesson of this series cannot be booked: %(dates)s. Nothing was reserved.",
        "%(num)d lessons of this series cannot be booked: %(dates)s. Nothing was reserved.",
        len(bad),
        dates=dates,
    )
    errors = {c.starts_at.isoformat(): c.message for c in bad}
    if any(c.taken for c in bad):
        raise SlotTaken(message, errors=errors)
    raise ValidationFailed(message, errors=errors)


async def booking_hold_series(
    session: AsyncSession,
    *,
    student: User,
    tutor_user_id: uuid.UUID,
    first_start: datetime,
    duration: int,
    weeks: int,
    now: datetime | None = None,
) -> list[Booking]:
    """Hold ``weeks`` weekly lessons at once: all of them or none (the error lists which dates
    cannot be booked)."""
    now = _now(now)
    weeks = _check_weeks(weeks)
    first_start = _aware(first_start)
    offer, cal = await _prepare(
        session, student=student, tutor_user_id=tutor_user_id, duration=duration, trial=False, now=now
    )
    starts = series_starts(first_start, weeks, cal.availability.zone)
    checks = [check_slot(cal, starts_at=s, duration=offer.minutes, now=now) for s in starts]
    # Occurrences of one series must not collide with each other (a buffer longer than a week is not
    # possible, so they never do; checked anyway through the same exclusion as other bookings).
    _series_refusal(checks)
    series_id = uuid.uuid4()
    bookings = [_new_booking(offer, cal, student=student, starts_at=s, now=now, series_id=series_id) for s in starts]
    await _flush_guarded(session, *bookings)
    for booking in bookings:
        await _changed(session, booking, BookingChange.held)
    return bookings


# ---- payment and requests --------------------------------------------------------------------


async def _locked(session: AsyncSession, booking_id: uuid.UUID) -> Booking:
    booking = (
        await session.execute(select(Booking).where(Booking.id == booking_id).with_for_update())
    ).scalar_one_or_none()
    if booking is None:
        raise NotFound(_("We could not find this lesson."))
    return booking


async def _slot_free(session: AsyncSession, booking: Booking, *, now: datetime) -> bool:
    """No other active booking overlaps this one's blocked range (lapsed holds do not count)."""
    row = await session.execute(
        select(Booking.id)
        .where(
            Booking.tutor_id == booking.tutor_id,
            Booking.id != booking.id,
            Booking.status.in_(ACTIVE_STATUSES),
            Booking.blocked_from < booking.blocked_until,
            Booking.blocked_until > booking.blocked_from,
            or_(
                Booking.status != BookingStatus.held,
                Booking.hold_expires_at.is_(None),
                Booking.hold_expires_at > now,
            ),
        )
        .limit(1)
    )
    return row.first() is None


def _lapsed_message() -> str:
    return _("Your reservation ran out and this time is no longer free. Your payment will be refunded.")


async def booking_confirm_payment(
    session: AsyncSession, *, booking_id: uuid.UUID, paid_at: datetime | None = None, now: datetime | None = None
) -> Booking:
    """Payment for a hold arrived: held -> confirmed (instant mode) or -> requested (request mode).

    Idempotent: an already requested/confirmed (or later) booking is returned unchanged. A hold
    that lapsed is revived when its slot is still free; otherwise (slot taken, lesson time passed,
    or the booking was cancelled/declined) :class:`HoldLapsed` is raised and the payment is to be
    refunded.
    """
    now = _now(now)
    booking = await _locked(session, booking_id)
    if booking.status in (
        BookingStatus.requested,
        BookingStatus.confirmed,
        BookingStatus.completed,
        BookingStatus.no_show,
        BookingStatus.disputed,
        BookingStatus.resolved,
    ):
        return booking
    lapsed = booking.status == BookingStatus.expired or (
        booking.status == BookingStatus.held and booking.hold_expires_at is not None and booking.hold_expires_at <= now
    )
    if booking.status not in (BookingStatus.held, BookingStatus.expired) or (
        booking.status == BookingStatus.expired and booking.paid_at is not None
    ):
        raise HoldLapsed(_lapsed_message())
    if lapsed:
        if booking.starts_at <= now:
            raise HoldLapsed(_lapsed_message())
        await _expire_lapsed_holds(session, tutor_id=booking.tutor_id, now=now, keep=booking.id)
        if not await _slot_free(session, booking, now=now):
            raise HoldLapsed(_lapsed_message())
    avail = await _availability(session, booking.tutor_id)
    booking.paid_at = _now(paid_at) if paid_at else now
    booking.hold_expires_at = None
    booking.sequence += 1
    if avail.booking_mode == BookingMode.request:
        booking.status = BookingStatus.requested
        booking.request_expires_at = min(now + timedelta(hours=REQUEST_HOURS), booking.starts_at)
        change = BookingChange.requested
    else:
        booking.status = BookingStatus.confirmed
        booking.confirmed_at = now
        change = BookingChange.confirmed
    try:
        await _flush_guarded(session, booking)
    except SlotTaken as exc:
        raise HoldLapsed(_lapsed_message()) from exc
    await _changed(session, booking, change)
    return booking


async def _tutor_booking(session: AsyncSession, *, tutor: User, booking_id: uuid.UUID) -> Booking:
    booking = await _locked(session, booking_id)
    if booking.tutor_id != tutor.id:
        raise NotFound(_("We could not find this lesson."))
    return booking


async def booking_accept(
    session: AsyncSession, *, tutor: User, booking_id: uuid.UUID, now: datetime | None = None
) -> Booking:
    """The tutor accepts a request (request mode) before it expires. Idempotent."""
    now = _now(now)
    booking = await _tutor_booking(session, tutor=tutor, booking_id=booking_id)
    if booking.status == BookingStatus.confirmed:
        return booking
    if booking.status == BookingStatus.expired or (
        booking.status == BookingStatus.requested
        and booking.request_expires_at is not None
        and booking.request_expires_at <= now
    ):
        raise Conflict(_("This request has expired and can no longer be accepted. The student gets a full refund."))
    if booking.status != BookingStatus.requested:
        raise Conflict(_("This lesson is not waiting for your answer."))
    booking.status = BookingStatus.confirmed
    booking.confirmed_at = now
    booking.sequence += 1
    await _changed(session, booking, BookingChange.confirmed)
    return booking


async def booking_decline(
    session: AsyncSession, *, tutor: User, booking_id: uuid.UUID, now: datetime | None = None
) -> Booking:
    """The tutor declines a request: the student gets everything back. Idempotent."""
    now = _now(now)
    booking = await _tutor_booking(session, tutor=tutor, booking_id=booking_id)
    if booking.status == BookingStatus.declined:
        return booking
    if booking.status != BookingStatus.requested:
        raise Conflict(_("This lesson is not waiting for your answer."))
    booking.status = BookingStatus.declined
    booking.refund_amount = booking.price_amount
    booking.cancelled_at = now
    booking.sequence += 1
    await _changed(session, booking, BookingChange.declined)
    return booking


# ---- reschedule and cancel -------------------------------------------------------------------


async def _participant_booking(session: AsyncSession, *, actor: User, booking_id: uuid.UUID) -> tuple[Booking, str]:
    booking = await _locked(session, booking_id)
    if actor.id == booking.student_id:
        return booking, "student"
    if actor.id == booking.tutor_id:
        return booking, "tutor"
    raise NotFound(_("We could not find this lesson."))


def can_student_change(booking: Booking, avail: Availability, now: datetime) -> bool:
    return booking.starts_at - now >= timedelta(hours=avail.free_cancel_hours)


async def booking_reschedule(
    session: AsyncSession, *, actor: User, booking_id: uuid.UUID, new_start: datetime, now: datetime | None = None
) -> Booking:
    """Move a confirmed lesson to another free slot of the tutor (student or tutor, at most
    ``MAX_RESCHEDULES`` times; students only before the free-cancellation deadline)."""
    now = _now(now)
    new_start = _aware(new_start)
    booking, role = await _participant_booking(session, actor=actor, booking_id=booking_id)
    if booking.status != BookingStatus.confirmed:
        raise Conflict(_("Only a confirmed lesson can be moved."))
    if booking.starts_at <= now:
        raise Conflict(_("This lesson has already started and can no longer be moved."))
    if booking.reschedule_count >= MAX_RESCHEDULES:
        raise ValidationFailed(
            ngettext(
                "A lesson can be moved at most %(num)d time. Please cancel it and book a new one.",
                "A lesson can be moved at most %(num)d times. Please cancel it and book a new one.",
                MAX_RESCHEDULES,
            )
        )
    avail = await _availability(session, booking.tutor_id)
    if role == "student" and not can_student_change(booking, avail, now):
        raise ValidationFailed(
            ngettext(
                "Less than %(num)d hour before the lesson it can no longer be moved. You can still cancel it.",
                "Less than %(num)d hours before the lesson it can no longer be moved. You can still cancel it.",
                avail.free_cancel_hours,
            )
        )
    if new_start == booking.starts_at:
        raise ValidationFailed(_("Please choose a different time."), errors={"start": "same"})
    await _expire_lapsed_holds(session, tutor_id=booking.tutor_id, now=now)
    cal = await load_calendar(session, booking.tutor_id, now=now, exclude_booking_id=booking.id)
    assert cal is not None
    check = check_slot(cal, starts_at=new_start, duration=booking.duration_minutes, now=now)
    if not check.ok:
        _raise_refusal(check)
    duration = booking.duration_minutes
    booking.starts_at = new_start
    booking.ends_at = new_start + timedelta(minutes=duration)
    booking.blocked_from, booking.blocked_until = _blocked(avail, booking.starts_at, booking.ends_at)
    booking.reschedule_count += 1
    booking.sequence += 1
    booking.reminder_24h_sent_at = None
    booking.reminder_1h_sent_at = None
    await _flush_guarded(session, booking)
    await _changed(session, booking, BookingChange.rescheduled)
    return booking


@dataclass(frozen=True, slots=True)
class CancelQuote:
    """What cancelling now would mean for the actor (shown before they confirm)."""

    allowed: bool
    refund: int
    full: bool
    by: CancelledBy
    reason: str = ""


async def cancel_quote(
    session: AsyncSession, *, actor: User, booking: Booking, now: datetime | None = None
) -> CancelQuote:
    now = _now(now)
    by = CancelledBy.student if actor.id == booking.student_id else CancelledBy.tutor
    if booking.status not in ACTIVE_STATUSES:
        return CancelQuote(False, 0, False, by, _("This lesson can no longer be cancelled."))
    if booking.starts_at <= now:
        return CancelQuote(False, 0, False, by, _("This lesson has already started and can no longer be cancelled."))
    if booking.status == BookingStatus.held:
        return CancelQuote(True, 0, True, by)
    if booking.status == BookingStatus.requested:
        return CancelQuote(True, booking.price_amount, True, by)
    avail = await _availability(session, booking.tutor_id)
    refund = refund_for(
        booking.price_amount, booking.starts_at, now, avail.free_cancel_hours, avail.late_refund_percent, by
    )
    return CancelQuote(True, refund, refund == booking.price_amount, by)


async def booking_cancel(
    session: AsyncSession, *, actor: User, booking_id: uuid.UUID, reason: str = "", now: datetime | None = None
) -> Booking:
    """Cancel a held, requested or confirmed lesson before it starts. The refund follows the
    tutor's policy (:func:`refund_for`) for students; a tutor's cancellation refunds everything and
    counts against the tutor's reliability. Idempotent."""
    now = _now(now)
    booking, _role = await _participant_booking(session, actor=actor, booking_id=booking_id)
    if booking.status == BookingStatus.cancelled:
        return booking
    quote = await cancel_quote(session, actor=actor, booking=booking, now=now)
    if not quote.allowed:
        raise Conflict(quote.reason)
    booking.status = BookingStatus.cancelled
    booking.cancelled_by = quote.by
    booking.cancelled_at = now
    booking.cancel_reason = (reason or "").strip()[:500] or None
    booking.refund_amount = quote.refund if booking.paid_at is not None else 0
    booking.hold_expires_at = None
    booking.sequence += 1
    await _changed(session, booking, BookingChange.cancelled)
    return booking


# ---- after the lesson ------------------------------------------------------------------------


async def booking_complete(session: AsyncSession, *, booking_id: uuid.UUID, at: datetime | None = None) -> Booking:
    """confirmed -> completed (attendance, or both sides confirming). Idempotent."""
    at = _now(at)
    booking = await _locked(session, booking_id)
    if booking.status == BookingStatus.completed:
        return booking
    if booking.status != BookingStatus.confirmed:
        raise Conflict(_("Only a confirmed lesson can be completed."))
    if at < booking.starts_at:
        raise Conflict(_("A lesson cannot be completed before it starts."))
    booking.status = BookingStatus.completed
    booking.completed_at = at
    await _changed(session, booking, BookingChange.completed)
    return booking


async def booking_no_show(
    session: AsyncSession, *, booking_id: uuid.UUID, absent: str, at: datetime | None = None
) -> Booking:
    """Record who did not come. Student absent: ``no_show`` (the tutor is paid). Tutor absent: the
    lesson is cancelled by the tutor with a full refund (counted as a no-show). Idempotent."""
    at = _now(at)
    if absent not in ("student", "tutor"):
        raise ValidationFailed(_("Please say who did not attend."))
    booking = await _locked(session, booking_id)
    if absent == "student" and booking.status == BookingStatus.no_show:
        return booking
    if (
        absent == "tutor"
        and booking.status == BookingStatus.cancelled
        and booking.cancel_reason == TUTOR_NO_SHOW_REASON
    ):
        return booking
    if booking.status != BookingStatus.confirmed:
        raise Conflict(_("Only a confirmed lesson can be marked as missed."))
    if at < booking.starts_at:
        raise Conflict(_("A lesson cannot be marked as missed before it starts."))
    if absent == "student":
        booking.status = BookingStatus.no_show
        booking.completed_at = at
        await _changed(session, booking, BookingChange.no_show)
        return booking
    booking.status = BookingStatus.cancelled
    booking.cancelled_by = CancelledBy.tutor
    booking.cancelled_at = at
    booking.cancel_reason = TUTOR_NO_SHOW_REASON
    booking.refund_amount = booking.price_amount
    booking.sequence += 1
    await _changed(session, booking, BookingChange.cancelled)
    return booking


# ---- disputes (the payments domain decides; the booking records the state) -------------------

DISPUTABLE = (BookingStatus.confirmed, BookingStatus.completed, BookingStatus.no_show)


async def booking_dispute(session: AsyncSession, *, booking_id: uuid.UUID) -> Booking:
    """confirmed/completed/no_show -> disputed (the student disputed the lesson). Idempotent."""
    booking = await _locked(session, booking_id)
    if booking.status == BookingStatus.disputed:
        return booking
    if booking.status not in DISPUTABLE:
        raise Conflict(_("This lesson cannot be disputed."))
    booking.status = BookingStatus.disputed
    await _changed(session, booking, BookingChange.disputed, mail=False)
    return booking


async def booking_resolve(session: AsyncSession, *, booking_id: uuid.UUID) -> Booking:
    """disputed -> resolved (an admin settled the dispute). Idempotent."""
    booking = await _locked(session, booking_id)
    if booking.status == BookingStatus.resolved:
        return booking
    if booking.status != BookingStatus.disputed:
        raise Conflict(_("Only a disputed lesson can be resolved."))
    booking.status = BookingStatus.resolved
    await _changed(session, booking, BookingChange.resolved, mail=False)
    return booking


# ---- expiry ----------------------------------------------------------------------------------


async def booking_expire_lapsed(session: AsyncSession, *, now: datetime | None = None) -> tuple[int, int]:
    """Expire every lapsed hold (no mail: the student left checkout) and every request the tutor
    did not answer in time (full refund, mail). Returns (holds, requests). Idempotent."""
    now = _now(now)
    holds = await _expire_lapsed_holds(session, tutor_id=None, now=now)
    rows = list(
        (
            await session.execute(
                select(Booking)
                .where(
                    Booking.status == BookingStatus.requested,
                    Booking.request_expires_at.is_not(None),
                    Booking.request_expires_at <= now,
                )
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    for booking in rows:
        booking.status = BookingStatus.expired
        booking.refund_amount = booking.price_amount
        booking.sequence += 1
        await _changed(session, booking, BookingChange.expired)
    return holds, len(rows)


# ---- reliability and listings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reliability:
    """A tutor's record: lessons that were confirmed (held or not yet), how many the tutor cancelled,
    how many the tutor missed, and the share kept (``None`` without any confirmed lesson)."""

    lessons: int
    completed: int
    cancelled_by_tutor: int
    no_shows: int
    percent: int | None


async def tutor_reliability(session: AsyncSession, *, tutor_user_id: uuid.UUID) -> Reliability:
    was_confirmed = or_(
        Booking.confirmed_at.is_not(None),
        Booking.status.in_(
            (
                BookingStatus.confirmed,
                BookingStatus.completed,
                BookingStatus.no_show,
                BookingStatus.disputed,
                BookingStatus.resolved,
            )
        ),
    )
    tutor_cancel = and_(Booking.status == BookingStatus.cancelled, Booking.cancelled_by == CancelledBy.tutor)
    no_show = and_(tutor_cancel, Booking.cancel_reason == TUTOR_NO_SHOW_REASON)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Booking.status == BookingStatus.completed),
                func.count().filter(
                    tutor_cancel, or_(Booking.cancel_reason.is_(None), Booking.cancel_reason != TUTOR_NO_SHOW_REASON)
                ),
                func.count().filter(no_show),
            ).where(Booking.tutor_id == tutor_user_id, or_(was_confirmed, tutor_cancel))
        )
    ).one()
    lessons, completed, cancelled, missed = (int(v or 0) for v in row)
    percent = None if lessons == 0 else round(100 * (lessons - cancelled - missed) / lessons)
    return Reliability(lessons, completed, cancelled, missed, percent)


@dataclass
class LessonRow:
    booking: Booking
    other: User
    role: str  # the viewer's side: "student" or "tutor"


@dataclass
class LessonLists:
    requests: list[LessonRow]
    upcoming: list[LessonRow]
    past: list[LessonRow]


async def lessons_for_user(
    session: AsyncSession, *, user: User, now: datetime | None = None, limit: int = 100
) -> LessonLists:
    """The viewer's lessons as student and as tutor: requests waiting for them (tutors), upcoming
    (active, not ended) and past (everything else, newest first). Lapsed holds are not listed."""
    now = _now(now)
    rows = list(
        (
            await session.execute(
                select(Booking)
                .where(or_(Booking.student_id == user.id, Booking.tutor_id == user.id))
                .where(
                    or_(
                        Booking.status != BookingStatus.held,
                        Booking.hold_expires_at > now,
                    ),
                    ~and_(Booking.status == BookingStatus.expired, Booking.paid_at.is_(None)),
                )
                .order_by(Booking.starts_at.desc())
                .limit(limit * 2)
            )
        ).scalars()
    )
    ids = {b.student_id for b in rows} | {b.tutor_id for b in rows}
    people = {u.id: u for u in (await session.execute(select(User).where(User.id.in_(ids)))).scalars()} if ids else {}
    lists = LessonLists([], [], [])
    for b in rows:
        role = "tutor" if b.tutor_id == user.id else "student"
        item = LessonRow(b, people[b.student_id if role == "tutor" else b.tutor_id], role)
        if role == "tutor" and b.status == BookingStatus.requested:
            lists.requests.append(item)
        elif b.status in ACTIVE_STATUSES and b.ends_at > now:
            lists.upcoming.append(item)
        else:
            lists.past.append(item)
    lists.upcoming.sort(key=lambda r: r.booking.starts_at)
    lists.requests.sort(key=lambda r: r.booking.starts_at)
    lists.upcoming = lists.upcoming[:limit]
    lists.past = lists.past[:limit]
    return lists


async def booking_for_participant(session: AsyncSession, *, viewer: User, booking_id: uuid.UUID) -> LessonRow:
    booking = await session.get(Booking, booking_id)
    if booking is None or viewer.id not in (booking.student_id, booking.tutor_id):
        raise NotFound(_("We could not find this lesson."))
    role = "tutor" if viewer.id == booking.tutor_id else "student"
    other = await session.get(User, booking.student_id if role == "tutor" else booking.tutor_id)
    assert other is not None
    return LessonRow(booking, other, role)


def viewer_dates(now: datetime, zone: str, days: int) -> tuple[date, date]:
    today = now.astimezone(ZoneInfo(zone)).date()
    return today, today + timedelta(days=days)
