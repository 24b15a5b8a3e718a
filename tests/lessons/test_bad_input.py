"""Every lesson route, for each side of a real lesson, a stranger and an admin, with garbage and
empty forms and malformed ids: a clear 4xx or a normal page, never a 5xx."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers import csrf_token, log_in, log_out, make_user
from tests.lessons.conftest import make_lesson

GARBAGE = {
    "notes": "\x00" * 10 + "x" * 30_000,
    "homework": "<script>" * 100,
    "tutor_minutes": "1e999",
    "student_minutes": "-5",
    "reason": "x" * 2000,
    "agree": "maybe",
    "file": "not a file",
}


async def test_lesson_routes_never_answer_with_a_server_error(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-20))
    admin = await make_user(email="root@example.com", role="admin")
    stranger = await make_user(email="x@example.com")
    base = f"/lessons/{lesson.booking_id}"
    gets = [
        f"{base}/room",
        f"{base}/notes",
        f"{base}/attendance",
        f"{base}/files/not-a-uuid",
        "/practice",
        f"{base}/files/00000000-0000-0000-0000-000000000000",
        "/lessons/not-a-uuid/room",
    ]
    posts = [
        f"{base}/token",
        f"{base}/confirm",
        f"{base}/recording",
        f"{base}/notes",
        f"{base}/notes/files",
        f"{base}/notes/files/zzz/delete",
        f"{base}/attendance",
    ]
    failures, statuses = [], set()
    for who in (lesson.student, lesson.tutor, admin, stranger):
        await log_in(client, who.email, "correct horse battery")
        token = await csrf_token(client, "/practice")
        for url in gets:
            r = await client.get(url)
            statuses.add(r.status_code)
            if r.status_code >= 500:
                failures.append(f"GET {url} as {who.email} -> {r.status_code}")
        for url in posts:
            for data in (GARBAGE, {}):
                r = await client.post(url, data={"_csrf_token": token, **data})
                statuses.add(r.status_code)
                if r.status_code >= 500:
                    failures.append(f"POST {url} as {who.email} -> {r.status_code}")
        await log_out(client)
    for body in (b"", b"\xff\xfe", b"{}" * 10, b"x" * 300_000):
        r = await client.post("/webhooks/livekit", content=body, headers={"authorization": "Bearer x.y.z"})
        statuses.add(r.status_code)
        if r.status_code >= 500:
            failures.append(f"POST webhook {len(body)} bytes -> {r.status_code}")
    assert not failures, "\n".join(failures)
    assert {401, 403, 404, 422} <= statuses, sorted(statuses)
