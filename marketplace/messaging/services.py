"""Messaging: threads between a student and a tutor, messages, read markers and batched mail.

- A thread belongs to one (student, tutor) pair; the unique constraint on the pair is the guard
  against two threads for the same pair.
- Contact details are masked (see :mod:`marketplace.messaging.masking`) until the pair has a paid
  lesson; the stored text is never changed, so they appear once a lesson is paid.
- New messages are mailed in batches: the first unread message of a batch schedules one delayed
  job; the job mails everything the recipient has neither read nor been told about yet.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.db import after_commit, utcnow
from marketplace.errors import Forbidden, NotFound, TooManyRequests, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.i18n import ngettext, use_locale
from marketplace.mail import OutboxMessage, mail_queue
from marketplace.messaging.masking import mask_contact_details
from marketplace.messaging.models import Message, Thread
from marketplace.ports import lesson_facts
from marketplace.settings import get_settings

BODY_MAX = 4000
# (window, most messages one user may send in it)
RATE_LIMITS: tuple[tuple[timedelta, int], ...] = ((timedelta(minutes=1), 10), (timedelta(days=1), 200))
# How long new messages collect before the recipient is mailed about them.
NOTIFY_DELAY = timedelta(minutes=10)
# A batch older than this whose mail never went out (a lost job) is scheduled again by the next message.
NOTIFY_STALE = timedelta(hours=1)
THREAD_PAGE = 200
INBOX_PAGE = 100
MAIL_PREVIEW_MESSAGES = 10
MAIL_PREVIEW_CHARS = 500


def masked_placeholder() -> str:
    return _("[contact details hidden until your first paid lesson]")


# ---- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageView:
    id: uuid.UUID
    body: str
    created_at: datetime
    mine: bool
    sender_name: str


@dataclass(frozen=True)
class ThreadView:
    thread: Thread
    viewer: User
    other: User
    messages: list[MessageView]
    masked: bool
    has_more: bool


@dataclass(frozen=True)
class ThreadSummary:
    thread: Thread
    other: User
    unread: int


# ---- helpers -------------------------------------------------------------------------------


def _is_student(thread: Thread, user_id: uuid.UUID) -> bool:
    return thread.student_id == user_id


def _other_id(thread: Thread, user_id: uuid.UUID) -> uuid.UUID:
    return thread.tutor_id if _is_student(thread, user_id) else thread.student_id


def _read_at(thread: Thread, user_id: uuid.UUID) -> datetime | None:
    return thread.student_read_at if _is_student(thread, user_id) else thread.tutor_read_at


def _notified_at(thread: Thread, user_id: uuid.UUID) -> datetime | None:
    return thread.student_notified_at if _is_student(thread, user_id) else thread.tutor_notified_at


def _later(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


async def _thread_for(session: AsyncSession, *, user: User, thread_id: uuid.UUID, lock: bool = False) -> Thread:
    """The thread if ``user`` takes part in it; 404 otherwise (outsiders learn nothing)."""
    stmt = select(Thread).where(Thread.id == thread_id)
    if lock:
        stmt = stmt.with_for_update()
    thread = (await session.execute(stmt)).scalar_one_or_none()
    if thread is None or user.id not in (thread.student_id, thread.tutor_id):
        raise NotFound(_("We could not find this conversation."))
    return thread


async def thread_get(session: AsyncSession, *, viewer: User, thread_id: uuid.UUID) -> Thread:
    """The thread if ``viewer`` takes part in it, else 404."""
    return await _thread_for(session, user=viewer, thread_id=thread_id)


async def contact_details_visible(session: AsyncSession, *, thread: Thread) -> bool:
    return await lesson_facts().has_paid_lesson(session, student_id=thread.student_id, tutor_id=thread.tutor_id)


# ---- threads -------------------------------------------------------------------------------


async def thread_start(session: AsyncSession, *, student: User, tutor_user_id: uuid.UUID) -> Thread:
    """The thread between ``student`` and the tutor, created on first contact."""
    if student.id == tutor_user_id:
        raise ValidationFailed(_("You cannot send messages to yourself."))
    tutor = await session.get(User, tutor_user_id)
    if tutor is None or tutor.banned_at is not None:
        raise NotFound(_("We could not find this tutor."))
    if tutor.role != Role.tutor:
        raise ValidationFailed(_("You can only start a conversation with a tutor."))
    existing = select(Thread).where(Thread.student_id == student.id, Thread.tutor_id == tutor.id)
    thread = (await session.execute(existing)).scalar_one_or_none()
    if thread is not None:
        return thread
    thread = Thread(student_id=student.id, tutor_id=tutor.id)
    try:
        async with session.begin_nested():
            session.add(thread)
    except IntegrityError:
        # Someone else (a double click, another tab) created it first: use theirs.
        return (await session.execute(existing)).scalar_one()
    return thread


async def threads_for_user(session: AsyncSession, *, user: User, limit: int = INBOX_PAGE) -> list[ThreadSummary]:
    """The user's threads, most recent first, with the other person and the unread count (one query)."""
    as_student = Thread.student_id == user.id
    other_id = case((as_student, Thread.tutor_id), else_=Thread.student_id)
    read_at = case((as_student, Thread.student_read_at), else_=Thread.tutor_read_at)
    unread = (
        select(func.count(Message.id))
        .where(
            Message.thread_id == Thread.id,
            Message.sender_id != user.id,
            Message.hidden_at.is_(None),
            or_(read_at.is_(None), Message.created_at > read_at),
        )
        .correlate(Thread)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Thread, User, unread)
        .join(User, User.id == other_id)
        .where(or_(as_student, Thread.tutor_id == user.id))
        .order_by(Thread.last_message_at.desc().nulls_last(), Thread.created_at.desc())
        .limit(limit)
    )
    return [ThreadSummary(thread=t, other=o, unread=int(n or 0)) for t, o, n in rows.all()]


async def unread_total(session: AsyncSession, *, user: User) -> int:
    """How many messages sent to ``user`` they have not read yet, over all threads (one query)."""
    as_student = Thread.student_id == user.id
    read_at = case((as_student, Thread.student_read_at), else_=Thread.tutor_read_at)
    count = await session.execute(
        select(func.count(Message.id))
        .join(Thread, Thread.id == Message.thread_id)
        .where(
            or_(as_student, Thread.tutor_id == user.id),
            Message.sender_id != user.id,
            Message.hidden_at.is_(None),
            or_(read_at.is_(None), Message.created_at > read_at),
        )
    )
    return int(count.scalar_one())


async def thread_messages(
    session: AsyncSession, *, viewer: User, thread_id: uuid.UUID, limit: int = THREAD_PAGE, mark_read: bool = True
) -> ThreadView:
    """The latest ``limit`` messages of a thread, oldest first, masked as the pair's lessons allow.

    Marks them read for the viewer.
    """
    thread = await _thread_for(session, user=viewer, thread_id=thread_id)
    other = await session.get(User, _other_id(thread, viewer.id))
    rows = await session.execute(
        select(Message)
        .where(Message.thread_id == thread.id, Message.hidden_at.is_(None))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit + 1)
    )
    latest = list(rows.scalars())
    has_more = len(latest) > limit
    messages = list(reversed(latest[:limit]))
    masked = not await contact_details_visible(session, thread=thread)
    placeholder = masked_placeholder()
    names = {viewer.id: viewer.display_name, other.id: other.display_name}
    views = [
        MessageView(
            id=m.id,
            body=mask_contact_details(m.body, placeholder) if masked else m.body,
            created_at=m.created_at,
            mine=m.sender_id == viewer.id,
            sender_name=names.get(m.sender_id, ""),
        )
        for m in messages
    ]
    if mark_read and messages:
        newest = messages[-1].created_at
        if _is_student(thread, viewer.id):
            if thread.student_read_at is None or thread.student_read_at < newest:
                thread.student_read_at = newest
        elif thread.tutor_read_at is None or thread.tutor_read_at < newest:
            thread.tutor_read_at = newest
    return ThreadView(thread=thread, viewer=viewer, other=other, messages=views, masked=masked, has_more=has_more)


# ---- sending -------------------------------------------------------------------------------


def clean_body(body: str | None) -> str:
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not text:
        raise ValidationFailed(_("Write a message first."), errors={"body": _("Write a message first.")})
    if len(text) > BODY_MAX:
        message = _("A message can have at most %(max)d characters.", max=BODY_MAX)
        raise ValidationFailed(message, errors={"body": message})
    return text


async def _check_rate(session: AsyncSession, *, sender: User) -> None:
    """At most N messages per window and user, counted in the database (works across processes)."""
    now = utcnow()
    longest = max(window for window, _limit in RATE_LIMITS)
    mine = select(Thread.id).where(or_(Thread.student_id == sender.id, Thread.tutor_id == sender.id))
    columns = []
    for window, _limit in RATE_LIMITS:
        inside = Message.created_at > now - window
        columns += [func.count(case((inside, Message.id))), func.min(case((inside, Message.created_at)))]
    row = (
        await session.execute(
            select(*columns).where(
                Message.thread_id.in_(mine), Message.sender_id == sender.id, Message.created_at > now - longest
            )
        )
    ).one()
    waits = []
    for index, (window, limit) in enumerate(RATE_LIMITS):
        count, oldest = row[2 * index], row[2 * index + 1]
        if count >= limit and oldest is not None:
            waits.append(max(1, math.ceil((oldest + window - now).total_seconds())))
    if waits:
        wait = max(waits)
        raise TooManyRequests(
            ngettext(
                "You are sending messages too quickly. Please wait %(num)d second and try again.",
                "You are sending messages too quickly. Please wait %(num)d seconds and try again.",
                wait,
            ),
            retry_after=wait,
        )


async def message_send(session: AsyncSession, *, sender: User, thread_id: uuid.UUID, body: str) -> Message:
    """Add a message to a thread the sender takes part in; the recipient is mailed later, in a batch."""
    text = clean_body(body)
    thread = await _thread_for(session, user=sender, thread_id=thread_id, lock=True)
    recipient = await session.get(User, _other_id(thread, sender.id))
    if recipient is None or recipient.banned_at is not None:
        raise Forbidden(_("This person can no longer receive messages."))
    await _check_rate(session, sender=sender)
    now = utcnow()
    # Is a mail about earlier messages already on its way? Then this one joins that batch.
    since = _later(_read_at(thread, recipient.id), _notified_at(thread, recipient.id))
    pending = select(func.min(Message.created_at)).where(
        Message.thread_id == thread.id, Message.sender_id == sender.id, Message.hidden_at.is_(None)
    )
    if since is not None:
        pending = pending.where(Message.created_at > since)
    oldest_pending = (await session.execute(pending)).scalar_one()
    message = Message(thread_id=thread.id, sender_id=sender.id, body=text, created_at=now, updated_at=now)
    session.add(message)
    thread.last_message_at = now
    if sender.id == thread.student_id:
        thread.student_read_at = _later(thread.student_read_at, now)
    else:
        thread.tutor_read_at = _later(thread.tutor_read_at, now)
    await session.flush()
    if oldest_pending is None or oldest_pending < now - NOTIFY_STALE:
        _schedule_notify(session, thread_id=thread.id, recipient_id=recipient.id)
    return message


def _schedule_notify(session: AsyncSession, *, thread_id: uuid.UUID, recipient_id: uuid.UUID) -> None:
    from marketplace.messaging.jobs import messaging_notify

    delay_ms = int(NOTIFY_DELAY.total_seconds() * 1000)
    args = (str(thread_id), str(recipient_id))
    after_commit(session, lambda: messaging_notify.send_with_options(args=args, delay=delay_ms or None))


# ---- batched mail --------------------------------------------------------------------------


def thread_url(thread_id: uuid.UUID) -> str:
    return f"{get_settings().base_url}/messages/{thread_id}"


async def thread_notify(
    session: AsyncSession, *, thread_id: uuid.UUID, recipient_id: uuid.UUID
) -> OutboxMessage | None:
    """Mail ``recipient`` one summary of the messages they have neither read nor been told about.

    Sends nothing when there is nothing new (idempotent: running it twice mails once).
    """
    thread = (
        await session.execute(select(Thread).where(Thread.id == thread_id).with_for_update())
    ).scalar_one_or_none()
    if thread is None or recipient_id not in (thread.student_id, thread.tutor_id):
        return None
    recipient = await session.get(User, recipient_id)
    sender = await session.get(User, _other_id(thread, recipient_id))
    if recipient is None or sender is None or recipient.banned_at is not None:
        return None
    since = _later(_read_at(thread, recipient_id), _notified_at(thread, recipient_id))
    query = select(Message).where(
        Message.thread_id == thread.id, Message.sender_id != recipient_id, Message.hidden_at.is_(None)
    )
    if since is not None:
        query = query.where(Message.created_at > since)
    messages = list((await session.execute(query.order_by(Message.created_at, Message.id))).scalars())
    if not messages:
        return None
    masked = not await contact_details_visible(session, thread=thread)
    with use_locale(recipient.locale, recipient.timezone):
        from marketplace.i18n import format_datetime

        placeholder = masked_placeholder()
        shown = messages[-MAIL_PREVIEW_MESSAGES:]
        parts = []
        for m in shown:
            text = mask_contact_details(m.body, placeholder) if masked else m.body
            if len(text) > MAIL_PREVIEW_CHARS:
                text = text[:MAIL_PREVIEW_CHARS].rstrip() + " […]"
            parts.append(f"{format_datetime(m.created_at, 'short')}\n{text}")
        count = len(messages)
        subject = ngettext(
            "New message from %(name)s on Cadenza",
            "%(num)d new messages from %(name)s on Cadenza",
            count,
            name=sender.display_name,
        )
        intro = ngettext(
            "Hello %(recipient)s,\n\n%(name)s sent you a message:",
            "Hello %(recipient)s,\n\n%(name)s sent you %(num)d messages:",
            count,
            recipient=recipient.display_name,
            name=sender.display_name,
        )
        more = ""
        if count > len(shown):
            more = "\n\n" + ngettext(
                "(and %(num)d earlier message)", "(and %(num)d earlier messages)", count - len(shown)
            )
        outro = _("Read and reply: %(link)s", link=thread_url(thread.id))
        body = intro + "\n\n" + "\n\n".join(parts) + more + "\n\n" + outro + "\n"
        mail = await mail_queue(session, to=recipient.email, subject=subject[:200], body=body)
    newest = messages[-1].created_at
    if _is_student(thread, recipient_id):
        thread.student_notified_at = newest
    else:
        thread.tutor_notified_at = newest
    return mail
