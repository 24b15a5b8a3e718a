"""Jobs: broker selection, enqueue after commit, and mail as the first real actor."""

import asyncio
import os
import socket
import uuid

import pytest
from sqlalchemy import select

from marketplace import jobs
from marketplace.db import after_commit, session_factory, transaction
from marketplace.mail import OutboxMessage, mail_deliver, mail_give_up, mail_queue
from marketplace.settings import get_settings
from tests.conftest import need_service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def queued_message(to: str = "ana@example.com") -> uuid.UUID:
    sent = []
    original = jobs.broker.enqueue
    try:
        jobs.broker.enqueue = lambda message, **kw: sent.append(message)  # keep it for the test to run by hand
        async with transaction() as session:
            msg = await mail_queue(session, to=to, subject="Hello", body="Body text")
            msg_id = msg.id
        assert [m.actor_name for m in sent] == ["mail_send"]
    finally:
        jobs.broker.enqueue = original
    return msg_id


async def status(msg_id: uuid.UUID) -> OutboxMessage:
    async with session_factory()() as session:
        return (await session.execute(select(OutboxMessage).where(OutboxMessage.id == msg_id))).scalar_one()


def test_broker_follows_the_url_scheme():
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    assert isinstance(jobs.make_broker("stub://"), StubBroker)
    assert isinstance(jobs.make_broker("redis://127.0.0.1:6379/0"), RedisBroker)
    assert isinstance(jobs.make_broker("amqp://guest:guest@127.0.0.1:5672/%2F"), RabbitmqBroker)


async def test_jobs_are_sent_only_after_commit_and_dropped_on_rollback():
    ran: list[str] = []
    async with transaction() as session:
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    with pytest.raises(RuntimeError):
        async with transaction() as session:
            after_commit(session, lambda: ran.append("rolled back"))
            raise RuntimeError("boom")
    async with transaction() as session:
        pass
    assert ran == ["committed"]


async def test_mail_without_smtp_is_stored_in_the_outbox_idempotently():
    msg_id = await queued_message()
    assert (await status(msg_id)).status == "queued"
    assert await mail_deliver(message_id=msg_id) == "stored"
    assert await mail_deliver(message_id=msg_id) == "stored"
    assert (await status(msg_id)).attempts == 1


async def test_the_in_process_worker_delivers_queued_mail(app, client, drain_jobs):
    from tests.helpers import make_user, outbox, post_form

    await make_user(email="ana@example.com")
    await post_form(client, "/forgot-password", {"email": "ana@example.com"})
    await asyncio.to_thread(drain_jobs)
    (mail,) = await outbox("ana@example.com")
    assert mail.status == "stored" and mail.attempts == 1


async def test_mail_is_sent_over_smtp_when_configured(monkeypatch):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        msg_id = await queued_message()
        monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{port}")
        get_settings.cache_clear()
        assert await mail_deliver(message_id=msg_id) == "sent"
        assert await mail_deliver(message_id=msg_id) == "sent"  # not sent twice
    finally:
        controller.stop()
        monkeypatch.delenv("SMTP_URL")
        get_settings.cache_clear()
    assert len(received) == 1
    assert received[0].rcpt_tos == ["ana@example.com"]
    assert b"Subject: Hello" in received[0].content
    row = await status(msg_id)
    assert row.sent_at is not None and row.last_error is None


async def test_smtp_failure_is_recorded_and_raised_for_retry_then_given_up(monkeypatch):
    msg_id = await queued_message()
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    try:
        with pytest.raises(OSError):
            await mail_deliver(message_id=msg_id)
    finally:
        monkeypatch.delenv("SMTP_URL")
        get_settings.cache_clear()
    row = await status(msg_id)
    assert row.status == "queued" and row.attempts == 1 and "ConnectionRefused" in row.last_error
    await mail_give_up(message_id=msg_id)
    assert (await status(msg_id)).status == "failed"


def test_mail_actor_retries_with_backoff():
    from marketplace.mail import mail_send

    assert mail_send.options["max_retries"] == 8
    assert mail_send.options["min_backoff"] == 5_000
    assert mail_send.options["on_retry_exhausted"] == "mail_failed"


def test_real_brokers_answer_when_configured():
    """In CI the suite runs with BROKER_URL=redis://...; RabbitMQ is checked when AMQP_URL is set."""
    url = get_settings().broker_url
    if url.startswith("stub"):
        return
    try:
        jobs.broker_ping()
    except Exception as exc:
        need_service("broker", f"{url}: {exc}")
    amqp = os.environ.get("AMQP_URL")
    if amqp:
        broker = jobs.make_broker(amqp)
        import pika

        try:
            pika.BlockingConnection(broker.parameters).close()
        except Exception as exc:
            need_service("RabbitMQ", f"{amqp}: {exc}")
