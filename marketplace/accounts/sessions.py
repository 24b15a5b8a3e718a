"""Server-side sessions: Litestar's session middleware with a store chosen from settings
(Redis when REDIS_URL is set, otherwise the database) and session-ID rotation at log-in."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.types import Message, ScopeSession
from sqlalchemy import delete, select

from marketplace.accounts.models import StoredSession
from marketplace.db import transaction, utcnow
from marketplace.settings import Settings

_ROTATE = "cz_rotate_session"
_NEW_ID = "cz_new_session_id"
_LOADED = "cz_loaded_session"


def rotate_session(connection: ASGIConnection) -> None:
    """Give this client a new session ID when the response is sent (log-in: fixation defence)."""
    connection.scope.setdefault("state", {})[_ROTATE] = True


class RotatingSessionBackend(ServerSideSessionBackend):
    def get_session_id(self, connection: ASGIConnection) -> str:
        state = connection.scope.setdefault("state", {})
        if new_id := state.get(_NEW_ID):
            return new_id
        return super().get_session_id(connection)

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        # A deep copy: handlers mutate nested values (the flash list) in place.
        connection.scope.setdefault("state", {})[_LOADED] = copy.deepcopy(data) if data else {}
        return data

    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        state = connection.scope.setdefault("state", {})
        if state.pop(_ROTATE, False):
            old_id = connection.cookies.get(self.config.key)
            if old_id and old_id != "null":
                await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
            state[_NEW_ID] = self.generate_session_id()
        elif (
            scope_session is not None
            and scope_session == state.get(_LOADED)
            and connection.cookies.get(self.config.key)
        ):
            return  # unchanged: no store write, no new cookie
        elif not scope_session and not connection.cookies.get(self.config.key):
            return  # nothing stored and nothing to forget
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend


class DatabaseStore(Store):
    """A Litestar store in the application's database (the default without Redis)."""

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        if isinstance(value, str):
            value = value.encode()
        if isinstance(expires_in, int):
            expires_in = timedelta(seconds=expires_in)
        expires_at = utcnow() + expires_in if expires_in else None
        if secrets.randbelow(200) == 0:  # now and then, forget sessions that have expired
            await self.delete_expired()
        async with transaction() as session:
            row = await session.get(StoredSession, key)
            if row is None:
                session.add(StoredSession(key=key, value=value, expires_at=expires_at))
            else:
                row.value = value
                row.expires_at = expires_at

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        async with transaction(write=False) as session:
            row = (
                await session.execute(
                    select(StoredSession.value, StoredSession.expires_at).where(StoredSession.key == key)
                )
            ).first()
        if row is None:
            return None
        if row.expires_at is not None and row.expires_at <= utcnow():
            await self.delete(key)
            return None
        if renew_for:
            await self.set(key, row.value, renew_for)
        return row.value

    async def delete(self, key: str) -> None:
        async with transaction() as session:
            await session.execute(delete(StoredSession).where(StoredSession.key == key))

    async def delete_all(self) -> None:
        async with transaction() as session:
            await session.execute(delete(StoredSession))

    async def delete_expired(self) -> int:
        async with transaction() as session:
            result = await session.execute(delete(StoredSession).where(StoredSession.expires_at <= utcnow()))
        return result.rowcount or 0

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with transaction(write=False) as session:
            expires_at = (
                await session.execute(select(StoredSession.expires_at).where(StoredSession.key == key))
            ).scalar_one_or_none()
        if expires_at is None:
            return None
        return max(0, int((expires_at - utcnow()).total_seconds()))


def make_session_store(settings: Settings) -> Store:
    if settings.redis_url:
        from litestar.stores.redis import RedisStore

        return RedisStore.with_client(url=settings.redis_url, namespace="cadenza-sessions")
    return DatabaseStore()


def make_session_config(settings: Settings) -> SessionConfig:
    return SessionConfig(
        key="cadenza_session",
        max_age=settings.session_max_age,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
        store="sessions",
        exclude=["^/static/", "^/healthz", "^/bare"],
    )
