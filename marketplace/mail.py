"""Mail: every message is written to the outbox table in the caller's transaction and sent
after commit by a job (SMTP when SMTP_URL is set; otherwise it stays readable in the outbox)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import uuid
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import JSON, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from marketplace import jobs
from marketplace.db import Entity, UTCDateTime, after_commit, transaction, utcnow
from marketplace.settings import get_settings


class OutboxMessage(Entity):
    __tablename__ = "outbox"

    to_address: Mapped[str] = mapped_column(String(254), nullable=False, index=True)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    # queued -> sent (SMTP) | stored (no SMTP configured) | failed (retries exhausted)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str] = mapped_column(String(200), nullable=False)
    # [{"filename", "content_type" ("text/calendar; method=REQUEST"), "content" (text)}]
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


async def mail_queue(session: AsyncSession, *, to: str, subject: str, body: str) -> OutboxMessage:
    """Record a message in the caller's transaction; it is sent after the commit."""
    domain = get_settings().mail_from.rsplit("@", 1)[-1].rstrip(">") or "cadenza.localhost"
    msg = OutboxMessage(to_address=to, subject=subject, body_text=body, message_id=make_msgid(domain=domain))
    session.add(msg)
    await session.flush()
    msg_id = str(msg.id)
    after_commit(session, lambda: mail_send.send(msg_id))
    return msg


def _smtp_send(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    use_ssl = parts.scheme == "smtps"
    port = parts.port or (465 if use_ssl else 25)
    ctx = ssl.create_default_context()
    if use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=20, context=ctx)
    else:
        smtp = smtplib.SMTP(host, port, timeout=20)
    with smtp:
        if parts.scheme == "smtp+starttls":
            smtp.starttls(context=ctx)
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


async def mail_deliver(*, message_id: uuid.UUID) -> str:
    """Send one outbox message. Idempotent: a message already sent or stored is left alone.

    Raises on an SMTP failure (after recording it) so that the job is retried with backoff.
    """
    settings = get_settings()
    failure: Exception | None = None
    async with transaction() as session:
        msg = (await session.execute(select(OutboxMessage).where(OutboxMessage.id == message_id))).scalar_one_or_none()
        if msg is None or msg.status in {"sent", "stored"}:
            return msg.status if msg else "missing"
        msg.attempts += 1
        if not settings.smtp_url:
            msg.status = "stored"
            return msg.status
        email = EmailMessage()
        email["From"] = settings.mail_from
        email["To"] = msg.to_address
        email["Subject"] = msg.subject
        email["Message-ID"] = msg.message_id
        email.set_content(msg.body_text)
        try:
            await asyncio.to_thread(_smtp_send, settings.smtp_url, email)
        except (OSError, smtplib.SMTPException) as exc:
            msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            failure = exc
        else:
            msg.status = "sent"
            msg.sent_at = utcnow()
            msg.last_error = None
        status = msg.status
    if failure is not None:
        raise failure
    return status


async def mail_give_up(*, message_id: uuid.UUID) -> None:
    async with transaction() as session:
        msg = await session.get(OutboxMessage, message_id)
        if msg is not None and msg.status == "queued":
            msg.status = "failed"


@jobs.actor(queue_name="mail")
async def mail_failed(message_data: dict, retry_info: dict) -> None:
    await mail_give_up(message_id=uuid.UUID(message_data["args"][0]))


@jobs.actor(max_retries=8, min_backoff=5_000, max_backoff=600_000, queue_name="mail", on_retry_exhausted="mail_failed")
async def mail_send(message_id: str) -> None:
    await mail_deliver(message_id=uuid.UUID(message_id))
