"""Messaging jobs: the batched "you have new messages" mail."""

from __future__ import annotations

import uuid

from marketplace import jobs
from marketplace.db import transaction


@jobs.actor(queue_name="default")
async def messaging_notify(thread_id: str, recipient_id: str) -> None:
    """Mail the recipient one summary of their unread, not yet notified messages (idempotent)."""
    from marketplace.messaging.services import thread_notify

    async with transaction() as session:
        await thread_notify(session, thread_id=uuid.UUID(thread_id), recipient_id=uuid.UUID(recipient_id))
