"""Tokens: only the booked student and tutor, only this room, only in the window; claims checked
with the SDK's TokenVerifier; the room is created lazily on first join at the HTTP boundary when
the job has not prepared it, and not again when it has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from livekit import api

from tests.helpers import csrf_token, log_in, make_user
from tests.lessons.conftest import API_KEY, API_SECRET, make_lesson, room_name


async def _token(client, booking_id, path: str = "/dashboard"):
    token = await csrf_token(client, "/practice")
    return await client.post(
        f"/lessons/{booking_id}/token", headers={"x-csrftoken": token, "accept": "application/json"}
    )


async def test_student_gets_a_token_with_exactly_the_room_grants(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=5), minutes=45)
    await log_in(client, lesson.student.email, "correct horse battery")
    response = await _token(client, lesson.booking_id)
    assert response.status_code == 200, response.text
    body = response.json()
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    assert claims.identity == str(lesson.student.id)
    assert claims.name == "Sam Student"
    assert claims.kind == "standard"
    room = await room_name(lesson)
    assert body["room"] == room and room.startswith("lesson-") and len(room) == len("lesson-") + 32
    grants = claims.video
    assert grants.room_join is True and grants.room == room
    assert grants.can_publish is True and grants.can_subscribe is True and grants.can_publish_data is True
    assert grants.can_publish_sources == ["camera", "microphone", "screen_share", "screen_share_audio"]
    for power in ("room_create", "room_list", "room_record", "room_admin", "recorder", "hidden", "ingress_admin"):
        assert getattr(grants, power) in (None, False), power
    # valid until 15 minutes after the scheduled end
    import jwt

    raw = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    assert abs(raw["exp"] - (lesson.ends_at + timedelta(minutes=15)).timestamp()) <= 2
    assert raw["iss"] == API_KEY
    assert body["url"].startswith("ws://127.0.0.1:")
    # created lazily on first join, with an empty timeout and a participant limit
    (create,) = video.calls("CreateRoom")
    assert create.name == room and create.empty_timeout == 600 and create.max_participants == 4
    auth = video.requests[0][2]["Authorization"]
    server_claims = api.TokenVerifier(API_KEY, API_SECRET).verify(auth.removeprefix("Bearer "))
    assert server_claims.video.room_create is True
    # a second token does not create the room again
    assert (await _token(client, lesson.booking_id)).status_code == 200
    assert len(video.calls("CreateRoom")) == 1


async def test_tutor_gets_a_token_for_the_same_room(client, video):
    lesson = await make_lesson()
    await log_in(client, lesson.tutor.email, "correct horse battery")
    body = (await _token(client, lesson.booking_id)).json()
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    assert claims.identity == str(lesson.tutor.id) and claims.video.room == await room_name(lesson)


async def test_non_participant_gets_no_token(client, video):
    lesson = await make_lesson()
    other = await make_user(email="eve@example.com", name="Eve")
    await log_in(client, other.email, "correct horse battery")
    response = await _token(client, lesson.booking_id)
    assert response.status_code == 404
    assert "token" not in response.text
    assert video.requests == []


async def test_token_for_another_lesson_is_refused(client, video):
    mine = await make_lesson()
    theirs = await make_lesson()
    await log_in(client, mine.student.email, "correct horse battery")
    assert (await _token(client, theirs.booking_id)).status_code == 404
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify((await _token(client, mine.booking_id)).json()["token"])
    assert claims.video.room == await room_name(mine) != await room_name(theirs)


@pytest.mark.parametrize(
    ("starts_in", "minutes", "status"),
    [
        (timedelta(minutes=11), 60, 403),  # opens 10 minutes before the start
        (timedelta(minutes=-76), 60, 403),  # closed 15 minutes after the end
    ],
)
async def test_token_outside_the_window_is_refused(client, video, starts_in, minutes, status):
    lesson = await make_lesson(starts_in=starts_in, minutes=minutes)
    await log_in(client, lesson.student.email, "correct horse battery")
    response = await _token(client, lesson.booking_id)
    assert response.status_code == status
    assert response.json()["detail"]
    assert "token" not in response.json()


async def test_token_window_edges(client, video):
    early = await make_lesson(starts_in=timedelta(minutes=9), minutes=30)
    late = await make_lesson(starts_in=timedelta(minutes=-44), minutes=30, student=early.student)
    await log_in(client, early.student.email, "correct horse battery")
    assert (await _token(client, early.booking_id)).status_code == 200
    assert (await _token(client, late.booking_id)).status_code == 200


async def test_unconfirmed_lesson_gets_no_token(client, video):
    lesson = await make_lesson(status="cancelled")
    await log_in(client, lesson.student.email, "correct horse battery")
    assert (await _token(client, lesson.booking_id)).status_code == 409


async def test_without_video_no_token_and_room_page_says_not_configured(client):
    lesson = await make_lesson()
    await log_in(client, lesson.student.email, "correct horse battery")
    assert (await _token(client, lesson.booking_id)).status_code == 409
    page = await client.get(f"/lessons/{lesson.booking_id}/room")
    assert page.status_code == 200
    assert "Video is not configured" in page.text
    assert "lesson-room.js" not in page.text


async def test_token_requires_csrf_and_login(client, video):
    lesson = await make_lesson()
    response = await client.post(f"/lessons/{lesson.booking_id}/token", headers={"accept": "application/json"})
    assert response.status_code in (401, 403)
    await log_in(client, lesson.student.email, "correct horse battery")
    response = await client.post(f"/lessons/{lesson.booking_id}/token", headers={"accept": "application/json"})
    assert response.status_code == 403


async def test_room_page_in_the_window_loads_the_room_module_with_a_csp_for_livekit(client, video):
    lesson = await make_lesson()
    await log_in(client, lesson.tutor.email, "correct horse battery")
    page = await client.get(f"/lessons/{lesson.booking_id}/room")
    assert page.status_code == 200
    assert "/static/js/lesson-room.js" in page.text and "livekit-client.umd.js" in page.text
    assert 'id="music-mode" checked' in page.text
    csp = page.headers["content-security-policy"]
    assert f"connect-src 'self' ws://{video.url.split('://')[1]} {video.url}" in csp
    assert "script-src 'self';" in csp


async def test_room_page_outside_the_window_explains_when(client, video):
    lesson = await make_lesson(starts_in=timedelta(hours=3))
    await log_in(client, lesson.student.email, "correct horse battery")
    page = await client.get(f"/lessons/{lesson.booking_id}/room")
    assert "opens at" in page.text and "lesson-room.js" not in page.text
    other = await make_user(email="mallory@example.com")
    await log_in(client, other.email, "correct horse battery")
    assert (await client.get(f"/lessons/{lesson.booking_id}/room")).status_code == 404


async def test_room_creation_failure_still_issues_a_token(client, video):
    video.fail_with = 503
    lesson = await make_lesson()
    await log_in(client, lesson.student.email, "correct horse battery")
    response = await _token(client, lesson.booking_id)
    assert response.status_code == 200
    assert len(video.calls("CreateRoom")) == 1


def test_the_app_starts_with_livekit_settings_without_reaching_the_server(monkeypatch):
    from marketplace.app import create_app
    from tests.lessons.conftest import set_env

    set_env(
        monkeypatch,
        LIVEKIT_URL="wss://unreachable.invalid",
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
    )
    from litestar.testing import TestClient

    with TestClient(create_app()) as client:
        assert client.get("/healthz").status_code == 200
    _ = datetime.now(UTC)


async def test_a_room_prepared_by_the_job_is_not_created_again_on_join(client, video):
    from lessons.services import room_create_on_server
    from marketplace.db import transaction

    lesson = await make_lesson()
    async with transaction() as session:
        assert await room_create_on_server(session, booking_id=lesson.booking_id)
    assert len(video.calls("CreateRoom")) == 1
    await log_in(client, lesson.student.email, "correct horse battery")
    response = await _token(client, lesson.booking_id)
    assert response.status_code == 200 and response.json()["room"] == await room_name(lesson)
    assert len(video.calls("CreateRoom")) == 1
