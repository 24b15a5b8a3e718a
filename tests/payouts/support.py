"""Builders for the payments tests: a tutor with payouts enabled, a held booking, signed Stripe
webhooks, and a recording Stripe HTTP client that answers with documented JSON shapes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction, utcnow
from payouts.models import LedgerEntry, Payment, PayoutAccount
from scheduling import bookings
from scheduling.models import Booking
from tests.scheduling.bookings_support import bookable_tutor, next_hour, student

WEBHOOK_SECRET = "whsec_test_platform_secret"
CONNECT_SECRET = "whsec_test_connect_secret"


async def enable_payouts(tutor: User, *, provider: str = "offline", account_id: str | None = None) -> PayoutAccount:
    """The tutor's payout account, enabled (the one ``bookable_tutor`` made is updated in place)."""
    async with transaction() as session:
        account = await session.scalar(select(PayoutAccount).where(PayoutAccount.tutor_id == tutor.id))
        if account is None:
            account = PayoutAccount(tutor_id=tutor.id)
            session.add(account)
        account.provider = provider
        account.account_id = account_id or f"acct_test_{tutor.id.hex[:12]}"
        account.charges_enabled = True
        account.payouts_enabled = True
        account.details_submitted = True
        account.requirements_due = []
    return account


async def paid_tutor(email: str = "clara@example.com", **calendar: Any) -> User:
    tutor = await bookable_tutor(email=email, **calendar)
    await enable_payouts(tutor)
    return tutor


async def held_booking(
    tutor: User, learner: User, *, days: int = 2, hour: int = 10, duration: int = 60, starts_at: Any = None
) -> Booking:
    async with transaction() as session:
        return await bookings.booking_hold(
            session,
            student=learner,
            tutor_user_id=tutor.id,
            starts_at=starts_at or next_hour(days, hour),
            duration=duration,
        )


async def setup_held(**kw: Any) -> tuple[User, User, Booking]:
    tutor = await paid_tutor()
    learner = await student()
    booking = await held_booking(tutor, learner, **kw)
    return tutor, learner, booking


async def load_booking(booking_id: uuid.UUID) -> Booking:
    async with session_factory()() as session:
        return await session.get(Booking, booking_id)


async def load_payment(booking_id: uuid.UUID) -> Payment | None:
    async with session_factory()() as session:
        return await session.scalar(select(Payment).where(Payment.booking_id == booking_id))


async def ledger_sums() -> dict[str, int]:
    """Sum of all entries per currency: zero when every transaction balances."""
    async with session_factory()() as session:
        rows = await session.execute(select(LedgerEntry.currency, LedgerEntry.amount))
        sums: dict[str, int] = {}
        for currency, amount in rows.all():
            sums[currency] = sums.get(currency, 0) + amount
        return sums


async def balance(account: str, currency: str = "EUR") -> int:
    async with session_factory()() as session:
        rows = await session.execute(
            select(LedgerEntry.amount).where(LedgerEntry.account == account, LedgerEntry.currency == currency)
        )
        return sum(rows.scalars())


async def lapse_hold(booking_id: uuid.UUID) -> None:
    async with transaction() as session:
        booking = await session.get(Booking, booking_id)
        booking.hold_expires_at = utcnow() - timedelta(minutes=1)


# ---- signed webhooks ------------------------------------------------------------------------------


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header by the documented scheme: ``t=<unix>,v1=<hex HMAC-SHA256 of
    "<t>.<body>" with the endpoint secret>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


_counter = iter(range(1, 10**9))


def event(
    kind: str,
    obj: dict[str, Any],
    *,
    account: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": created if created is not None else int(time.time()) + next(_counter),
        "livemode": False,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": obj},
    }
    if account:
        data["account"] = account
    return data


def checkout_session(
    booking: Booking,
    *,
    session_id: str,
    payment_intent: str = "pi_test_1",
    amount: int | None = None,
    currency: str | None = None,
    payment_status: str = "paid",
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": payment_status,
        "amount_total": booking.price_amount if amount is None else amount,
        "currency": (currency or booking.currency).lower(),
        "client_reference_id": str(booking.id),
        "metadata": {"booking_id": str(booking.id)},
        "payment_intent": payment_intent,
    }


async def deliver(
    client: Any,
    payload: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    path: str = "/webhooks/stripe",
    timestamp: int | None = None,
):
    body = json.dumps(payload).encode()
    return await client.post(
        path,
        content=body,
        headers={"Stripe-Signature": sign(body, secret, timestamp=timestamp), "Content-Type": "application/json"},
    )


# ---- a recording Stripe HTTP client --------------------------------------------------------------


class RecordedRequest:
    def __init__(self, method: str, url: str, headers: dict[str, str], body: str | None) -> None:
        self.method = method.upper()
        parts = urlsplit(url)
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query))
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.params = dict(parse_qsl(body or "", keep_blank_values=True))

    def __repr__(self) -> str:
        return f"{self.method} {self.path} {self.params}"


class FakeStripe(stripe.HTTPClient):
    """Stands in for api.stripe.com at the SDK's HTTP boundary: records every request, answers with
    the documented object shapes, and honours Idempotency-Key like Stripe (same key, same answer)."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, tuple[int, str]] = {}
        self.fail_next: int | None = None  # answer the next requests with this status...
        self.fail_times = 0  # ...this many times (the SDK retries 5xx)

    # sync and async entry points of stripe.HTTPClient
    def request(self, method, url, headers, post_data=None, *, _usage=None):  # type: ignore[override]
        return self._handle(method, url, headers or {}, post_data)

    async def request_async(self, method, url, headers, post_data=None):  # type: ignore[override]
        body, status, hdrs = self._handle(method, url, headers or {}, post_data)
        return body.encode(), status, hdrs

    def close(self) -> None:
        return None

    async def close_async(self) -> None:
        return None

    def sleep_async(self, secs: float):  # pragma: no cover - no retries expected
        import asyncio

        return asyncio.sleep(0)

    def _handle(
        self, method: str, url: str, headers: dict[str, str], post_data: Any
    ) -> tuple[str, int, dict[str, str]]:
        body = post_data.decode() if isinstance(post_data, bytes) else post_data
        req = RecordedRequest(method, url, headers, body)
        self.requests.append(req)
        if self.fail_next is not None and self.fail_times > 0:
            self.fail_times -= 1
            status = self.fail_next
            return json.dumps({"error": {"type": "api_error", "message": "boom"}}), status, {}
        key = req.headers.get("idempotency-key")
        if key and key in self.by_key:
            status, answer = self.by_key[key]
            return answer, status, {"idempotent-replayed": "true"}
        status, obj = self._route(req)
        answer = json.dumps(obj)
        if key:
            self.by_key[key] = (status, answer)
        return answer, status, {"request-id": f"req_{len(self.requests)}"}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:16]}"

    def _route(self, req: RecordedRequest) -> tuple[int, dict[str, Any]]:
        p, m, params = req.path, req.method, req.params
        if m == "POST" and p == "/v1/accounts":
            obj = {
                "id": self._new_id("acct"),
                "object": "account",
                "type": "express",
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "email": params.get("email"),
                "requirements": {"currently_due": ["external_account"], "eventually_due": [], "past_due": []},
                "metadata": {"tutor_id": params.get("metadata[tutor_id]")},
            }
            self.objects[obj["id"]] = obj
            return 200, obj
        if m == "GET" and p.startswith("/v1/accounts/"):
            obj = self.objects.get(p.rsplit("/", 1)[1])
            return (200, obj) if obj else (404, _missing(p))
        if m == "POST" and p == "/v1/account_links":
            return 200, {
                "object": "account_link",
                "created": int(time.time()),
                "expires_at": int(time.time()) + 300,
                "url": f"https://connect.stripe.com/setup/e/{params['account']}/{uuid.uuid4().hex[:8]}",
            }
        if m == "POST" and p == "/v1/checkout/sessions":
            sid = self._new_id("cs_test")
            obj = {
                "id": sid,
                "object": "checkout.session",
                "mode": "payment",
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": int(params["line_items[0][price_data][unit_amount]"]),
                "currency": params["line_items[0][price_data][currency]"],
                "client_reference_id": params.get("client_reference_id"),
                "metadata": {
                    k: params[f"metadata[{k}]"] for k in ("booking_id", "package_id") if f"metadata[{k}]" in params
                },
                "expires_at": int(params["expires_at"]),
                "payment_intent": None,
                "url": f"https://checkout.stripe.com/c/pay/{sid}",
            }
            self.objects[sid] = obj
            return 200, obj
        if m == "POST" and p.startswith("/v1/checkout/sessions/") and p.endswith("/expire"):
            obj = self.objects.get(p.split("/")[4])
            if obj is None or obj["status"] != "open":
                return 400, {
                    "error": {"type": "invalid_request_error", "message": "Only open sessions can be expired."}
                }
            obj["status"] = "expired"
            return 200, obj
        if m == "GET" and p.startswith("/v1/checkout/sessions/"):
            obj = self.objects.get(p.rsplit("/", 1)[1])
            return (200, obj) if obj else (404, _missing(p))
        if m == "GET" and p.startswith("/v1/payment_intents/"):
            pid = p.rsplit("/", 1)[1]
            obj = self.objects.get(pid) or {
                "id": pid,
                "object": "payment_intent",
                "latest_charge": "ch_" + pid[3:],
                "status": "succeeded",
            }
            return 200, obj
        if m == "GET" and p.startswith("/v1/charges/"):
            obj = self.objects.get(p.rsplit("/", 1)[1])
            return (200, obj) if obj else (404, _missing(p))
        if m == "POST" and p == "/v1/refunds":
            obj = {
                "id": self._new_id("re"),
                "object": "refund",
                "amount": int(params["amount"]),
                "payment_intent": params["payment_intent"],
                "status": "succeeded",
                "currency": "eur",
                "metadata": {"booking_id": params.get("metadata[booking_id]")},
            }
            self.objects[obj["id"]] = obj
            return 200, obj
        if m == "POST" and p == "/v1/transfers":
            obj = {
                "id": self._new_id("tr"),
                "object": "transfer",
                "amount": int(params["amount"]),
                "amount_reversed": 0,
                "currency": params["currency"],
                "destination": params["destination"],
                "transfer_group": params.get("transfer_group"),
                "source_transaction": params.get("source_transaction"),
                "reversed": False,
                "reversals": {"object": "list", "data": []},
            }
            self.objects[obj["id"]] = obj
            return 200, obj
        if m == "POST" and p.startswith("/v1/transfers/") and p.endswith("/reversals"):
            tid = p.split("/")[3]
            transfer = self.objects[tid]
            transfer["amount_reversed"] += int(params["amount"])
            return 200, {
                "id": self._new_id("trr"),
                "object": "transfer_reversal",
                "amount": int(params["amount"]),
                "transfer": tid,
                "currency": transfer["currency"],
            }
        if m == "GET" and p.startswith("/v1/transfers/"):
            obj = self.objects.get(p.rsplit("/", 1)[1])
            return (200, obj) if obj else (404, _missing(p))
        if m == "GET" and p == "/v1/payouts":
            return 200, {"object": "list", "data": [], "has_more": False, "url": "/v1/payouts"}
        return 404, _missing(p)

    def last(self, method: str, path_prefix: str) -> RecordedRequest:
        for req in reversed(self.requests):
            if req.method == method and req.path.startswith(path_prefix):
                return req
        raise AssertionError(f"no {method} {path_prefix} among {self.requests}")


def _missing(path: str) -> dict[str, Any]:
    return {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": f"No such object: {path}"}
    }
