"""Room preparation after confirmation (job), recording consent and egress requests at the HTTP
boundary, egress webhooks storing the file, the retention job (S3 DeleteObject signed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from livekit.protocol import egress as proto_egress
from sqlalchemy import select

from lessons.models import LessonRoom, Recording
from marketplace.db import session_factory, transaction
from tests.helpers import csrf_token, log_in, log_out, post_form
from tests.lessons.conftest import event_body, make_lesson, make_user, room_name, set_env
from tests.lessons.test_webhooks import deliver

PW = "correct horse battery"


async def test_confirmation_prepares_the_room_by_a_job(client, video, drain_jobs):
    from lessons.services import _schedule_room_prepare
    from scheduling.bookings import BookingChange
    from scheduling.models import Booking

    lesson = await make_lesson(starts_in=timedelta(days=2))
    async with transaction() as session:
        booking = await session.get(Booking, lesson.booking_id)
        _schedule_room_prepare(session, booking, BookingChange.confirmed)
    await asyncio.to_thread(drain_jobs)
    async with session_factory()() as session:
        room = (await session.execute(select(LessonRoom))).scalar_one()
    assert room.created_on_server_at is not None
    (create,) = video.calls("CreateRoom")
    assert create.name == room.name and create.max_participants == 4 and create.empty_timeout == 600


async def test_reconcile_job_prepares_rooms_for_lessons_within_a_day(client, video, drain_jobs):
    from lessons.jobs import lessons_reconcile

    soon = await make_lesson(starts_in=timedelta(hours=3))
    await make_lesson(starts_in=timedelta(days=3))
    await asyncio.to_thread(lambda: (lessons_reconcile.send(), drain_jobs()))
    created = [c.name for c in video.calls("CreateRoom")]
    assert created == [await room_name(soon)]


def _recording_env(monkeypatch, video):
    set_env(
        monkeypatch,
        RECORDING_S3_BUCKET="lessons",
        RECORDING_S3_REGION="eu-central-1",
        RECORDING_S3_ENDPOINT="http://127.0.0.1:9000",
        RECORDING_S3_ACCESS_KEY="AKIDEXAMPLE",
        RECORDING_S3_SECRET="s3-secret",
    )


async def test_recording_starts_only_when_both_consented_and_joined(client, video, monkeypatch, drain_jobs):
    _recording_env(monkeypatch, video)
    lesson = await make_lesson(starts_in=timedelta(minutes=5))
    room = await room_name(lesson)
    page = f"/lessons/{lesson.booking_id}/room"
    await log_in(client, lesson.student.email, PW)
    assert "I agree to recording this lesson" in (await client.get(page)).text
    await post_form(client, f"/lessons/{lesson.booking_id}/recording", {"agree": "yes"}, page=page)
    await log_out(client)
    now = datetime.now(UTC)
    for who, sid in ((lesson.student, "PA_s"), (lesson.tutor, "PA_t")):
        await deliver(client, event_body("participant_joined", room=room, at=now, identity=str(who.id), sid=sid))
    await asyncio.to_thread(drain_jobs)
    assert video.calls("StartRoomCompositeEgress") == []  # the tutor has not agreed

    await log_in(client, lesson.tutor.email, PW)
    await post_form(client, f"/lessons/{lesson.booking_id}/recording", {"agree": "yes"}, page=page)
    await deliver(
        client, event_body("participant_joined", room=room, at=now, identity=str(lesson.tutor.id), sid="PA_t2")
    )
    await asyncio.to_thread(drain_jobs)
    (request,) = video.calls("StartRoomCompositeEgress")
    assert request.room_name == room and request.layout == "grid"
    (output,) = request.file_outputs
    assert output.file_type == proto_egress.EncodedFileType.MP4
    assert output.s3.bucket == "lessons" and output.s3.endpoint == "http://127.0.0.1:9000"
    assert output.s3.force_path_style is True and output.s3.access_key == "AKIDEXAMPLE"
    assert output.filepath.startswith(f"lessons/{lesson.booking_id}/")
    async with session_factory()() as session:
        recording = (await session.execute(select(Recording))).scalar_one()
    # egress_ended stores the file; both participants see it
    ended = event_body(
        "egress_ended",
        room=room,
        at=now,
        egress={
            "egressId": recording.egress_id,
            "roomName": room,
            "status": "EGRESS_COMPLETE",
            "endedAt": str(int(now.timestamp() * 1e9)),
            "fileResults": [
                {
                    "filename": "lessons/x/take.mp4",
                    "location": "https://s3.example/lessons/x/take.mp4",
                    "size": "1048576",
                    "duration": str(int(3000 * 1e9)),
                }
            ],
        },
    )
    assert (await deliver(client, ended)).status_code == 200
    await asyncio.to_thread(drain_jobs)
    async with session_factory()() as session:
        recording = (await session.execute(select(Recording))).scalar_one()
    assert recording.status.value == "complete" and recording.size == 1048576 and recording.duration_seconds == 3000
    assert recording.expires_at - recording.ended_at == timedelta(days=30)
    # The page links to our route (the bucket is private), which answers with a signed, short-lived link.
    link = f"/lessons/{lesson.booking_id}/recordings/{recording.id}"
    for who in (lesson.tutor, lesson.student):
        await log_out(client)
        await log_in(client, who.email, PW)
        notes = await client.get(f"/lessons/{lesson.booking_id}/notes")
        assert link in notes.text and "s3.example" not in notes.text
        response = await client.get(link, follow_redirects=False)
        assert response.status_code == 303, response.text[:3000]
        assert response.headers["cache-control"] == "private, no-store"
        target = urlsplit(response.headers["location"])
        assert (target.scheme, target.netloc, target.path) == ("http", "127.0.0.1:9000", "/lessons/lessons/x/take.mp4")
        query = parse_qs(target.query)
        assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-SignedHeaders"] == ["host"]
        assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/") and len(query["X-Amz-Signature"][0]) == 64
        assert query["response-content-disposition"] == [
            f'attachment; filename="lesson-{lesson.starts_at:%Y-%m-%d}.mp4"'
        ]

    # Nobody else gets it; unknown ids and recordings past their retention are refused clearly.
    await log_out(client)
    stranger = await make_user(email="stranger-rec@example.com", name="Stan Stranger")
    await log_in(client, stranger.email, PW)
    assert (await client.get(link)).status_code in (403, 404)
    await log_out(client)
    await log_in(client, lesson.student.email, PW)
    assert (await client.get(f"/lessons/{lesson.booking_id}/recordings/not-an-id")).status_code == 404
    async with transaction() as session:
        (await session.get(Recording, recording.id)).expires_at = datetime.now(UTC) - timedelta(minutes=1)
    gone = await client.get(link)
    assert gone.status_code == 404 and "retention period" in gone.text


async def test_recording_consent_needs_recording_configured(client, video):
    lesson = await make_lesson()
    await log_in(client, lesson.student.email, PW)
    token = await csrf_token(client, "/practice")
    response = await client.post(f"/lessons/{lesson.booking_id}/recording", data={"_csrf_token": token, "agree": "yes"})
    assert response.status_code == 409


def test_s3_delete_request_is_signed_with_sigv4(monkeypatch):
    from lessons.storage import delete_request
    from marketplace.settings import get_settings

    set_env(
        monkeypatch,
        RECORDING_S3_BUCKET="examplebucket",
        RECORDING_S3_REGION="us-east-1",
        RECORDING_S3_ACCESS_KEY="AKIAIOSFODNN7EXAMPLE",
        RECORDING_S3_SECRET="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    url, headers = delete_request("test.txt", settings=get_settings(), now=datetime(2013, 5, 24, tzinfo=UTC))
    assert url == "https://examplebucket.s3.us-east-1.amazonaws.com/test.txt"
    assert headers["x-amz-date"] == "20130524T000000Z"
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" in auth
    assert len(auth.rsplit("=", 1)[1]) == 64


def test_s3_presigned_get_matches_the_documented_example(monkeypatch):
    """AWS's own example of a presigned GetObject URL (S3 API reference, "Authenticating Requests:
    Using Query Parameters"): same inputs, same signature."""
    from lessons import storage
    from marketplace.settings import get_settings

    set_env(
        monkeypatch,
        RECORDING_S3_BUCKET="examplebucket",
        RECORDING_S3_REGION="us-east-1",
        RECORDING_S3_ACCESS_KEY="AKIAIOSFODNN7EXAMPLE",
        RECORDING_S3_SECRET="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    # The example addresses the bucket by its global host name; we use the regional one.
    assert storage._target("test.txt", get_settings())[0] == "examplebucket.s3.us-east-1.amazonaws.com"
    monkeypatch.setattr(
        storage,
        "_target",
        lambda key, s: (
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "https://examplebucket.s3.amazonaws.com/test.txt",
        ),
    )
    url = storage.presigned_get(
        "test.txt", expires=86400, settings=get_settings(), now=datetime(2013, 5, 24, tzinfo=UTC)
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
