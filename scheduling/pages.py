"""Booking pages: confirm a slot (one lesson or a weekly series), the series payment summary, "My
lessons", and a lesson's detail page with reschedule, cancel, accept and decline.

Payment is the payments domain's (``/pay/{booking_id}``, reached through links and forms only, never
imported): one hold goes straight to its review page; a weekly series gets a summary page here with
one "Pay" form per lesson, since a checkout pays one booking.

Controllers parse, call a service from :mod:`scheduling.bookings` and render; the rules live in the
service. Every form is a plain POST that redirects (303) on success and re-renders with the message
on a refusal: 422 for input the rules refuse, 409 when another booking took the slot.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from marketplace.errors import AppError, Conflict, NotFound, ValidationFailed
from marketplace.i18n import current_timezone, format_money, to_viewer_zone
from marketplace.i18n import gettext as _
from marketplace.ports import payments
from marketplace.tutors.models import TutorProfile
from marketplace.tutors.public import register_profile_section
from marketplace.tutors.services import profile_lookup
from marketplace.web import current_user, flash, form_data, login_required, redirect
from scheduling import bookings as svc
from scheduling import jobs as _jobs  # noqa: F401 - declares the expiry actor
from scheduling.availability import tutor_slots
from scheduling.models import Availability, Booking, BookingStatus
from scheduling.rules import RuleErrors

RESCHEDULE_DAYS = 14
WEEK_CHOICES = tuple(range(svc.SERIES_MIN_WEEKS, svc.SERIES_MAX_WEEKS + 1))


def parse_start(raw: str | None) -> datetime:
    """A UTC ISO instant from a link or form (``Z`` or an offset; a bare time is read as UTC)."""
    text = (raw or "").strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise ValidationFailed(_("Please choose a valid start time."), errors={"start": "invalid"}) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_int(raw: str | None, *, message: str, field: str) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError as exc:
        raise ValidationFailed(message, errors={field: "invalid"}) from exc
    if not 0 < value < 10_000:
        raise ValidationFailed(message, errors={field: "invalid"})
    return value


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(_("We could not find this lesson.")) from exc


def policy_text(avail: Availability) -> str:
    free = _("Free cancellation until %(hours)d hours before the lesson.") % {"hours": avail.free_cancel_hours}
    if avail.late_refund_percent > 0:
        late = _("If you cancel later, you get %(percent)d%% of the price back.") % {
            "percent": avail.late_refund_percent
        }
    else:
        late = _("If you cancel later, there is no refund.")
    return " ".join([free, late, _("If the tutor cancels, you get everything back.")])


def _tutor_name(profile: TutorProfile) -> str:
    return (profile.live or {}).get("display_name") or ""


async def _booking_context(
    session,
    *,
    request: Request,
    slug: str,
    start: datetime,
    duration: int,
    trial: bool,
    weeks: int,
    repeat: bool,
) -> dict[str, Any]:
    profile, _banned = await profile_lookup(session, slug=slug, viewer=None)
    preview = await svc.booking_preview(
        session,
        student=current_user(request),
        tutor_user_id=profile.user_id,
        starts_at=start,
        duration=duration,
        trial=trial,
        weeks=weeks if repeat else 1,
    )
    count = len(preview.checks)
    return {
        "profile": profile,
        "tutor_name": _tutor_name(profile),
        "preview": preview,
        "start": start,
        "start_iso": start.isoformat().replace("+00:00", "Z"),
        "duration": duration,
        "trial": trial,
        "repeat": repeat,
        "weeks": weeks,
        "week_choices": WEEK_CHOICES,
        "price": format_money(preview.offer.price, preview.offer.currency),
        "total": format_money(preview.offer.price * count, preview.offer.currency),
        "count": count,
        "policy": policy_text(preview.availability),
        "request_mode": preview.availability.booking_mode == "request",
        "zone": current_timezone(),
        "hold_minutes": svc.hold_minutes(),
        "message": None,
    }


async def profile_bookings_open(session, request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """The profile page's week picker says bookings are not open yet while the tutor's payouts are
    not enabled (registered with marketplace.tutors.public)."""
    profile = context["profile"]
    return {"bookings_open": await payments().tutor_takes_paid_bookings(session, tutor_id=profile.user_id)}


register_profile_section(profile_bookings_open)


class BookingController(Controller):
    """Confirm a slot and create the hold(s)."""

    path = "/book"
    guards = [login_required]
    include_in_schema = False
    tags = ["scheduling"]

    @get("/{slug:str}", name="book")
    async def confirm_page(self, request: Request, slug: FromPath[str]) -> Template:
        q = request.query_params
        start = parse_start(q.get("start"))
        duration = parse_int(q.get("duration"), message=_("Please choose a lesson length."), field="duration")
        trial = q.get("trial") in ("1", "true", "on")
        repeat = q.get("repeat") in ("1", "true", "on") and not trial
        weeks = parse_int(q.get("weeks") or "4", message=_("Please choose a number of weeks."), field="weeks")
        async with session_factory()() as session:
            context = await _booking_context(
                session,
                request=request,
                slug=slug,
                start=start,
                duration=duration,
                trial=trial,
                weeks=weeks,
                repeat=repeat,
            )
        first = context["preview"].checks[0]
        status = 200
        if not first.ok:
            context["message"] = first.message
            status = 409 if first.taken else 422
        return Template("scheduling/book.html", context=context, status_code=status)

    @post("/{slug:str}", name="book_hold")
    async def hold(self, request: Request, slug: FromPath[str]) -> Template | Redirect:
        form = await form_data(request)
        start = parse_start(form.get("start"))
        duration = parse_int(form.get("duration"), message=_("Please choose a lesson length."), field="duration")
        trial = form.get("trial") in ("1", "true", "on")
        repeat = form.get("repeat") in ("1", "true", "on") and not trial
        weeks = parse_int(form.get("weeks") or "4", message=_("Please choose a number of weeks."), field="weeks")
        student = current_user(request)
        try:
            async with transaction(write=True) as session:
                profile, _banned = await profile_lookup(session, slug=slug, viewer=None)
                if repeat:
                    held = await svc.booking_hold_series(
                        session,
                        student=student,
                        tutor_user_id=profile.user_id,
                        first_start=start,
                        duration=duration,
                        weeks=weeks,
                    )
                else:
                    held = [
                        await svc.booking_hold(
                            session,
                            student=student,
                            tutor_user_id=profile.user_id,
                            starts_at=start,
                            duration=duration,
                            trial=trial,
                        )
                    ]
                first_id = held[0].id
                series = held[0].series_id is not None
        except (Conflict, ValidationFailed) as exc:
            async with session_factory()() as session:
                try:
                    context = await _booking_context(
                        session,
                        request=request,
                        slug=slug,
                        start=start,
                        duration=duration,
                        trial=trial,
                        weeks=weeks,
                        repeat=repeat,
                    )
                except AppError:
                    raise exc from None
            context["message"] = exc.message
            return Template("scheduling/book.html", context=context, status_code=exc.status_code)
        return redirect(f"/book/hold/{first_id}/pay" if series else f"/pay/{first_id}")


class HoldCheckoutController(Controller):
    """``GET /book/hold/{id}/pay``: what is left to pay of a reservation. A single lesson goes to the
    payments review page; a weekly series lists each lesson with its own "Pay" form (the payments
    checkout, ``POST /pay/{id}``, pays one booking at a time) and the time left."""

    path = "/book/hold"
    guards = [login_required]
    include_in_schema = False
    tags = ["scheduling"]

    async def _holds(self, session, *, student: User, booking_id: uuid.UUID) -> list[Booking]:
        booking = await session.get(Booking, booking_id)
        if booking is None or booking.student_id != student.id:
            raise NotFound(_("We could not find this reservation."))
        if booking.series_id is None:
            return [booking]
        rows = await session.execute(
            select(Booking)
            .where(Booking.series_id == booking.series_id, Booking.student_id == student.id)
            .order_by(Booking.starts_at)
        )
        return list(rows.scalars())

    @get("/{booking_id:str}/pay", name="book_pay")
    async def pay_page(self, request: Request, booking_id: FromPath[str]) -> Template | Redirect:
        bid = _uuid(booking_id)
        now = datetime.now(UTC)
        async with session_factory()() as session:
            holds = await self._holds(session, student=current_user(request), booking_id=bid)
            first = holds[0]
            if len(holds) == 1:
                return redirect(f"/pay/{first.id}")
            tutor = await session.get(User, first.tutor_id)
        rows = []
        for b in holds:
            expires = b.hold_expires_at
            payable = b.status == BookingStatus.held and expires is not None and expires > now
            rows.append(
                {
                    "booking": b,
                    "payable": payable,
                    "lapsed": b.status == BookingStatus.expired or (b.status == BookingStatus.held and not payable),
                    "paid": b.paid_at is not None,
                }
            )
        waiting = [r for r in rows if r["payable"]]
        expires = min(r["booking"].hold_expires_at for r in waiting) if waiting else None
        return Template(
            "scheduling/book_pay.html",
            context={
                "rows": rows,
                "holds": holds,
                "first": first,
                "tutor": tutor,
                "total": format_money(sum(b.price_amount for b in holds), first.currency),
                "to_pay": format_money(sum(r["booking"].price_amount for r in waiting), first.currency),
                "waiting": len(waiting),
                "expires": expires,
                "minutes_left": max(0, int((expires - now).total_seconds() // 60)) if expires else 0,
            },
        )


def _parse_day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        return None


async def _detail_context(
    request: Request, booking_id: uuid.UUID, *, day: str | None = None, **extra: Any
) -> dict[str, Any]:
    viewer = current_user(request)
    now = datetime.now(UTC)
    async with session_factory()() as session:
        row = await svc.booking_for_participant(session, viewer=viewer, booking_id=booking_id)
        b = row.booking
        avail = (
            await session.execute(select(Availability).where(Availability.tutor_id == b.tutor_id))
        ).scalar_one_or_none()
        quote = await svc.cancel_quote(session, actor=viewer, booking=b, now=now)
        slots = []
        can_move = (
            b.status == BookingStatus.confirmed
            and b.starts_at > now
            and b.reschedule_count < svc.MAX_RESCHEDULES
            and avail is not None
            and (row.role == "tutor" or svc.can_student_change(b, avail, now))
        )
        if can_move:
            date_from, date_to = svc.viewer_dates(now, current_timezone(), RESCHEDULE_DAYS)
            try:
                slots = await tutor_slots(
                    session,
                    b.tutor_id,
                    duration=b.duration_minutes,
                    viewer_zone=current_timezone(),
                    date_from=date_from,
                    date_to=date_to,
                    now=now,
                    exclude_booking_id=b.id,
                )
            except RuleErrors:
                slots = []
            slots = [s for s in slots if s.start != b.starts_at]
        slot_days: dict[Any, list] = {}
        for s in slots:
            slot_days.setdefault(to_viewer_zone(s.start).date(), []).append(s)
        days = list(slot_days)
        lesson_day = to_viewer_zone(b.starts_at).date()
        chosen = _parse_day(day) if day else None
        if chosen not in slot_days:
            chosen = lesson_day if lesson_day in slot_days else (days[0] if days else None)
        profile = (
            await session.execute(select(TutorProfile.slug).where(TutorProfile.user_id == b.tutor_id))
        ).scalar_one_or_none()
        payment = await payments().lesson_payment(session, booking_id=b.id, viewer_id=viewer.id, now=now)
    return {
        "row": row,
        "b": b,
        "avail": avail,
        "policy": policy_text(avail) if avail else "",
        "quote": quote,
        "refund_text": format_money(quote.refund, b.currency),
        "can_move": can_move,
        "slot_days": days,
        "day": chosen,
        "day_slots": slot_days.get(chosen, []) if chosen else [],
        "moves_left": svc.MAX_RESCHEDULES - b.reschedule_count,
        "tutor_slug": profile,
        "now": now,
        "can_join": b.status == BookingStatus.confirmed and b.ends_at > now,
        "payment": payment,
        "message": None,
        **extra,
    }


class LessonsController(Controller):
    """My lessons (students and tutors) and one lesson's page."""

    path = "/lessons"
    guards = [login_required]
    include_in_schema = False
    tags = ["scheduling"]

    @get("/", name="lessons")
    async def index(self, request: Request) -> Template:
        async with session_factory()() as session:
            lists = await svc.lessons_for_user(session, user=current_user(request))
        return Template("scheduling/lessons.html", context={"lists": lists, "now": datetime.now(UTC)})

    @get("/{booking_id:uuid}", name="lesson")
    async def detail(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        day = request.query_params.get("day")
        return Template("scheduling/lesson.html", context=await _detail_context(request, booking_id, day=day))

    async def _act(self, request: Request, booking_id: uuid.UUID, action) -> Template | Redirect:
        try:
            async with transaction(write=True) as session:
                message = await action(session)
        except (Conflict, ValidationFailed) as exc:
            context = await _detail_context(request, booking_id, message=exc.message)
            return Template("scheduling/lesson.html", context=context, status_code=exc.status_code)
        flash(request, message)
        return redirect(f"/lessons/{booking_id}")

    @post("/{booking_id:uuid}/cancel", name="lesson_cancel")
    async def cancel(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        actor = current_user(request)

        async def action(session) -> str:
            b = await svc.booking_cancel(session, actor=actor, booking_id=booking_id, reason=form.get("reason", ""))
            if b.refund_amount:
                return _("The lesson is cancelled. Refund: %(amount)s.") % {
                    "amount": format_money(b.refund_amount, b.currency)
                }
            return _("The lesson is cancelled.")

        return await self._act(request, booking_id, action)

    @post("/{booking_id:uuid}/reschedule", name="lesson_reschedule")
    async def reschedule(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        actor = current_user(request)
        try:
            new_start = parse_start(form.get("start"))
        except ValidationFailed as exc:
            context = await _detail_context(request, booking_id, message=_("Please choose one of the free times."))
            return Template("scheduling/lesson.html", context=context, status_code=exc.status_code)

        async def action(session) -> str:
            await svc.booking_reschedule(session, actor=actor, booking_id=booking_id, new_start=new_start)
            return _("The lesson was moved. Both of you got an updated invitation.")

        return await self._act(request, booking_id, action)

    @post("/{booking_id:uuid}/accept", name="lesson_accept")
    async def accept(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        tutor = current_user(request)

        async def action(session) -> str:
            await svc.booking_accept(session, tutor=tutor, booking_id=booking_id)
            return _("You accepted the lesson.")

        return await self._act(request, booking_id, action)

    @post("/{booking_id:uuid}/decline", name="lesson_decline")
    async def decline(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        tutor = current_user(request)

        async def action(session) -> str:
            await svc.booking_decline(session, tutor=tutor, booking_id=booking_id)
            return _("You declined the request. The student gets a full refund.")

        return await self._act(request, booking_id, action)
