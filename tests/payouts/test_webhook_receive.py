"""The Stripe webhook request path: the signature checked on the raw bytes, bad payloads refused
with a clear 400 and nothing stored, concurrent deliveries stored together (group commit) once by
id, and each new event's job sent once, before its delivery is answered."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from sqlalchemy import select

from marketplace.db import session_factory
from payouts.models import WebhookEvent
from tests.payouts.support import CONNECT_SECRET, WEBHOOK_SECRET, deliver, event, sign


async def _events() -> list[WebhookEvent]:
    async with session_factory()() as session:
        return list((await session.execute(select(WebhookEvent))).scalars())


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",  # JSON, but not an event object
        b'{"type": "checkout.session.expired", "data": {"object": {}}}',  # no id
        b'{"id": 42, "type": "checkout.session.expired"}',  # an id that is not a string
        b'{"id": "evt_1", "type": "checkout.session.expired"',  # cut short
        b"\xff\xfe not UTF-8",
    ],
)
async def test_signed_but_malformed_payloads_are_refused_and_nothing_is_stored(stripe_fake, client, body):
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json() == {"error": "invalid payload"}
    assert await _events() == []


async def test_a_valid_signature_for_another_body_is_refused(stripe_fake, client):
    payload = event("checkout.session.expired", {"id": "cs_test_1", "object": "checkout.session"})
    body = json.dumps(payload).encode()
    other = json.dumps({**payload, "id": "evt_other"}).encode()
    response = await client.post(
        "/webhooks/stripe", content=other, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.status_code == 400 and response.json() == {"error": "invalid signature"}
    assert await _events() == []


async def test_connect_deliveries_are_stored_with_their_account(stripe_fake, client):
    payload = event("payout.paid", {"id": "po_1", "object": "payout", "amount": 100}, account="acct_9")
    response = await deliver(client, payload, secret=CONNECT_SECRET, path="/webhooks/stripe-connect")
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    (stored,) = await _events()
    assert (stored.event_id, stored.endpoint, stored.account, stored.status) == (
        payload["id"],
        "connect",
        "acct_9",
        "pending",
    )
    assert stored.payload == payload


async def test_concurrent_events_share_a_transaction_and_each_new_one_is_sent_to_a_job_once(monkeypatch):
    from payouts import services
    from payouts.jobs import process_event

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        process_event, "send", lambda event_id: sent.append((event_id, threading.current_thread().name))
    )
    batches: list[int] = []
    store = services._store_events

    async def counting(batch):
        batches.append(len(batch))
        return await store(batch)

    monkeypatch.setattr(services, "_store_events", counting)
    same = event("checkout.session.expired", {"id": "cs_test_same", "object": "checkout.session"})
    others = [
        event("checkout.session.expired", {"id": f"cs_test_{i}", "object": "checkout.session"}) for i in range(20)
    ]
    results = await asyncio.gather(
        *(services.event_receive(endpoint="platform", event=payload) for payload in [same] * 5 + others)
    )
    # every job was sent by the time the callers had their answers
    assert results.count(True) == 21 and results[:5].count(True) == 1
    assert sorted(event_id for event_id, _thread in sent) == sorted(e["id"] for e in [same, *others])
    assert all(thread != threading.main_thread().name for _id, thread in sent)  # not on the event loop
    assert sum(batches) == 25 and len(batches) <= 2
    # a replay: no new row, no second job
    assert await services.event_receive(endpoint="platform", event=same) is False
    assert len(sent) == 21 and len(await _events()) == 21
