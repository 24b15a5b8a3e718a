"""Lesson jobs (idempotent): apply stored LiveKit events, prepare a room, reconcile rooms with the
server, decide lessons whose room window closed, start a recording, delete recordings after their
retention period."""

from __future__ import annotations

import asyncio
import logging
import uuid

from marketplace import jobs, periodic
from marketplace.db import transaction
from marketplace.settings import get_settings

log = logging.getLogger(__name__)

#: Stored webhook events applied per transaction by ``lessons_webhooks_apply`` (on SQLite, where
#: the write lock is the database's, fewer).
BATCH = 50
SQLITE_BATCH = 5


@jobs.actor(queue_name="default")
async def lessons_room_prepare(booking_id: str) -> None:
    """Create the confirmed lesson's room on the LiveKit server (retried with backoff)."""
    from lessons.services import room_create_on_server

    async with transaction() as session:
        await room_create_on_server(session, booking_id=uuid.UUID(booking_id))


@jobs.actor(queue_name="default")
async def lessons_webhooks_apply(booking_id: str) -> None:
    """Apply the lesson's stored LiveKit events (sent, delayed, after the first event of a burst is
    stored; a job that finds them applied by an earlier one does nothing)."""
    from lessons.services import webhooks_apply_pending
    from marketplace.sqlite_gate import sqlite_write_gate

    # In short transactions of at most BATCH events. On SQLite the webhook endpoint's inserts wait
    # for the write lock meanwhile: shorter ones there, taking turns with the inserts at the gate
    # (not in SQLite's busy handler), and a pause between two that lets a waiting insert in.
    sqlite = get_settings().database_url.startswith("sqlite")
    limit = SQLITE_BATCH if sqlite else BATCH
    for _ in range(10_000):
        async with sqlite_write_gate.hold(), transaction() as session:
            if await webhooks_apply_pending(session, booking_id=uuid.UUID(booking_id), limit=limit) < limit:
                return
        if sqlite:
            await asyncio.sleep(0.005)


@periodic.every(60)
@jobs.actor(queue_name="default", max_retries=0)
async def lessons_reconcile() -> None:
    """Rooms for lessons within a day are prepared; during a lesson the server's participant list
    repairs attendance that webhooks missed. Each lesson in its own transaction."""
    from lessons import livekit
    from lessons.services import lessons_to_reconcile, room_create_on_server, room_reconcile, webhooks_apply_pending

    if not livekit.configured():
        return
    async with transaction(write=False) as session:
        ids = await lessons_to_reconcile(session)
    from datetime import UTC, datetime

    from scheduling.models import Booking

    for booking_id in ids:
        try:
            async with transaction() as session:
                await webhooks_apply_pending(session, booking_id=booking_id)  # events whose job was lost
                await room_create_on_server(session, booking_id=booking_id)
                booking = await session.get(Booking, booking_id)
                if booking is not None and booking.starts_at <= datetime.now(UTC):
                    await room_reconcile(session, booking_id=booking_id)
        except Exception:  # one unreachable room must not stop the others; the next tick retries
            log.warning("reconcile of lesson %s failed", booking_id, exc_info=True)


@periodic.every(60)
@jobs.actor(queue_name="default", max_retries=0)
async def lessons_decide_due() -> None:
    """At the end of the slot (when the room window closes) decide each lesson once: reconcile
    with the server first, then settle through the booking service."""
    from lessons import livekit
    from lessons.services import lesson_decide, lessons_due, room_reconcile

    if not livekit.configured():
        return
    async with transaction(write=False) as session:
        ids = await lessons_due(session)
    for booking_id in ids:
        try:
            async with transaction() as session:
                await room_reconcile(session, booking_id=booking_id)
        except Exception:
            log.warning("reconcile before deciding lesson %s failed", booking_id, exc_info=True)
        try:
            async with transaction() as session:
                await lesson_decide(session, booking_id=booking_id)
        except Exception:
            log.exception("deciding lesson %s failed", booking_id)


@jobs.actor(queue_name="default")
async def lessons_recording_start(booking_id: str) -> None:
    from lessons.services import recording_start

    async with transaction() as session:
        await recording_start(session, booking_id=uuid.UUID(booking_id))


@periodic.every(3600)
@jobs.actor(queue_name="default", max_retries=0)
async def lessons_recordings_purge() -> None:
    """Recordings past their retention period are deleted from storage, then marked deleted."""
    from lessons import storage
    from lessons.models import RecordingStatus
    from lessons.services import recordings_expired

    async with transaction() as session:
        for row in await recordings_expired(session):
            try:
                if row.filename:
                    await storage.delete_object(row.filename)
            except Exception:
                log.warning("could not delete recording %s", row.egress_id, exc_info=True)
                continue
            row.status = RecordingStatus.deleted
            row.location = ""
