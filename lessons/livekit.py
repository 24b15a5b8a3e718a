"""The LiveKit adapter, on the official ``livekit-api`` SDK.

Configured by ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET``; without them
video is not configured (the room page says so and the "lesson took place" confirmation is
offered instead). Nothing here talks to the server at import or app start: the server API
client is made per call (``server()``), and tokens and webhook checks are local JWT work.

- :func:`participant_token`: an access token for one person and one room only (join, publish,
  subscribe, data; no room admin, create, list or record), valid until ``valid_until``.
- :func:`verify_webhook`: ``WebhookReceiver`` (the Authorization header is a bare JWT whose
  ``sha256`` claim is the base64 digest of the raw body); raises :class:`WebhookRefused`.
- :class:`LiveKitServer`: RoomService (create room, list participants) and Egress (room
  composite to S3). Tests point it at a local HTTP server answering the Twirp API
  (``LIVEKIT_URL=http://127.0.0.1:port``) or pass their own ``aiohttp`` session.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from livekit import api
from livekit.protocol import egress as proto_egress
from livekit.protocol import room as proto_room
from livekit.protocol.webhook import WebhookEvent

from marketplace.settings import Settings, get_settings

ROOM_PREFIX = "lesson-"
MAX_PARTICIPANTS = 4  # tutor and student; a rejoin may briefly overlap the old session
EMPTY_TIMEOUT_SECONDS = 10 * 60  # keep an empty room for reconnects
DEPARTURE_TIMEOUT_SECONDS = 60
API_TIMEOUT_SECONDS = 5
PUBLISH_SOURCES = ["camera", "microphone", "screen_share", "screen_share_audio"]


class WebhookRefused(Exception):
    """A webhook that is not signed by our LiveKit key or does not match its body."""


def configured(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    return bool(settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret)


def recording_configured(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    return configured(settings) and bool(
        settings.recording_s3_bucket and settings.recording_s3_access_key and settings.recording_s3_secret
    )


def new_room_name() -> str:
    """An unguessable room name (128 random bits)."""
    return ROOM_PREFIX + secrets.token_hex(16)


def client_url(settings: Settings | None = None) -> str:
    """The URL browsers connect to (``wss://`` / ``ws://``)."""
    url = (settings or get_settings()).livekit_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def csp_origins(settings: Settings | None = None) -> str:
    """Origins the room page must be allowed to connect to (signal websocket and its HTTP twin)."""
    ws = client_url(settings)
    http = "https://" + ws[len("wss://") :] if ws.startswith("wss://") else "http://" + ws.split("://", 1)[-1]
    origin = lambda u: "/".join(u.split("/")[:3])  # noqa: E731
    return f"{origin(ws)} {origin(http)}"


@dataclass(frozen=True)
class IssuedToken:
    jwt: str
    identity: str
    room: str
    expires_at: datetime


def participant_token(
    *, room: str, identity: str, name: str, valid_until: datetime, now: datetime | None = None
) -> IssuedToken:
    settings = get_settings()
    now = now or datetime.now(UTC)
    ttl = valid_until - now
    if ttl <= timedelta(0):
        raise ValueError("the token window is over")
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_publish_sources=list(PUBLISH_SOURCES),
        can_update_own_metadata=False,
    )
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_kind("standard")
        .with_grants(grants)
        .with_ttl(ttl)
    )
    return IssuedToken(jwt=token.to_jwt(), identity=identity, room=room, expires_at=now + ttl)


@functools.lru_cache(maxsize=4)
def _receiver(key: str, secret: str) -> api.WebhookReceiver:
    """One ``WebhookReceiver`` per key and secret (it keeps no state between calls)."""
    return api.WebhookReceiver(api.TokenVerifier(key, secret))


def verify_webhook(body: bytes, authorization: str | None) -> WebhookEvent:
    """The webhook event if ``authorization`` is our key's JWT over ``body``; else WebhookRefused."""
    settings = get_settings()
    if not configured(settings):
        raise WebhookRefused("video is not configured")
    if not authorization:
        raise WebhookRefused("missing Authorization header")
    token = authorization.strip()
    if token.lower().startswith("bearer "):  # LiveKit sends the bare JWT; tolerate the prefix
        token = token[7:].strip()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRefused("body is not UTF-8") from exc
    receiver = _receiver(settings.livekit_api_key, settings.livekit_api_secret)
    try:
        return receiver.receive(text, token)
    except Exception as exc:  # the SDK raises jwt errors, plain Exceptions and protobuf ParseErrors
        raise WebhookRefused(str(exc) or exc.__class__.__name__) from exc


def parse_event(text: str) -> WebhookEvent:
    """A stored (already verified) webhook body, parsed as ``WebhookReceiver`` does."""
    from google.protobuf.json_format import Parse

    return Parse(text, WebhookEvent(), ignore_unknown_fields=True)


@dataclass(frozen=True)
class Participant:
    sid: str
    identity: str
    joined_at: datetime | None


class LiveKitServer:
    """The server API (RoomService, Egress). ``async with LiveKitServer() as lk: ...``"""

    def __init__(self, settings: Settings | None = None, *, session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings or get_settings()
        self._session = session
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> LiveKitServer:
        s = self.settings
        self._api = api.LiveKitAPI(
            s.livekit_url,
            s.livekit_api_key,
            s.livekit_api_secret,
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS),
            session=self._session,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    @property
    def lk(self) -> api.LiveKitAPI:
        assert self._api is not None, "use LiveKitServer inside 'async with'"
        return self._api

    async def create_room(self, name: str) -> None:
        """Create (or find: CreateRoom is idempotent on the name) the lesson's room."""
        await self.lk.room.create_room(
            proto_room.CreateRoomRequest(
                name=name,
                empty_timeout=EMPTY_TIMEOUT_SECONDS,
                departure_timeout=DEPARTURE_TIMEOUT_SECONDS,
                max_participants=MAX_PARTICIPANTS,
            )
        )

    async def room_exists(self, name: str) -> bool:
        response = await self.lk.room.list_rooms(proto_room.ListRoomsRequest(names=[name]))
        return any(room.name == name for room in response.rooms)

    async def participants(self, name: str) -> list[Participant]:
        """Who is in the room now (an empty list when the room does not exist)."""
        try:
            response = await self.lk.room.list_participants(proto_room.ListParticipantsRequest(room=name))
        except api.TwirpError as exc:
            if exc.code == api.TwirpErrorCode.NOT_FOUND:
                return []
            raise
        return [
            Participant(
                sid=p.sid,
                identity=p.identity,
                joined_at=datetime.fromtimestamp(p.joined_at, UTC) if p.joined_at else None,
            )
            for p in response.participants
        ]

    async def start_recording(self, *, room: str, filepath: str) -> str:
        """Start a room-composite egress (audio and video, grid layout) to S3; the egress id."""
        s = self.settings
        s3 = proto_egress.S3Upload(
            access_key=s.recording_s3_access_key,
            secret=s.recording_s3_secret,
            bucket=s.recording_s3_bucket,
            region=s.recording_s3_region,
            endpoint=s.recording_s3_endpoint,
            force_path_style=bool(s.recording_s3_endpoint),
        )
        request = proto_egress.RoomCompositeEgressRequest(
            room_name=room,
            layout="grid",
            file_outputs=[
                proto_egress.EncodedFileOutput(
                    file_type=proto_egress.EncodedFileType.MP4,
                    filepath=filepath,
                    s3=s3,
                )
            ],
        )
        info = await self.lk.egress.start_room_composite_egress(request)
        return info.egress_id

    async def stop_recording(self, egress_id: str) -> None:
        await self.lk.egress.stop_egress(proto_egress.StopEgressRequest(egress_id=egress_id))
