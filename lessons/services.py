"""Lesson verbs: rooms and tokens, webhooks into attendance, the end-of-slot decision, the admin
correction, the "lesson took place" confirmation without video, notes and homework, recording.

Booking status changes only through ``scheduling.bookings`` (``booking_complete``,
``booking_no_show``); the decision and the booking change commit in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from lessons import livekit
from lessons.attendance import Decision, decide
from lessons.models import (
    AttendanceSession,
    AttendanceSource,
    LessonConfirmation,
    LessonNote,
    LessonOutcome,
    LessonRoom,
    NoteAttachment,
    Outcome,
    Recording,
    RecordingConsent,
    RecordingStatus,
    WebhookEvent,
)
from marketplace.accounts.models import Role, User
from marketplace.audit import audit_record
from marketplace.db import after_commit
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.sqlite_gate import sqlite_write_gate
from scheduling.bookings import BookingChange, booking_complete, booking_no_show, on_booking_change
from scheduling.models import Booking, BookingStatus

log = logging.getLogger(__name__)

#: Tokens (and so the room) are available from this long before the start ...
JOIN_BEFORE = timedelta(minutes=10)
#: ... until this long after the scheduled end. The decision runs when this window closes.
JOIN_AFTER = timedelta(minutes=15)
#: How far ahead the reconcile job prepares rooms for confirmed lessons.
PREPARE_AHEAD = timedelta(hours=24)
NOTES_MAX = 20_000
ROOM_STATUSES = (BookingStatus.confirmed,)
NOTE_STATUSES = (BookingStatus.confirmed, BookingStatus.completed, BookingStatus.no_show, BookingStatus.resolved)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def join_window(booking: Booking) -> tuple[datetime, datetime]:
    return booking.starts_at - JOIN_BEFORE, booking.ends_at + JOIN_AFTER


# ---- access ----------------------------------------------------------------------------------


@dataclass
class LessonAccess:
    booking: Booking
    viewer: User
    other: User
    role: str  # "tutor" or "student"


async def lesson_access(session: AsyncSession, *, viewer: User, booking_id: uuid.UUID) -> LessonAccess:
    """The booking if ``viewer`` is its student or tutor; NotFound otherwise (no existence leak)."""
    booking = await session.get(Booking, booking_id)
    if booking is None or viewer.id not in (booking.student_id, booking.tutor_id):
        raise NotFound(_("We could not find this lesson."))
    role = "tutor" if viewer.id == booking.tutor_id else "student"
    other = await session.get(User, booking.student_id if role == "tutor" else booking.tutor_id)
    assert other is not None
    return LessonAccess(booking=booking, viewer=viewer, other=other, role=role)


# ---- rooms -----------------------------------------------------------------------------------


async def room_for_booking(session: AsyncSession, booking_id: uuid.UUID) -> LessonRoom | None:
    return (await session.execute(select(LessonRoom).where(LessonRoom.booking_id == booking_id))).scalar_one_or_none()


async def room_ensure(session: AsyncSession, *, booking: Booking) -> LessonRoom:
    """The booking's room row, made once with a random name (the server side is separate)."""
    room = await room_for_booking(session, booking.id)
    if room is None:
        room = LessonRoom(booking_id=booking.id, name=livekit.new_room_name())
        session.add(room)
        await session.flush()
    return room


async def room_create_on_server(session: AsyncSession, *, booking_id: uuid.UUID) -> bool:
    """Create the room on the LiveKit server (idempotent there and here). True when it exists."""
    if not livekit.configured():
        return False
    booking = await session.get(Booking, booking_id)
    if booking is None or booking.status not in ROOM_STATUSES:
        return False
    room = await room_ensure(session, booking=booking)
    if room.created_on_server_at is not None:
        return True
    async with livekit.LiveKitServer() as server:
        await server.create_room(room.name)
    room.created_on_server_at = datetime.now(UTC)
    return True


def _schedule_room_prepare(session: AsyncSession, booking: Booking, change: BookingChange) -> None:
    """Booking listener: a confirmed (or moved) lesson gets its room prepared after commit."""
    if change not in (BookingChange.confirmed, BookingChange.rescheduled) or not livekit.configured():
        return
    from lessons.jobs import lessons_room_prepare

    booking_id = str(booking.id)
    after_commit(session, lambda: lessons_room_prepare.send(booking_id))


on_booking_change(_schedule_room_prepare)


# ---- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomToken:
    token: str
    url: str
    identity: str
    room: str
    expires_at: datetime


def check_join_window(booking: Booking, now: datetime) -> None:
    opens, closes = join_window(booking)
    if booking.status not in ROOM_STATUSES:
        raise Conflict(_("This lesson is not confirmed, so its room is closed."))
    if now < opens:
        raise Forbidden(_("The lesson room opens 10 minutes before the lesson starts."))
    if now >= closes:
        raise Forbidden(_("The lesson room closed 15 minutes after the lesson ended."))


async def token_issue(
    session: AsyncSession, *, viewer: User, booking_id: uuid.UUID, now: datetime | None = None
) -> RoomToken:
    """An access token for the booked student or tutor, for this lesson's room only, valid from
    10 minutes before the start until 15 minutes after the scheduled end.

    One read loads the booking with its room. The room is normally prepared by a job after the
    confirmation (``lessons_room_prepare``, retried by the reconcile job); only when that has not
    happened yet is it made here, in short write transactions of its own, and created on the
    server (a failure there is logged: LiveKit creates rooms on join, and the reconcile retries)."""
    now = _now(now)
    if not livekit.configured():
        raise Conflict(_("Video is not configured on this site."))
    row = (
        await session.execute(
            select(Booking, LessonRoom)
            .outerjoin(LessonRoom, LessonRoom.booking_id == Booking.id)
            .where(Booking.id == booking_id)
        )
    ).first()
    if row is None or viewer.id not in (row[0].student_id, row[0].tutor_id):
        raise NotFound(_("We could not find this lesson."))
    booking, room = row
    check_join_window(booking, now)
    if room is not None and room.created_on_server_at is not None:
        name = room.name
    else:
        name = await _room_prepare_on_join(booking_id=booking.id, now=now)
    issued = livekit.participant_token(
        room=name,
        identity=str(viewer.id),
        name=viewer.display_name,
        valid_until=join_window(booking)[1],
        now=now,
    )
    return RoomToken(
        token=issued.jwt,
        url=livekit.client_url(),
        identity=issued.identity,
        room=name,
        expires_at=issued.expires_at,
    )


async def _room_prepare_on_join(*, booking_id: uuid.UUID, now: datetime) -> str:
    """The fallback when the job has not prepared the room: the row (one write transaction), the
    server call outside any transaction, then the mark. The room's name."""
    from sqlalchemy import update

    from marketplace.db import transaction

    async with transaction() as session:
        booking = await session.get(Booking, booking_id)
        assert booking is not None
        room = await room_ensure(session, booking=booking)
        name, created = room.name, room.created_on_server_at
    if created is None:
        try:
            async with livekit.LiveKitServer() as server:
                await server.create_room(name)
        except Exception:
            log.warning("could not create LiveKit room %s on first join", name, exc_info=True)
        else:
            async with transaction() as session:
                await session.execute(
                    update(LessonRoom)
                    .where(LessonRoom.name == name, LessonRoom.created_on_server_at.is_(None))
                    .values(created_on_server_at=now)
                )
    return name


# ---- webhooks --------------------------------------------------------------------------------
#
# The endpoint verifies the signature and hands the event to this process's inbox
# (``webhook_receive``): the events that arrive while one batch is being written are written
# together in the next transaction (group commit: one SELECT of the rooms, one multi-row INSERT ...
# ON CONFLICT (event_id) DO NOTHING RETURNING, one commit), and each request answers once its own
# row is committed. After commit a job applies the lesson's pending events
# (``webhooks_apply_pending``; one job per burst, see ``_send_apply``). The reconcile job and the
# decision apply whatever a lost job left. Applying is idempotent and order-independent: joins and
# leaves fill the two ends of a participant session keyed by its sid, and each stored event is
# applied once (``applied_at``).


def _ts(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


@dataclass(frozen=True)
class WebhookResult:
    status: str  # "accepted" (stored, a job applies it), "duplicate", "ignored", "unknown_room"
    event: str
    booking_id: uuid.UUID | None = None


def event_room_name(event) -> str:
    return event.room.name or event.egress_info.room_name


#: The job that applies a lesson's events runs this long after the first of a burst is stored, and
#: applies every event stored by then: one job per burst, not one per event.
APPLY_DELAY_MS = 200
_apply_due: dict[uuid.UUID, float] = {}  # this process: booking -> when the job it sent runs


def _send_apply(booking_id: uuid.UUID) -> None:
    """After commit: send the job that applies the lesson's stored events, unless this process
    sent one that runs (applies everything committed) comfortably after now."""
    from lessons.jobs import lessons_webhooks_apply

    now = time.monotonic()
    due = _apply_due.get(booking_id)
    if due is not None and now < due - 0.05:
        return
    if len(_apply_due) > 10_000:
        for key in [k for k, v in _apply_due.items() if v < now]:
            _apply_due.pop(key, None)
    _apply_due[booking_id] = now + APPLY_DELAY_MS / 1000
    lessons_webhooks_apply.send_with_options(args=(str(booking_id),), delay=APPLY_DELAY_MS)


@dataclass(frozen=True)
class IncomingEvent:
    """A verified event as it is stored: its id, name, room, time and raw body."""

    event_id: str
    event: str
    room_name: str
    occurred_at: datetime | None
    payload: str

    @classmethod
    def of(cls, event, payload: str) -> IncomingEvent:
        """From a verified ``WebhookEvent``; ValidationFailed without an id."""
        if not event.id:
            raise ValidationFailed(_("The event has no id."))
        return cls(
            event_id=event.id[:100],
            event=event.event[:40],
            room_name=event_room_name(event)[:64],
            occurred_at=_ts(event.created_at),
            payload=payload,
        )


_INSERT_EVENTS: dict[str, object] = {}


def _insert_events_statement(dialect: str):
    """INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id, built once per dialect
    (cached compiled form; many rows become one multi-row statement, "insertmanyvalues")."""
    statement = _INSERT_EVENTS.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = WebhookEvent.__table__
        statement = insert(table).on_conflict_do_nothing(index_elements=[table.c.event_id]).returning(table.c.event_id)
        _INSERT_EVENTS[dialect] = statement
    return statement


async def webhooks_store(
    session: AsyncSession, items: list[IncomingEvent], *, now: datetime | None = None
) -> list[WebhookResult]:
    """Store verified events once by id, each for the lesson whose room it names, in the session's
    transaction: one query for the rooms, one INSERT for the new rows. The result per item, in
    order: "accepted" (stored now; the job that applies the lesson's events is sent after
    commit), "duplicate" (stored before, or earlier in ``items``), "ignored" (no room) or
    "unknown_room" (no lesson has this room: nothing stored)."""
    now = _now(now)
    names = {item.room_name for item in items if item.room_name}
    rooms: dict[str, uuid.UUID] = {}
    if names:
        rooms = dict(
            (await session.execute(select(LessonRoom.name, LessonRoom.booking_id).where(LessonRoom.name.in_(names))))
            .tuples()
            .all()
        )
    rows: dict[str, dict[str, object]] = {}
    for item in items:
        booking_id = rooms.get(item.room_name)
        if booking_id is not None and item.event_id not in rows:
            rows[item.event_id] = {
                "id": uuid.uuid4(),
                "created_at": now,
                "updated_at": now,
                "event_id": item.event_id,
                "event": item.event,
                "room_name": item.room_name,
                "booking_id": booking_id,
                "occurred_at": item.occurred_at or now,
                "payload": item.payload,
            }
    stored: set[str] = set()
    if rows:
        statement = _insert_events_statement(session.get_bind().dialect.name)
        stored = set((await session.execute(statement, list(rows.values()))).scalars())
    bookings = {rows[event_id]["booking_id"] for event_id in stored}
    for booking_id in bookings:
        after_commit(session, lambda booking_id=booking_id: _send_apply(booking_id))
    results = []
    answered: set[str] = set()
    for item in items:
        if not item.room_name:
            results.append(WebhookResult("ignored", item.event))
            continue
        booking_id = rooms.get(item.room_name)
        if booking_id is None:
            results.append(WebhookResult("unknown_room", item.event))
        elif item.event_id in stored and item.event_id not in answered:
            answered.add(item.event_id)
            results.append(WebhookResult("accepted", item.event, booking_id))
        else:
            results.append(WebhookResult("duplicate", item.event, booking_id))
    return results


class _WebhookInbox:
    """Group commit for incoming events: each caller waits for the transaction its event was
    written in; events that arrive meanwhile go into the next one (no added delay when idle)."""

    MAX_BATCH = 500

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[tuple[IncomingEvent, asyncio.Future[WebhookResult]]] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, item: IncomingEvent) -> WebhookResult:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, CLI): start afresh
            self._loop, self._queue, self._task = loop, [], None
        future: asyncio.Future[WebhookResult] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        from marketplace.db import transaction

        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            items = [item for item, _future in batch]
            try:
                async with sqlite_write_gate.hold(), transaction() as session:
                    results = await webhooks_store(session, items)
            except Exception:
                # One bad row must not fail the others: each alone (the failing caller answers
                # with an error, and the sender retries).
                log.warning("storing %d webhook events together failed; one by one", len(batch), exc_info=True)
                for item, future in batch:
                    try:
                        async with sqlite_write_gate.hold(), transaction() as session:
                            (result,) = await webhooks_store(session, [item])
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            for (_item, future), result in zip(batch, results, strict=True):
                if not future.done():  # a caller that went away is not waited for
                    future.set_result(result)


_inbox = _WebhookInbox()


async def webhook_receive(event, payload: str) -> WebhookResult:
    """Store one verified event (``livekit.verify_webhook``) once by its id, committed before this
    returns (together with the events other requests of this process are storing: group commit).
    ValidationFailed without an event id; the status "unknown_room" when no lesson has its room."""
    return await _inbox.put(IncomingEvent.of(event, payload))


async def webhooks_apply_pending(
    session: AsyncSession, *, booking_id: uuid.UUID, now: datetime | None = None, limit: int = 1000
) -> int:
    """Apply up to ``limit`` of the lesson's stored events that are not applied yet (also run
    before a decision). The booking row is locked (FOR NO KEY UPDATE: the webhook inserts' foreign
    key checks are not blocked), so one transaction at a time applies a lesson's events; SQLite
    serializes write transactions anyway. The lesson's attendance rows for these events' sessions
    are read in one query. The number of events applied."""
    now = _now(now)
    booking = await session.get(Booking, booking_id, with_for_update={"key_share": True})
    if booking is None:
        return 0
    rows = list(
        (
            await session.execute(
                select(WebhookEvent)
                .where(WebhookEvent.booking_id == booking_id, WebhookEvent.applied_at.is_(None))
                .order_by(WebhookEvent.occurred_at, WebhookEvent.created_at)
                .limit(limit)
            )
        ).scalars()
    )
    events = []
    for row in rows:
        row.applied_at = now
        if not row.payload:
            continue
        try:
            events.append((row, livekit.parse_event(row.payload)))
        except Exception:  # verified when stored; a payload that no longer parses is skipped
            log.warning("stored LiveKit event %s does not parse", row.event_id, exc_info=True)
    sids = {event.participant.sid for _row, event in events if event.participant.sid}
    known: dict[str, AttendanceSession] = {}
    if sids:
        for found in (
            await session.execute(
                select(AttendanceSession).where(
                    AttendanceSession.booking_id == booking_id, AttendanceSession.participant_sid.in_(sids)
                )
            )
        ).scalars():
            known[found.participant_sid] = found
    room: LessonRoom | None = None
    for row, event in events:
        occurred = row.occurred_at or now
        name = event.event
        if name in ("participant_joined", "participant_left", "participant_connection_aborted"):
            await _participant_event(session, booking, event.participant, name, occurred, known)
        elif name == "room_finished":
            await _close_open_sessions(session, booking.id, occurred)
        elif name.startswith("egress_"):
            await _egress_event(session, booking, event.egress_info, now)
        elif name == "room_started":
            room = room or await room_for_booking(session, booking.id)
            if room is not None and room.created_on_server_at is None:
                room.created_on_server_at = occurred
    return len(rows)


async def _participant_event(
    session: AsyncSession,
    booking: Booking,
    participant,
    name: str,
    occurred: datetime,
    known: dict[str, AttendanceSession] | None = None,
) -> None:
    try:
        user_id = uuid.UUID(participant.identity)
    except ValueError:
        return  # egress/agent participants, not people
    if user_id not in (booking.tutor_id, booking.student_id) or not participant.sid:
        return
    joined = _ts(participant.joined_at) if participant.joined_at else None
    row = known.get(participant.sid) if known is not None else None
    if row is None:
        row = await _session_row(session, booking.id, participant.sid, user_id, AttendanceSource.webhook)
        if known is not None:
            known[participant.sid] = row
    if name == "participant_joined":
        joined = joined or occurred
        row.joined_at = joined if row.joined_at is None else min(row.joined_at, joined)
        if booking.status == BookingStatus.confirmed:
            await _maybe_start_recording(session, booking)
    else:
        if row.joined_at is None and joined is not None:
            row.joined_at = joined
        row.left_at = occurred if row.left_at is None else max(row.left_at, occurred)


async def _session_row(
    session: AsyncSession, booking_id: uuid.UUID, sid: str, user_id: uuid.UUID, source: AttendanceSource
) -> AttendanceSession:
    row = (
        await session.execute(
            select(AttendanceSession).where(
                AttendanceSession.booking_id == booking_id, AttendanceSession.participant_sid == sid
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = AttendanceSession(booking_id=booking_id, user_id=user_id, participant_sid=sid, source=source)
        session.add(row)
    return row


async def _close_open_sessions(session: AsyncSession, booking_id: uuid.UUID, at: datetime) -> int:
    rows = (
        await session.execute(
            select(AttendanceSession).where(
                AttendanceSession.booking_id == booking_id,
                AttendanceSession.left_at.is_(None),
                AttendanceSession.joined_at.is_not(None),
                AttendanceSession.voided_at.is_(None),
            )
        )
    ).scalars()
    count = 0
    for row in rows:
        row.left_at = max(at, row.joined_at)
        count += 1
    return count


# ---- reconcile -------------------------------------------------------------------------------


async def room_reconcile(session: AsyncSession, *, booking_id: uuid.UUID, now: datetime | None = None) -> None:
    """Repair what webhooks missed, from the server's view of the room: participants present now
    get an open session (from their join time); open sessions whose participant is gone are
    closed now (or at the slot end if that is earlier)."""
    now = _now(now)
    booking = await session.get(Booking, booking_id)
    room = await room_for_booking(session, booking_id)
    if booking is None or room is None or not livekit.configured():
        return
    async with livekit.LiveKitServer() as server:
        present = await server.participants(room.name)
    people = {str(booking.tutor_id): booking.tutor_id, str(booking.student_id): booking.student_id}
    sids = set()
    for p in present:
        if p.identity not in people or not p.sid:
            continue
        sids.add(p.sid)
        row = await _session_row(session, booking.id, p.sid, people[p.identity], AttendanceSource.reconcile)
        if row.joined_at is None:
            row.joined_at = p.joined_at or now
        row.left_at = None if row.left_at is None else row.left_at
    open_rows = (
        await session.execute(
            select(AttendanceSession).where(
                AttendanceSession.booking_id == booking.id,
                AttendanceSession.left_at.is_(None),
                AttendanceSession.voided_at.is_(None),
            )
        )
    ).scalars()
    for row in open_rows:
        if row.participant_sid not in sids and row.joined_at is not None:
            row.left_at = max(row.joined_at, min(now, booking.ends_at))


# ---- the decision ----------------------------------------------------------------------------


async def _stays(session: AsyncSession, booking: Booking) -> dict[uuid.UUID, list[tuple[datetime, datetime | None]]]:
    rows = (
        await session.execute(
            select(AttendanceSession).where(
                AttendanceSession.booking_id == booking.id,
                AttendanceSession.voided_at.is_(None),
                AttendanceSession.joined_at.is_not(None),
            )
        )
    ).scalars()
    stays: dict[uuid.UUID, list[tuple[datetime, datetime | None]]] = {booking.tutor_id: [], booking.student_id: []}
    for row in rows:
        stays.setdefault(row.user_id, []).append((row.joined_at, row.left_at))
    return stays


async def attendance_decision(session: AsyncSession, *, booking: Booking, now: datetime | None = None) -> Decision:
    stays = await _stays(session, booking)
    return decide(
        tutor_stays=stays[booking.tutor_id],
        student_stays=stays[booking.student_id],
        slot_start=booking.starts_at,
        slot_end=booking.ends_at,
        now=_now(now),
        percent=get_settings().lesson_attendance_percent,
    )


async def _settle(session: AsyncSession, booking: Booking, outcome: Outcome, at: datetime) -> bool:
    if outcome in (Outcome.delivered, Outcome.confirmed_by_both):
        await booking_complete(session, booking_id=booking.id, at=at)
    elif outcome == Outcome.student_absent:
        await booking_no_show(session, booking_id=booking.id, absent="student", at=at)
    elif outcome == Outcome.tutor_absent:
        await booking_no_show(session, booking_id=booking.id, absent="tutor", at=at)
    else:
        return False
    return True


async def lesson_decide(
    session: AsyncSession, *, booking_id: uuid.UUID, now: datetime | None = None, actor: User | None = None
) -> LessonOutcome | None:
    """Decide a lesson whose room window has closed, once, and settle the booking accordingly.
    None when it is not due (not confirmed, window still open, video not configured)."""
    now = _now(now)
    booking = await session.get(Booking, booking_id, with_for_update=True)
    existing = (
        await session.execute(select(LessonOutcome).where(LessonOutcome.booking_id == booking_id))
    ).scalar_one_or_none()
    if booking is not None and (existing is None or not existing.settled):
        await webhooks_apply_pending(session, booking_id=booking_id)  # events no job has applied yet
    if existing is not None and existing.settled:
        return existing
    if booking is None or booking.status != BookingStatus.confirmed or not livekit.configured():
        return None
    if now < join_window(booking)[1] and actor is None:
        return None
    if existing is not None and actor is None:
        return existing  # both absent: waits for an admin's correction
    decision = await attendance_decision(session, booking=booking, now=now)
    outcome = Outcome(decision.outcome)
    if existing is None:
        existing = LessonOutcome(booking_id=booking_id, outcome=outcome)
        session.add(existing)
    existing.outcome = outcome
    existing.tutor_seconds = decision.tutor_seconds
    existing.student_seconds = decision.student_seconds
    existing.decided_by_id = actor.id if actor else None
    existing.settled = await _settle(session, booking, outcome, min(now, max(booking.ends_at, booking.starts_at)))
    await session.flush()
    return existing


async def lessons_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> list[uuid.UUID]:
    """Confirmed lessons whose room window closed and that have no outcome yet."""
    now = _now(now)
    decided = exists().where(LessonOutcome.booking_id == Booking.id)
    rows = await session.execute(
        select(Booking.id)
        .where(Booking.status == BookingStatus.confirmed, Booking.ends_at <= now - JOIN_AFTER, ~decided)
        .order_by(Booking.ends_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def lessons_to_reconcile(session: AsyncSession, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Confirmed lessons starting within a day (rooms to prepare) or whose window is open."""
    now = _now(now)
    rows = await session.execute(
        select(Booking.id).where(
            Booking.status == BookingStatus.confirmed,
            Booking.starts_at <= now + PREPARE_AHEAD,
            Booking.ends_at > now - JOIN_AFTER,
        )
    )
    return list(rows.scalars())


# ---- admin correction ------------------------------------------------------------------------


def _attendance_snapshot(rows: list[AttendanceSession]) -> list[dict[str, str | None]]:
    return [
        {
            "user_id": str(r.user_id),
            "joined_at": r.joined_at.isoformat() if r.joined_at else None,
            "left_at": r.left_at.isoformat() if r.left_at else None,
            "source": r.source.value,
        }
        for r in rows
    ]


async def attendance_correct(
    session: AsyncSession,
    *,
    admin: User,
    booking_id: uuid.UUID,
    tutor_minutes: int,
    student_minutes: int,
    reason: str,
    now: datetime | None = None,
) -> LessonOutcome | None:
    """An admin replaces the recorded attendance by minutes present from the start, with an audit
    record, and the lesson is decided again (settled when the booking is still confirmed)."""
    from marketplace.audit import audit_reason

    now = _now(now)
    if admin.role != Role.admin:
        raise Forbidden(_("Only admins can correct attendance."))
    reason = audit_reason(reason)
    booking = await session.get(Booking, booking_id, with_for_update=True)
    if booking is None:
        raise NotFound(_("We could not find this lesson."))
    length = booking.duration_minutes
    for value in (tutor_minutes, student_minutes):
        if not 0 <= value <= length:
            message = _("Enter minutes between 0 and %(max)d.", max=length)
            raise ValidationFailed(message, errors={"minutes": message})
    if booking.status != BookingStatus.confirmed:
        raise Conflict(_("This lesson is already settled; attendance can no longer change its outcome."))
    if now < booking.starts_at:
        raise Conflict(_("A lesson's attendance can be corrected only after it started."))
    rows = list(
        (
            await session.execute(
                select(AttendanceSession).where(
                    AttendanceSession.booking_id == booking_id, AttendanceSession.voided_at.is_(None)
                )
            )
        ).scalars()
    )
    before = {"attendance": _attendance_snapshot(rows)}
    for row in rows:
        row.voided_at = now
    added = []
    for user_id, minutes in ((booking.tutor_id, tutor_minutes), (booking.student_id, student_minutes)):
        if minutes:
            row = AttendanceSession(
                booking_id=booking_id,
                user_id=user_id,
                participant_sid=f"admin-{uuid.uuid4().hex}",
                joined_at=booking.starts_at,
                left_at=booking.starts_at + timedelta(minutes=minutes),
                source=AttendanceSource.admin,
            )
            session.add(row)
            added.append(row)
    await session.flush()
    outcome = await lesson_decide(session, booking_id=booking_id, now=max(now, booking.ends_at), actor=admin)
    await audit_record(
        session,
        actor_id=admin.id,
        action="lesson.attendance_correct",
        target_type="booking",
        target_id=booking_id,
        before=before,
        after={
            "attendance": _attendance_snapshot(added),
            "outcome": outcome.outcome.value if outcome else None,
            "status": booking.status.value,
        },
        reason=reason,
    )
    return outcome


# ---- without video: both confirm -------------------------------------------------------------


async def lesson_confirm_took_place(
    session: AsyncSession, *, viewer: User, booking_id: uuid.UUID, now: datetime | None = None
) -> tuple[bool, bool]:
    """Without video, each side says the lesson took place; with both, the lesson is completed.
    Returns (this viewer confirmed, the lesson is completed)."""
    now = _now(now)
    if livekit.configured():
        raise Conflict(_("Attendance comes from the lesson room on this site."))
    access = await lesson_access(session, viewer=viewer, booking_id=booking_id)
    booking = access.booking
    if booking.status == BookingStatus.completed:
        return True, True
    if booking.status != BookingStatus.confirmed:
        raise Conflict(_("Only a confirmed lesson can be confirmed as held."))
    if now < booking.starts_at:
        raise Conflict(_("You can confirm the lesson once it has started."))
    exists_row = (
        await session.execute(
            select(LessonConfirmation.id).where(
                LessonConfirmation.booking_id == booking.id, LessonConfirmation.user_id == viewer.id
            )
        )
    ).first()
    if exists_row is None:
        session.add(LessonConfirmation(booking_id=booking.id, user_id=viewer.id))
        await session.flush()
    confirmed = set(
        (
            await session.execute(select(LessonConfirmation.user_id).where(LessonConfirmation.booking_id == booking.id))
        ).scalars()
    )
    if {booking.tutor_id, booking.student_id} <= confirmed:
        await session.refresh(booking, with_for_update=True)
        if booking.status == BookingStatus.confirmed:
            session.add(LessonOutcome(booking_id=booking.id, outcome=Outcome.confirmed_by_both, settled=True))
            await booking_complete(session, booking_id=booking.id, at=now)
        return True, True
    return True, False


async def confirmations(session: AsyncSession, *, booking_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        (
            await session.execute(select(LessonConfirmation.user_id).where(LessonConfirmation.booking_id == booking_id))
        ).scalars()
    )


async def outcome_for(session: AsyncSession, *, booking_id: uuid.UUID) -> LessonOutcome | None:
    return (
        await session.execute(select(LessonOutcome).where(LessonOutcome.booking_id == booking_id))
    ).scalar_one_or_none()


async def attendance_rows(session: AsyncSession, *, booking_id: uuid.UUID) -> list[AttendanceSession]:
    return list(
        (
            await session.execute(
                select(AttendanceSession)
                .where(AttendanceSession.booking_id == booking_id)
                .order_by(AttendanceSession.joined_at)
            )
        ).scalars()
    )


# ---- notes and homework ----------------------------------------------------------------------


def _check_markdown(value: str, field: str) -> str:
    from marketplace.tutors.text import TextError

    text = (value or "").replace("\r\n", "\n").strip()
    if len(text) > NOTES_MAX:
        message = _("At most %(max)d characters, please.", max=NOTES_MAX)
        raise ValidationFailed(message, errors={field: message})
    try:
        render_markdown(text)
    except TextError as exc:
        message = _("Check this field.")
        raise ValidationFailed(message, errors={field: message}) from exc
    return text


def render_markdown(text: str):
    """Notes are rendered with the tutors' sanitised Markdown subset (nh3 allowlist)."""
    from markupsafe import Markup

    from marketplace.tutors import text as profile_text

    if not text.strip():
        return Markup("")
    if len(text) <= profile_text.MAX_BIO_LENGTH:
        return profile_text.render_bio(text)
    # Longer than a bio: render in paragraphs-sized chunks through the same sanitiser.
    parts = [profile_text.render_bio(chunk) for chunk in _chunks(text, profile_text.MAX_BIO_LENGTH)]
    return Markup("\n").join(parts)


def _chunks(text: str, size: int) -> list[str]:
    out, current = [], ""
    for para in text.split("\n\n"):
        while len(para) > size:
            out.append(para[:size])
            para = para[size:]
        if len(current) + len(para) + 2 > size and current:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    if current:
        out.append(current)
    return out


async def note_for_booking(session: AsyncSession, *, booking_id: uuid.UUID) -> LessonNote | None:
    return (await session.execute(select(LessonNote).where(LessonNote.booking_id == booking_id))).scalar_one_or_none()


async def note_attachments(session: AsyncSession, *, note_id: uuid.UUID) -> list[NoteAttachment]:
    return list(
        (
            await session.execute(
                select(NoteAttachment).where(NoteAttachment.note_id == note_id).order_by(NoteAttachment.created_at)
            )
        ).scalars()
    )


def notes_open(booking: Booking, now: datetime) -> bool:
    return booking.status in NOTE_STATUSES and now >= booking.starts_at


async def note_save(
    session: AsyncSession,
    *,
    tutor: User,
    booking_id: uuid.UUID,
    notes: str,
    homework: str,
    now: datetime | None = None,
) -> LessonNote:
    """The tutor writes (or edits) the lesson's notes and homework once the lesson has started.
    The student is mailed the first time there is something to read."""
    now = _now(now)
    access = await lesson_access(session, viewer=tutor, booking_id=booking_id)
    if access.role != "tutor":
        raise Forbidden(_("Only the tutor writes the lesson notes."))
    booking = access.booking
    if not notes_open(booking, now):
        raise Conflict(_("Notes can be written once the lesson has started."))
    errors: dict[str, str] = {}
    values = {}
    for field, value in (("notes", notes), ("homework", homework)):
        try:
            values[field] = _check_markdown(value, field)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationFailed(_("Please check the notes."), errors=errors)
    note = await note_for_booking(session, booking_id=booking_id)
    if note is None:
        note = LessonNote(
            booking_id=booking.id, tutor_id=booking.tutor_id, student_id=booking.student_id, lesson_at=booking.starts_at
        )
        session.add(note)
    note.notes, note.homework = values["notes"], values["homework"]
    await session.flush()
    if note.student_notified_at is None and (note.notes or note.homework):
        await _mail_notes(session, note=note, tutor=tutor, student=access.other)
        note.student_notified_at = now
    return note


async def _mail_notes(session: AsyncSession, *, note: LessonNote, tutor: User, student: User) -> None:
    from marketplace.i18n import format_datetime, use_locale
    from marketplace.mail import mail_queue

    url = f"{get_settings().base_url.rstrip('/')}/lessons/{note.booking_id}/notes"
    with use_locale(student.locale, student.timezone):
        subject = _("%(name)s wrote notes for your lesson", name=tutor.display_name)
        body = "\n\n".join(
            [
                _(
                    "%(name)s wrote notes and homework for your lesson on %(when)s.",
                    name=tutor.display_name,
                    when=format_datetime(note.lesson_at),
                ),
                _("Read them here: %(url)s", url=url),
            ]
        )
    await mail_queue(session, to=student.email, subject=subject, body=body)


async def note_attach(
    session: AsyncSession, *, tutor: User, booking_id: uuid.UUID, checked, now: datetime | None = None
) -> NoteAttachment:
    """Attach a checked file (``lessons.attachments.CheckedFile``) to the lesson's notes."""
    from lessons.attachments import MAX_FILES_PER_NOTE

    now = _now(now)
    note = await note_save_if_missing(session, tutor=tutor, booking_id=booking_id, now=now)
    count = len(await note_attachments(session, note_id=note.id))
    if count >= MAX_FILES_PER_NOTE:
        raise Conflict(_("At most %(max)d files per lesson.", max=MAX_FILES_PER_NOTE))
    row = NoteAttachment(
        note_id=note.id,
        filename=checked.filename,
        content_type=checked.content_type,
        size=checked.size,
        sha256=checked.sha256,
    )
    session.add(row)
    await session.flush()
    return row


async def note_save_if_missing(
    session: AsyncSession, *, tutor: User, booking_id: uuid.UUID, now: datetime
) -> LessonNote:
    note = await note_for_booking(session, booking_id=booking_id)
    access = await lesson_access(session, viewer=tutor, booking_id=booking_id)
    if access.role != "tutor":
        raise Forbidden(_("Only the tutor writes the lesson notes."))
    if not notes_open(access.booking, now):
        raise Conflict(_("Notes can be written once the lesson has started."))
    if note is None:
        b = access.booking
        note = LessonNote(booking_id=b.id, tutor_id=b.tutor_id, student_id=b.student_id, lesson_at=b.starts_at)
        session.add(note)
        await session.flush()
    return note


async def attachment_remove(
    session: AsyncSession, *, tutor: User, booking_id: uuid.UUID, attachment_id: uuid.UUID
) -> None:
    access = await lesson_access(session, viewer=tutor, booking_id=booking_id)
    if access.role != "tutor":
        raise Forbidden(_("Only the tutor writes the lesson notes."))
    note = await note_for_booking(session, booking_id=booking_id)
    row = await session.get(NoteAttachment, attachment_id)
    if note is None or row is None or row.note_id != note.id:
        raise NotFound(_("We could not find this file."))
    await session.delete(row)


@dataclass
class PracticeItem:
    note: LessonNote
    tutor: User
    attachments: list[NoteAttachment]


async def practice_history(session: AsyncSession, *, student: User, limit: int = 100) -> list[PracticeItem]:
    """The student's lesson notes and homework over time, newest first (two queries + one)."""
    notes = list(
        (
            await session.execute(
                select(LessonNote)
                .where(LessonNote.student_id == student.id, or_(LessonNote.notes != "", LessonNote.homework != ""))
                .order_by(LessonNote.lesson_at.desc())
                .limit(limit)
            )
        ).scalars()
    )
    if not notes:
        return []
    tutors = {
        u.id: u for u in (await session.execute(select(User).where(User.id.in_({n.tutor_id for n in notes})))).scalars()
    }
    files: dict[uuid.UUID, list[NoteAttachment]] = {}
    for row in (
        await session.execute(
            select(NoteAttachment)
            .where(NoteAttachment.note_id.in_([n.id for n in notes]))
            .order_by(NoteAttachment.created_at)
        )
    ).scalars():
        files.setdefault(row.note_id, []).append(row)
    return [PracticeItem(note=n, tutor=tutors[n.tutor_id], attachments=files.get(n.id, [])) for n in notes]


# ---- recording -------------------------------------------------------------------------------


async def consents(session: AsyncSession, *, booking_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        (
            await session.execute(select(RecordingConsent.user_id).where(RecordingConsent.booking_id == booking_id))
        ).scalars()
    )


async def recording_consent(
    session: AsyncSession, *, viewer: User, booking_id: uuid.UUID, agree: bool, now: datetime | None = None
) -> set[uuid.UUID]:
    """Agree (or withdraw) before joining that this lesson may be recorded. Recording starts only
    when both agreed; a withdrawal after it started does not stop it (asked before joining)."""
    now = _now(now)
    if not livekit.recording_configured():
        raise Conflict(_("Recording is not available on this site."))
    access = await lesson_access(session, viewer=viewer, booking_id=booking_id)
    if access.booking.status != BookingStatus.confirmed or now >= access.booking.ends_at:
        raise Conflict(_("Recording can be agreed only before the lesson."))
    row = (
        await session.execute(
            select(RecordingConsent).where(
                RecordingConsent.booking_id == booking_id, RecordingConsent.user_id == viewer.id
            )
        )
    ).scalar_one_or_none()
    if agree and row is None:
        session.add(RecordingConsent(booking_id=booking_id, user_id=viewer.id))
    elif not agree and row is not None:
        await session.delete(row)
    await session.flush()
    return await consents(session, booking_id=booking_id)


async def _maybe_start_recording(session: AsyncSession, booking: Booking) -> None:
    """Both consented and both have joined: ask for the egress (after commit, by a job)."""
    if not livekit.recording_configured():
        return
    agreed = await consents(session, booking_id=booking.id)
    if not {booking.tutor_id, booking.student_id} <= agreed:
        return
    present = set(
        (
            await session.execute(
                select(AttendanceSession.user_id).where(
                    AttendanceSession.booking_id == booking.id, AttendanceSession.voided_at.is_(None)
                )
            )
        ).scalars()
    )
    if not {booking.tutor_id, booking.student_id} <= present:
        return
    already = (await session.execute(select(Recording.id).where(Recording.booking_id == booking.id))).first()
    if already is not None:
        return
    from lessons.jobs import lessons_recording_start

    booking_id = str(booking.id)
    after_commit(session, lambda: lessons_recording_start.send(booking_id))


async def recording_start(session: AsyncSession, *, booking_id: uuid.UUID) -> Recording | None:
    """Start the room-composite egress once per lesson (the job's body)."""
    booking = await session.get(Booking, booking_id, with_for_update=True)
    room = await room_for_booking(session, booking_id)
    if booking is None or room is None or booking.status != BookingStatus.confirmed:
        return None
    if not livekit.recording_configured():
        return None
    existing = (await session.execute(select(Recording).where(Recording.booking_id == booking_id))).scalar_one_or_none()
    if existing is not None:
        return existing
    agreed = await consents(session, booking_id=booking_id)
    if not {booking.tutor_id, booking.student_id} <= agreed:
        return None
    filepath = f"lessons/{booking.id}/{room.name}-{{time}}.mp4"
    async with livekit.LiveKitServer() as server:
        egress_id = await server.start_recording(room=room.name, filepath=filepath)
    row = Recording(booking_id=booking_id, egress_id=egress_id, status=RecordingStatus.requested)
    session.add(row)
    await session.flush()
    return row


_EGRESS_STATUS = {
    0: RecordingStatus.requested,
    1: RecordingStatus.active,
    2: RecordingStatus.active,
    3: RecordingStatus.complete,
    4: RecordingStatus.failed,
    5: RecordingStatus.failed,
    6: RecordingStatus.complete,
}


async def _egress_event(session: AsyncSession, booking: Booking, info, now: datetime) -> None:
    if not info.egress_id:
        return
    row = (await session.execute(select(Recording).where(Recording.egress_id == info.egress_id))).scalar_one_or_none()
    if row is None:
        row = Recording(booking_id=booking.id, egress_id=info.egress_id, status=RecordingStatus.requested)
        session.add(row)
    if row.status == RecordingStatus.deleted:
        return
    status = _EGRESS_STATUS.get(int(info.status), RecordingStatus.active)
    # Never go back from a final state (events may arrive out of order).
    if row.status in (RecordingStatus.complete, RecordingStatus.failed) and status not in (
        RecordingStatus.complete,
        RecordingStatus.failed,
    ):
        return
    row.status = status
    if info.error:
        row.error = info.error[:500]
    results = list(info.file_results) or ([info.file] if info.HasField("file") else [])
    if results:
        f = results[0]
        row.filename = f.filename[:500]
        row.location = f.location[:1000]
        row.size = int(f.size)
        row.duration_seconds = int(f.duration // 1_000_000_000)
    if status in (RecordingStatus.complete, RecordingStatus.failed) and row.ended_at is None:
        row.ended_at = _ts(int(info.ended_at // 1_000_000_000)) or now
        row.expires_at = row.ended_at + timedelta(days=get_settings().recording_retention_days)


async def recordings_for(session: AsyncSession, *, booking_id: uuid.UUID) -> list[Recording]:
    return list(
        (
            await session.execute(
                select(Recording)
                .where(Recording.booking_id == booking_id, Recording.status != RecordingStatus.deleted)
                .order_by(Recording.created_at)
            )
        ).scalars()
    )


async def recordings_expired(session: AsyncSession, *, now: datetime | None = None) -> list[Recording]:
    now = _now(now)
    return list(
        (
            await session.execute(
                select(Recording).where(
                    Recording.status != RecordingStatus.deleted,
                    and_(Recording.expires_at.is_not(None), Recording.expires_at <= now),
                )
            )
        ).scalars()
    )


from lessons import jobs as _jobs  # noqa: E402, F401 - declares the lesson actors and periodic jobs
