"""Stripe webhook endpoints: the platform's (``/webhooks/stripe``) and Connect's
(``/webhooks/stripe-connect``). The signature is checked on the raw body with the endpoint's secret
(``stripe.WebhookSignature.verify_header``, as ``stripe.Webhook.construct_event`` does: HMAC-SHA256
over ``t.body``, with a timestamp tolerance); a verified event is stored once by its id (concurrent
deliveries share one transaction) and applied by a job, so the answer is immediate."""

from __future__ import annotations

import json
import logging

import stripe
from litestar import Controller, Request, post
from litestar.response import Response

from marketplace.settings import get_settings
from payouts.services import event_receive

log = logging.getLogger(__name__)

#: Older signatures are refused (replays of captured deliveries); Stripe's own default.
TOLERANCE_SECONDS = 300

PLATFORM_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.closed",
        "transfer.reversed",
    }
)
CONNECT_EVENTS = frozenset({"account.updated", "payout.paid", "payout.failed"})


async def _receive(request: Request, *, secret: str, endpoint: str) -> Response:
    if not secret:
        return Response({"error": "webhooks are not configured"}, status_code=404)
    body = await request.body()
    signature = request.headers.get("stripe-signature", "")
    # What ``stripe.Webhook.construct_event`` does, without building a StripeObject we do not use
    # (a tenth of a millisecond): the signature over the raw bytes, then the verified bytes as JSON.
    try:
        stripe.WebhookSignature.verify_header(body.decode("utf-8"), signature, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return Response({"error": "invalid signature"}, status_code=400)
    except ValueError:  # not UTF-8
        return Response({"error": "invalid payload"}, status_code=400)
    try:
        payload = json.loads(body)
    except ValueError:
        return Response({"error": "invalid payload"}, status_code=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
        return Response({"error": "invalid payload"}, status_code=400)
    if endpoint == "connect" and not payload.get("account"):
        return Response({"error": "not a Connect event"}, status_code=400)
    known = CONNECT_EVENTS if endpoint == "connect" else PLATFORM_EVENTS
    if payload.get("type") not in known:
        return Response({"received": True, "ignored": True})  # acknowledged, nothing to do
    new = await event_receive(endpoint=endpoint, event=payload)
    log.debug("webhook %s %s new=%s", endpoint, payload["id"], new)
    return Response({"received": True, "duplicate": not new})


class StripeWebhookController(Controller):
    path = "/webhooks"
    include_in_schema = False
    opt = {"skip_session": True}

    @post("/stripe", name="webhook_stripe", status_code=200)
    async def platform(self, request: Request) -> Response:
        return await _receive(request, secret=get_settings().stripe_webhook_secret, endpoint="platform")

    @post("/stripe-connect", name="webhook_stripe_connect", status_code=200)
    async def connect(self, request: Request) -> Response:
        return await _receive(request, secret=get_settings().stripe_connect_webhook_secret, endpoint="connect")
