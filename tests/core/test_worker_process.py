"""`marketplace worker` consumes jobs from a real broker (Redis) in its own process."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import dramatiq

from marketplace import jobs
from marketplace.db import transaction
from marketplace.mail import OutboxMessage
from marketplace.settings import get_settings
from tests.conftest import need_service


def redis_url() -> str:
    return get_settings().redis_url or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_worker_process_delivers_mail_from_redis():
    url = redis_url()
    broker = jobs.make_broker(url)
    try:
        broker.client.ping()
    except Exception as exc:
        need_service("Redis", f"{url}: {exc}")
    broker.client.flushdb()
    async with transaction() as session:
        msg = OutboxMessage(to_address="ana@example.com", subject="Hi", body_text="Body", message_id="<t@x>")
        session.add(msg)
    broker.declare_queue("mail")
    broker.enqueue(
        dramatiq.Message(queue_name="mail", actor_name="mail_send", args=(str(msg.id),), kwargs={}, options={})
    )
    env = {**os.environ, "BROKER_URL": url}
    marketplace = Path(sys.executable).with_name("marketplace")
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the test polls the outbox meanwhile
        [str(marketplace), "worker", "--processes", "1", "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 45
        status = "queued"
        while time.monotonic() < deadline and status != "stored":
            await asyncio.sleep(0.5)
            async with transaction(write=False) as session:
                status = (await session.get(OutboxMessage, msg.id, populate_existing=True)).status
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert status == "stored"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.client.flushdb()
