"""Fixtures for the lessons tests: people, a confirmed booking, LiveKit settings, a fake
LiveKit server answering the Twirp API on a local port (requests recorded), webhook signing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from livekit import api
from livekit.protocol import egress as proto_egress
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room

from tests.helpers import make_user

API_KEY = "APIcadenzaTest"
API_SECRET = "cadenza-livekit-test-secret-0123456789abcdef"  # 32+ bytes: no SDK warning


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    from marketplace.settings import get_settings

    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    from marketplace.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@dataclass
class FakeLiveKit:
    """A local HTTP server speaking LiveKit's Twirp API (protobuf), recording every request."""

    requests: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    participants: dict[str, list[proto_models.ParticipantInfo]] = field(default_factory=dict)
    fail_with: int | None = None
    url: str = ""

    def calls(self, method: str) -> list[Any]:
        return [body for name, body, _headers in self.requests if name == method]

    async def handle(self, request: web.Request) -> web.Response:
        service_method = request.match_info["method"]  # e.g. livekit.RoomService/CreateRoom
        method = service_method.rsplit("/", 1)[-1]
        raw = await request.read()
        kinds = {
            "CreateRoom": proto_room.CreateRoomRequest,
            "ListRooms": proto_room.ListRoomsRequest,
            "ListParticipants": proto_room.ListParticipantsRequest,
            "StartRoomCompositeEgress": proto_egress.RoomCompositeEgressRequest,
            "StopEgress": proto_egress.StopEgressRequest,
        }
        message = kinds[method].FromString(raw) if method in kinds else raw
        self.requests.append((method, message, dict(request.headers)))
        if self.fail_with:
            return web.json_response({"code": "unavailable", "msg": "down"}, status=self.fail_with)
        if method == "CreateRoom":
            reply = proto_models.Room(
                sid="RM_" + uuid.uuid4().hex[:12],
                name=message.name,
                empty_timeout=message.empty_timeout,
                max_participants=message.max_participants,
            )
        elif method == "ListParticipants":
            if message.room not in self.participants:
                return web.json_response({"code": "not_found", "msg": "room not found"}, status=404)
            reply = proto_room.ListParticipantsResponse(participants=self.participants[message.room])
        elif method == "ListRooms":
            reply = proto_room.ListRoomsResponse(rooms=[proto_models.Room(name=n) for n in message.names])
        elif method == "StartRoomCompositeEgress":
            reply = proto_egress.EgressInfo(
                egress_id="EG_" + uuid.uuid4().hex[:12], room_name=message.room_name, status=0
            )
        else:
            reply = proto_egress.EgressInfo()
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")


@pytest.fixture
def fake_livekit() -> Iterator[FakeLiveKit]:
    """The fake server runs on its own event loop in a thread: Litestar's test client blocks the
    test's loop while the app handles a request, and the app calls this server meanwhile."""
    fake = FakeLiveKit()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/twirp/{method:.+}", fake.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        holder["server"] = server
        fake.url = f"http://127.0.0.1:{server.port}"
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "the fake LiveKit server did not start"
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def video(monkeypatch: pytest.MonkeyPatch, fake_livekit: FakeLiveKit) -> FakeLiveKit:
    """LiveKit configured, pointing at the fake server."""
    set_env(monkeypatch, LIVEKIT_URL=fake_livekit.url, LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET)
    return fake_livekit


def sign_webhook(body: str, *, key: str = API_KEY, secret: str = API_SECRET) -> str:
    """What LiveKit sends: a bare JWT whose sha256 claim is the base64 digest of the raw body."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).with_ttl(timedelta(minutes=5)).to_jwt()


def event_body(
    event: str,
    *,
    room: str,
    event_id: str | None = None,
    at: datetime,
    identity: str | None = None,
    sid: str | None = None,
    joined_at: datetime | None = None,
    egress: dict[str, Any] | None = None,
) -> str:
    data: dict[str, Any] = {
        "event": event,
        "id": event_id or "EV_" + uuid.uuid4().hex[:16],
        "createdAt": str(int(at.timestamp())),
        "room": {"name": room, "sid": "RM_test"},
    }
    if identity is not None:
        data["participant"] = {
            "sid": sid or "PA_" + uuid.uuid4().hex[:10],
            "identity": identity,
            "name": "someone",
            **({"joinedAt": str(int(joined_at.timestamp()))} if joined_at else {}),
        }
    if egress is not None:
        data["egressInfo"] = egress
        data.pop("room")
    return json.dumps(data)


@dataclass
class Lesson:
    booking_id: uuid.UUID
    tutor: Any
    student: Any
    starts_at: datetime
    ends_at: datetime


async def make_lesson(
    *,
    starts_in: timedelta = timedelta(minutes=5),
    minutes: int = 60,
    status: str = "confirmed",
    tutor: Any = None,
    student: Any = None,
) -> Lesson:
    from marketplace.db import transaction
    from scheduling.models import Booking, BookingStatus

    tutor = tutor or await make_user(email=f"tutor-{uuid.uuid4().hex[:8]}@example.com", role="tutor", name="Tina Tutor")
    student = student or await make_user(email=f"student-{uuid.uuid4().hex[:8]}@example.com", name="Sam Student")
    starts_at = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    ends_at = starts_at + timedelta(minutes=minutes)
    async with transaction() as session:
        booking = Booking(
            tutor_id=tutor.id,
            student_id=student.id,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_from=starts_at,
            blocked_until=ends_at,
            status=BookingStatus(status),
            price_amount=4000,
            currency="EUR",
            paid_at=datetime.now(UTC),
            confirmed_at=datetime.now(UTC),
        )
        session.add(booking)
    return Lesson(booking.id, tutor, student, starts_at, ends_at)


async def booking_status(booking_id: uuid.UUID) -> str:
    from marketplace.db import session_factory
    from scheduling.models import Booking

    async with session_factory()() as session:
        booking = await session.get(Booking, booking_id)
        return booking.status.value


async def room_name(lesson: Lesson) -> str:
    from lessons.models import LessonRoom
    from lessons.services import room_ensure
    from marketplace.db import transaction
    from scheduling.models import Booking

    async with transaction() as session:
        booking = await session.get(Booking, lesson.booking_id)
        room: LessonRoom = await room_ensure(session, booking=booking)
        return room.name
