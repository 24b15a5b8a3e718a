"""Log-in throttling per account and per address (Redis when REDIS_URL is set, else the database)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, func, select

from marketplace.accounts.models import LoginFailure
from marketplace.db import transaction, utcnow
from marketplace.settings import Settings


class Throttle(Protocol):
    async def blocked_for(self, key: str, limit: int) -> int:
        """Seconds until ``key`` may try again (0 when it may try now)."""

    async def record_failure(self, *keys: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class DatabaseThrottle:
    def __init__(self, window_seconds: int) -> None:
        self.window = timedelta(seconds=window_seconds)

    async def blocked_for(self, key: str, limit: int) -> int:
        since = utcnow() - self.window
        async with transaction(write=False) as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(LoginFailure.at)).where(
                        LoginFailure.key == key, LoginFailure.at > since
                    )
                )
            ).one()
        if count < limit or oldest is None:
            return 0
        return max(1, math.ceil((oldest + self.window - utcnow()).total_seconds()))

    async def record_failure(self, *keys: str) -> None:
        now = utcnow()
        async with transaction() as session:
            session.add_all(LoginFailure(key=k, at=now) for k in keys)
            # Forget what has left the window, so the table stays small.
            await session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window * 2))

    async def clear(self, key: str) -> None:
        async with transaction() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.key == key))


class RedisThrottle:
    """A fixed window per key: INCR and EXPIRE in one pipeline."""

    def __init__(self, url: str, window_seconds: int) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.window = window_seconds

    def _k(self, key: str) -> str:
        return f"cadenza:login-failures:{key}"

    async def blocked_for(self, key: str, limit: int) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            count, ttl = await pipe.get(self._k(key)).ttl(self._k(key)).execute()
        if count is None or int(count) < limit:
            return 0
        return max(1, int(ttl))

    async def record_failure(self, *keys: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(self._k(key))
                pipe.expire(self._k(key), self.window, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.redis.delete(self._k(key))


def make_throttle(settings: Settings) -> Throttle:
    if settings.redis_url:
        return RedisThrottle(settings.redis_url, settings.login_window_seconds)
    return DatabaseThrottle(settings.login_window_seconds)
