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


#: Attachments are text (an .ics invite is a few kilobytes); anything larger is a programming error.
ATTACHMENT_MAX_CHARS = 256 * 1024


def _clean_attachments(attachments: list[dict[str, Any]] | None) -> list[dict[str, str]] | None:
    if not attachments:
        return None
    cleaned = []
    for item in attachments:
        filename, content_type, content = item.get("filename"), item.get("content_type"), item.get("content")
        if not (isinstance(filename, str) and filename and isinstance(content_type, str) and "/" in content_type):
            raise ValueError("an attachment needs a filename and a content_type such as text/calendar")
        if not isinstance(content, str) or len(content) > ATTACHMENT_MAX_CHARS:
            raise ValueError("an attachment's content must be text of at most 256 KiB")
        cleaned.append({"filename": filename, "content_type": content_type, "content": content})
    return cleaned


async def mail_queue(
    session: AsyncSession, *, to: str, subject: str, body: str, attachments: list[dict[str, Any]] | None = None
) -> OutboxMessage:
    """Record a message in the caller's transaction; it is sent after the commit.

    ``attachments``: ``[{"filename": "invite.ics", "content_type": "text/calendar; method=REQUEST;
    charset=UTF-8", "content": "BEGIN:VCALENDAR..."}]`` (text content).
    """
    domain = get_settings().mail_from.rsplit("@", 1)[-1].rstrip(">") or "cadenza.localhost"
    msg = OutboxMessage(
        to_address=to,
        subject=subject,
        body_text=body,
        message_id=make_msgid(domain=domain),
        attachments=_clean_attachments(attachments),
    )
    session.add(msg)
    await session.flush()
    msg_id = str(msg.id)
    after_commit(session, lambda: mail_send.send(msg_id))
    return msg


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    """``"text/calendar; method=REQUEST; charset=UTF-8"`` -> ("text", "calendar", {"method": ..., "charset": ...})."""
    main, *raw_params = (part.strip() for part in value.split(";"))
    maintype, _, subtype = main.lower().partition("/")
    params = {}
    for raw in raw_params:
        key, sep, val = raw.partition("=")
        if sep and key.strip():
            params[key.strip().lower()] = val.strip().strip('"')
    return maintype or "application", subtype or "octet-stream", params


def build_email(msg: OutboxMessage, *, sender: str) -> EmailMessage:
    """The MIME message for an outbox row.

    A calendar attachment goes in the way Google Calendar sends its own invitations, which Gmail,
    Apple Mail and Outlook all recognise: a ``text/calendar; method=...`` alternative to the text
    body (so the client shows the invitation with its buttons) plus the same data as an
    ``application/ics`` file (so it can also be opened or imported by hand). Other attachments are
    plain file attachments.
    """
    email = EmailMessage()
    email["From"] = sender
    email["To"] = msg.to_address
    email["Subject"] = msg.subject
    email["Message-ID"] = msg.message_id
    email.set_content(msg.body_text)
    for item in msg.attachments or []:
        maintype, subtype, params = _content_type(item["content_type"])
        charset = params.pop("charset", "utf-8")
        if (maintype, subtype) == ("text", "calendar"):
            data = item["content"].encode(charset)  # bytes: the CRLF line ends iCalendar asks for stay intact
            email.add_alternative(data, maintype="text", subtype="calendar", params={**params, "charset": charset})
            email.add_attachment(data, maintype="application", subtype="ics", filename=item["filename"])
        elif maintype == "text":
            email.add_attachment(
                item["content"], subtype=subtype, charset=charset, params=params, filename=item["filename"]
            )
        else:
            email.add_attachment(
                item["content"].encode("utf-8"),
                maintype=maintype,
                subtype=subtype,
                params=params,
                filename=item["filename"],
            )
    return email


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
        email = build_email(msg, sender=settings.mail_from)
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
