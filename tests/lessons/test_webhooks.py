"""Webhooks with real signatures into attendance and the settlement; forged, tampered, replayed
and unknown-room deliveries refused with nothing applied; reconcile and the decision job.

The endpoint stores the verified event and answers "accepted"; a job applies it (``applied``
drains the in-process worker before the tests look at attendance)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from lessons.models import AttendanceSession, LessonOutcome, WebhookEvent
from marketplace.db import session_factory, transaction
from tests.lessons.conftest import API_KEY, booking_status, event_body, make_lesson, room_name, sign_webhook


async def deliver(client, body: str, auth: str | None = "sign"):
    headers = {"content-type": "application/webhook+json"}
    if auth == "sign":
        headers["authorization"] = sign_webhook(body)
    elif auth is not None:
        headers["authorization"] = auth
    return await client.post("/webhooks/livekit", content=body.encode(), headers=headers)


async def applied() -> None:
    """Wait until the jobs that apply stored events have run."""
    from marketplace import jobs

    await asyncio.to_thread(jobs.in_process_worker.drain)


async def count(model) -> int:
    async with session_factory()() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def decide_now(booking_id, now):
    from lessons.services import lesson_decide

    async with transaction() as session:
        return await lesson_decide(session, booking_id=booking_id, now=now)


async def timeline(client, lesson, room, steps):
    """steps: (event, who, sid, minute)"""
    for event, who, sid, minute in steps:
        person = lesson.tutor if who == "tutor" else lesson.student
        at = lesson.starts_at + timedelta(minutes=minute)
        body = event_body(event, room=room, at=at, identity=str(person.id), sid=sid, joined_at=None)
        response = await deliver(client, body)
        assert response.status_code == 200, response.text
    await applied()


async def test_joins_and_leaves_become_attendance_and_delivered_completes(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-70), minutes=60)
    room = await room_name(lesson)
    await timeline(
        client,
        lesson,
        room,
        [
            ("participant_joined", "tutor", "PA_t1", -3),
            ("participant_joined", "student", "PA_s1", 2),
            ("participant_left", "student", "PA_s1", 20),  # network drop
            ("participant_joined", "student", "PA_s2", 21),  # reconnect, new session
            ("participant_left", "student", "PA_s2", 58),
            ("participant_left", "tutor", "PA_t1", 60),
        ],
    )
    assert await count(AttendanceSession) == 3
    # the decision waits for the window to close (15 minutes after the end)
    assert await decide_now(lesson.booking_id, lesson.ends_at + timedelta(minutes=5)) is None
    outcome = await decide_now(lesson.booking_id, lesson.ends_at + timedelta(minutes=16))
    assert outcome.outcome.value == "delivered" and outcome.settled
    assert outcome.student_seconds == (18 + 37) * 60
    assert await booking_status(lesson.booking_id) == "completed"
    # deciding again changes nothing
    again = await decide_now(lesson.booking_id, lesson.ends_at + timedelta(minutes=30))
    assert again.id == outcome.id and await count(LessonOutcome) == 1


async def test_tutor_absent_refunds_the_student(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    room = await room_name(lesson)
    await timeline(
        client,
        lesson,
        room,
        [("participant_joined", "student", "PA_s", 0), ("participant_left", "student", "PA_s", 60)],
    )
    outcome = await decide_now(lesson.booking_id, datetime.now(UTC))
    assert outcome.outcome.value == "tutor_absent"
    assert await booking_status(lesson.booking_id) == "cancelled"
    from scheduling.models import Booking

    async with session_factory()() as session:
        booking = await session.get(Booking, lesson.booking_id)
        assert booking.refund_amount == booking.price_amount and booking.cancelled_by.value == "tutor"


async def test_student_absent_is_a_no_show_that_pays_the_tutor(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    room = await room_name(lesson)
    await timeline(
        client,
        lesson,
        room,
        [
            ("participant_joined", "tutor", "PA_t", 0),
            ("participant_joined", "student", "PA_s", 1),
            ("participant_left", "student", "PA_s", 10),  # left early
            ("participant_left", "tutor", "PA_t", 60),
        ],
    )
    outcome = await decide_now(lesson.booking_id, datetime.now(UTC))
    assert outcome.outcome.value == "student_absent"
    assert await booking_status(lesson.booking_id) == "no_show"


async def test_both_absent_waits_for_an_admin(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    await room_name(lesson)
    outcome = await decide_now(lesson.booking_id, datetime.now(UTC))
    assert outcome.outcome.value == "both_absent" and not outcome.settled
    assert await booking_status(lesson.booking_id) == "confirmed"


async def test_out_of_order_and_repeated_events_leave_the_same_state(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    room = await room_name(lesson)
    at = lesson.starts_at
    left = event_body(
        "participant_left",
        room=room,
        at=at + timedelta(minutes=60),
        identity=str(lesson.student.id),
        sid="PA_x",
        joined_at=at,
        event_id="EV_left",
    )
    joined = event_body(
        "participant_joined",
        room=room,
        at=at,
        identity=str(lesson.student.id),
        sid="PA_x",
        joined_at=at,
        event_id="EV_join",
    )
    assert (await deliver(client, left)).json()["status"] == "accepted"
    assert (await deliver(client, joined)).json()["status"] == "accepted"
    await applied()
    replay = await deliver(client, left)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    await applied()
    async with session_factory()() as session:
        (row,) = (await session.execute(select(AttendanceSession))).scalars()
        assert row.joined_at == at and row.left_at == at + timedelta(minutes=60)
    assert await count(WebhookEvent) == 2


async def test_forged_tampered_and_unsigned_webhooks_are_refused(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    body = event_body("participant_joined", room=room, at=datetime.now(UTC), identity=str(lesson.student.id))
    forged = sign_webhook(body, secret="another-secret-that-is-long-enough-000000")
    assert (await deliver(client, body, auth=forged)).status_code == 401
    wrong_key = sign_webhook(body, key="APIother")
    assert (await deliver(client, body, auth=wrong_key)).status_code == 401
    tampered = body.replace(str(lesson.student.id), str(lesson.tutor.id))
    assert (await deliver(client, tampered, auth=sign_webhook(body))).status_code == 401
    assert (await deliver(client, body, auth=None)).status_code == 401
    assert (await deliver(client, body, auth="not-a-jwt")).status_code == 401
    assert (await deliver(client, "{not json", auth="sign")).status_code == 401
    assert await count(WebhookEvent) == 0 and await count(AttendanceSession) == 0
    # the real signature works
    assert (await deliver(client, body)).status_code == 200
    _ = API_KEY


async def test_webhook_for_an_unknown_room_is_refused(client, video):
    body = event_body("participant_joined", room="lesson-unknown", at=datetime.now(UTC), identity="x")
    response = await deliver(client, body)
    assert response.status_code == 404 and response.json()["error"] == "unknown room"
    assert await count(WebhookEvent) == 0


async def test_webhooks_without_video_configured_are_refused(client):
    body = event_body("room_started", room="lesson-x", at=datetime.now(UTC))
    assert (await deliver(client, body, auth=sign_webhook(body))).status_code == 401


async def test_strangers_and_egress_participants_are_not_attendance(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    for identity in ("EG_recorder", "00000000-0000-0000-0000-000000000001"):
        body = event_body("participant_joined", room=room, at=datetime.now(UTC), identity=identity)
        assert (await deliver(client, body)).status_code == 200
    await applied()
    assert await count(AttendanceSession) == 0
    async with session_factory()() as session:
        assert all(e.applied_at for e in (await session.execute(select(WebhookEvent))).scalars())


async def test_concurrent_duplicate_deliveries_apply_once(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    body = event_body(
        "participant_joined", room=room, at=datetime.now(UTC), identity=str(lesson.tutor.id), event_id="EV_same"
    )
    responses = await asyncio.gather(*(deliver(client, body) for _ in range(5)))
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["status"] for r in responses) == ["accepted"] + ["duplicate"] * 4
    await applied()
    assert await count(WebhookEvent) == 1 and await count(AttendanceSession) == 1


async def test_reconcile_fills_missed_joins_and_closes_stale_sessions(client, video):
    from livekit.protocol import models as proto_models

    from lessons.services import room_reconcile

    lesson = await make_lesson(starts_in=timedelta(minutes=-30), minutes=60)
    room = await room_name(lesson)
    # the tutor's join webhook was lost; the student had a session that the server no longer has
    await timeline(client, lesson, room, [("participant_joined", "student", "PA_gone", 0)])
    video.participants[room] = [
        proto_models.ParticipantInfo(
            sid="PA_tutor", identity=str(lesson.tutor.id), joined_at=int(lesson.starts_at.timestamp())
        ),
        proto_models.ParticipantInfo(sid="EG_1", identity="EG_recorder"),
    ]
    now = lesson.starts_at + timedelta(minutes=30)
    async with transaction() as session:
        await room_reconcile(session, booking_id=lesson.booking_id, now=now)
    (request,) = video.calls("ListParticipants")
    assert request.room == room
    async with session_factory()() as session:
        rows = {r.participant_sid: r for r in (await session.execute(select(AttendanceSession))).scalars()}
    assert set(rows) == {"PA_gone", "PA_tutor"}
    assert rows["PA_tutor"].joined_at == lesson.starts_at and rows["PA_tutor"].left_at is None
    assert rows["PA_gone"].left_at == now


async def test_decision_job_reconciles_then_settles(client, video, drain_jobs):
    from lessons.jobs import lessons_decide_due

    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    room = await room_name(lesson)
    await timeline(
        client,
        lesson,
        room,
        [
            ("participant_joined", "tutor", "PA_t", 0),
            ("participant_joined", "student", "PA_s", 0),
            ("participant_left", "tutor", "PA_t", 60),
            ("participant_left", "student", "PA_s", 60),
        ],
    )
    await asyncio.to_thread(lambda: (lessons_decide_due.send(), drain_jobs()))
    assert await booking_status(lesson.booking_id) == "completed"
    assert video.calls("ListParticipants")  # asked the server before deciding


async def test_the_endpoint_stores_the_raw_event_and_a_job_or_the_decision_applies_it(client, video, monkeypatch):
    from lessons import jobs as lesson_jobs

    sent = []
    monkeypatch.setattr(
        lesson_jobs.lessons_webhooks_apply, "send_with_options", lambda args, delay: sent.append((*args, delay))
    )
    lesson = await make_lesson(starts_in=timedelta(minutes=-80), minutes=60)
    room = await room_name(lesson)
    bodies = [
        event_body(event, room=room, at=lesson.starts_at + timedelta(minutes=minute), identity=str(who.id), sid=sid)
        for event, who, sid, minute in (
            ("participant_joined", lesson.tutor, "PA_t", 0),
            ("participant_joined", lesson.student, "PA_s", 1),
            ("participant_left", lesson.student, "PA_s", 59),
            ("participant_left", lesson.tutor, "PA_t", 60),
        )
    ]
    for body in reversed(bodies):  # out of order
        response = await deliver(client, body)
        assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert sent == [(str(lesson.booking_id), 200)]  # after commit, one (delayed) job for the burst
    async with session_factory()() as session:
        events = list((await session.execute(select(WebhookEvent))).scalars())
    assert sorted(e.payload for e in events) == sorted(bodies)
    assert {e.booking_id for e in events} == {lesson.booking_id} and not any(e.applied_at for e in events)
    assert await count(AttendanceSession) == 0  # nothing applied on the request path
    # the decision applies what no job has applied yet, once
    outcome = await decide_now(lesson.booking_id, datetime.now(UTC))
    assert outcome.outcome.value == "delivered"
    assert await count(AttendanceSession) == 2
    from lessons.services import webhooks_apply_pending

    async with transaction() as session:
        assert await webhooks_apply_pending(session, booking_id=lesson.booking_id) == 0


async def test_the_apply_job_is_idempotent_and_a_replay_is_not_applied_twice(client, video, drain_jobs):
    from lessons.jobs import lessons_webhooks_apply

    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    at = datetime.now(UTC).replace(microsecond=0)
    joined = event_body("participant_joined", room=room, at=at, identity=str(lesson.tutor.id), sid="PA_1")
    left = event_body(
        "participant_left", room=room, at=at + timedelta(minutes=1), identity=str(lesson.tutor.id), sid="PA_1"
    )
    assert (await deliver(client, joined)).json()["status"] == "accepted"
    assert (await deliver(client, left)).json()["status"] == "accepted"
    await applied()
    # a later join replayed with the same id must not reopen or move the session
    assert (await deliver(client, joined)).json()["status"] == "duplicate"
    await asyncio.to_thread(lambda: (lessons_webhooks_apply.send(str(lesson.booking_id)), drain_jobs()))
    async with session_factory()() as session:
        (row,) = (await session.execute(select(AttendanceSession))).scalars()
    assert row.joined_at == at and row.left_at == at + timedelta(minutes=1)
    assert await count(WebhookEvent) == 2


# ---- the request path: group commit, the write gate, bad input ---------------------------------


def _verified(body: str):
    from lessons import livekit

    return livekit.verify_webhook(body.encode(), sign_webhook(body))


async def test_concurrent_deliveries_share_a_transaction_and_each_gets_its_own_answer(video, monkeypatch):
    from lessons import services

    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    batches: list[int] = []
    store = services.webhooks_store

    async def counting(session, items, **kw):
        batches.append(len(items))
        return await store(session, items, **kw)

    monkeypatch.setattr(services, "webhooks_store", counting)
    now = datetime.now(UTC)
    fresh = [
        event_body("participant_joined", room=room, at=now, identity=str(lesson.student.id), sid=f"PA_{i}")
        for i in range(20)
    ]
    replayed = event_body("participant_left", room=room, at=now, identity=str(lesson.tutor.id), event_id="EV_twice")
    unknown = event_body("participant_joined", room="lesson-nobody", at=now, identity=str(lesson.tutor.id))
    roomless = json.dumps({"event": "egress_updated", "id": "EV_noroom", "createdAt": str(int(now.timestamp()))})
    bodies = [*fresh, replayed, replayed, unknown, roomless]
    results = await asyncio.gather(*(services.webhook_receive(_verified(b), b) for b in bodies))
    statuses = [r.status for r in results]
    assert statuses[:20] == ["accepted"] * 20
    assert sorted(statuses[20:22]) == ["accepted", "duplicate"]
    assert statuses[22:] == ["unknown_room", "ignored"]
    assert {r.booking_id for r in results[:22]} == {lesson.booking_id}
    assert sum(batches) == len(bodies) and len(batches) <= 2  # one transaction (the first may go alone)
    assert await count(WebhookEvent) == 21
    # a replay later is recognised by its id, also when it comes again in a batch of its own
    again = await services.webhook_receive(_verified(replayed), replayed)
    assert again.status == "duplicate" and await count(WebhookEvent) == 21
    async with session_factory()() as session:
        rows = list((await session.execute(select(WebhookEvent))).scalars())
    assert sorted(r.payload for r in rows) == sorted({*fresh, replayed})
    assert all(r.booking_id == lesson.booking_id and r.room_name == room and r.applied_at is None for r in rows)


async def test_a_batch_that_fails_is_stored_one_by_one(video, monkeypatch):
    from lessons import services

    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    store = services.webhooks_store
    calls: list[int] = []

    async def flaky(session, items, **kw):
        calls.append(len(items))
        if len(items) > 1:
            raise RuntimeError("simulated failure of the batch")
        return await store(session, items, **kw)

    monkeypatch.setattr(services, "webhooks_store", flaky)
    now = datetime.now(UTC)
    bodies = [event_body("participant_joined", room=room, at=now, identity=str(lesson.tutor.id)) for _ in range(5)]
    results = await asyncio.gather(*(services.webhook_receive(_verified(b), b) for b in bodies))
    assert [r.status for r in results] == ["accepted"] * 5
    assert any(n > 1 for n in calls) and await count(WebhookEvent) == 5


async def test_an_event_without_an_id_is_refused_with_a_clear_answer(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-10))
    room = await room_name(lesson)
    body = event_body("participant_joined", room=room, at=datetime.now(UTC), identity=str(lesson.tutor.id))
    body = body.replace(json.loads(body)["id"], "")
    response = await deliver(client, body)
    assert response.status_code == 422 and "The event has no id." in response.text
    assert await count(WebhookEvent) == 0


def test_the_write_gate_lets_one_writer_in_at_a_time_on_sqlite():
    import threading
    import time

    from marketplace.settings import get_settings
    from marketplace.sqlite_gate import sqlite_write_gate

    if not get_settings().database_url.startswith("sqlite"):
        assert sqlite_write_gate._path() is None  # PostgreSQL: no gate, the inserts run concurrently
        return
    assert sqlite_write_gate._path().endswith(".write-gate")
    spans: list[tuple[float, float]] = []

    async def hold() -> None:
        async with sqlite_write_gate.hold():
            start = time.monotonic()
            await asyncio.sleep(0.05)
            spans.append((start, time.monotonic()))

    async def in_one_loop() -> None:
        await asyncio.gather(hold(), hold())

    # two event loops in two threads (as the web process and the in-process job worker) and two
    # holders in each: the file lock separates the loops, the asyncio lock the holders of one loop
    threads = [threading.Thread(target=lambda: asyncio.run(in_one_loop())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    spans.sort()
    assert len(spans) == 4
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
