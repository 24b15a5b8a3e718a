"""Take turns at SQLite's write lock: a file lock beside the database (nothing on PostgreSQL).

Hot write paths (the webhook inboxes and the jobs that apply their events) hold the gate around
their transactions, so that a burst of deliveries and a job do not meet in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from marketplace.settings import get_settings


class _SqliteWriteGate:
    """On SQLite, writers that would otherwise wait for the database's write lock in SQLite's busy
    handler (sleeps of up to 100 ms between tries, and no order: under steady load some wait for
    seconds) take turns on an exclusive ``flock`` of a file beside the database instead: the kernel
    wakes the next holder as soon as the lock is released, across the web processes and the job
    worker. Within a process they queue on an asyncio lock first, so one thread waits on the file.
    Used by the webhook inboxes and the jobs that apply their events; other writers are unchanged
    (they still meet the database's own lock). Nothing on PostgreSQL."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}

    def _path(self) -> str | None:
        url = get_settings().database_url
        if not url.startswith("sqlite"):
            return None
        path = url.split("///", 1)[-1].split("?", 1)[0]
        return None if not path or path == ":memory:" else path + ".write-gate"

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        path = self._path()
        try:
            import fcntl
        except ImportError:  # not a POSIX system: the busy handler alone
            path = None
        if path is None:
            yield
            return
        loop = asyncio.get_running_loop()
        entry = self._locks.get(id(loop))
        if entry is None or entry[0] is not loop:
            entry = (loop, asyncio.Lock())
            self._locks[id(loop)] = entry
        async with entry[1]:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
                    try:
                        await asyncio.shield(waiting)
                    except asyncio.CancelledError:
                        with contextlib.suppress(BaseException):  # let the wait end before the fd closes
                            await waiting
                        raise
                yield
            finally:
                os.close(fd)  # releases the lock


sqlite_write_gate = _SqliteWriteGate()
