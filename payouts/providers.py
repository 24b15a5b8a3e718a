"""The payment-provider interface and the offline provider (the embedded default).

Two providers implement :class:`PaymentProvider`:

* :class:`payouts.stripe.StripeProvider` when ``STRIPE_SECRET_KEY`` is set (Stripe Connect, Express
  accounts, separate charges and transfers);
* :class:`OfflineProvider` otherwise: a test-mode stand-in that keeps Stripe-shaped objects in the
  database (``offline_provider_objects``) and whose checkout page (``/pay/offline/{id}``), clearly
  marked TEST MODE, emits the same events Stripe would send; they go through the same processing
  as verified webhooks.

Provider calls never run inside an open database transaction (the offline provider opens its own).
Every call that creates money movement carries an idempotency key: repeating it returns the object
made the first time.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from marketplace.db import session_factory, transaction


@dataclass(frozen=True)
class CheckoutInfo:
    id: str
    url: str
    expires_at: datetime | None


class ProviderError(RuntimeError):
    """The provider refused or could not be reached; the caller retries later (jobs) or says so."""


class PaymentProvider(Protocol):
    name: str
    test_mode: bool

    async def create_account(self, *, tutor_id: uuid.UUID, email: str, idempotency_key: str) -> dict[str, Any]: ...

    async def retrieve_account(self, account_id: str) -> dict[str, Any]: ...

    async def account_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str: ...

    async def create_checkout(
        self,
        *,
        booking_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
        customer_email: str,
        expires_at: datetime,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutInfo: ...

    async def create_package_checkout(
        self,
        *,
        package_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
        customer_email: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutInfo:
        """A checkout for a lesson package (``package_id`` in metadata; no booking)."""
        ...

    async def expire_checkout(self, session_id: str) -> bool:
        """Expire an open session; False when it was completed (paid) meanwhile."""
        ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]: ...

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]: ...

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount: int,
        idempotency_key: str,
        booking_id: uuid.UUID | None,
        package_id: uuid.UUID | None = None,
    ) -> dict[str, Any]: ...

    async def transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        transfer_group: str,
        source_transaction: str | None,
        idempotency_key: str,
        booking_id: uuid.UUID,
    ) -> dict[str, Any]: ...

    async def reverse_transfer(self, *, transfer_id: str, amount: int, idempotency_key: str) -> dict[str, Any]: ...

    async def retrieve_transfer(self, transfer_id: str) -> dict[str, Any]: ...


def transfer_group(booking_id: uuid.UUID) -> str:
    return f"booking_{booking_id}"


def _refund_metadata(booking_id: uuid.UUID | None, package_id: uuid.UUID | None) -> dict[str, str]:
    """A refund names what it refunds: a booking's payment, or a lesson package (pro-rata refund)."""
    if package_id is not None and booking_id is None:
        return {"package_id": str(package_id)}
    out = {"booking_id": str(booking_id)}
    if package_id is not None:
        out["package_id"] = str(package_id)
    return out


def package_reference(package_id: uuid.UUID) -> str:
    """The checkout's ``client_reference_id`` and the charge's transfer group for a package (each
    lesson paid by a credit is transferred in its own booking's group, sourced from this charge)."""
    return f"package_{package_id}"


#: A package checkout stays open this long (Stripe accepts 30 minutes to 24 hours).
PACKAGE_CHECKOUT_MINUTES = 60


# ---- offline provider ----------------------------------------------------------------------------


def _offline_id(prefix: str, key: str) -> str:
    return f"{prefix}_test_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class OfflineProvider:
    """Test-mode payments without any outside service (see the module doc)."""

    name = "offline"
    test_mode = True

    async def _get(self, object_id: str) -> dict[str, Any] | None:
        from payouts.models import OfflineObject

        async with session_factory()() as session:
            row = await session.get(OfflineObject, object_id)
            return dict(row.data) if row is not None else None

    async def _put_once(self, object_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store ``data`` under ``object_id`` unless it exists (idempotency); return what is stored."""
        from payouts.models import OfflineObject

        async with transaction() as session:
            row = await session.get(OfflineObject, object_id)
            if row is None:
                row = OfflineObject(id=object_id, kind=kind, data=data)
                session.add(row)
            return dict(row.data)

    async def _update(self, object_id: str, **changes: Any) -> dict[str, Any]:
        from payouts.models import OfflineObject

        async with transaction() as session:
            row = await session.get(OfflineObject, object_id)
            if row is None:
                raise ProviderError(f"no such object: {object_id}")
            row.data = {**row.data, **changes}
            return dict(row.data)

    async def create_account(self, *, tutor_id: uuid.UUID, email: str, idempotency_key: str) -> dict[str, Any]:
        account_id = _offline_id("acct", idempotency_key)
        data = {
            "id": account_id,
            "object": "account",
            "type": "express",
            "email": email,
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "requirements": {"currently_due": ["external_account", "tos_acceptance.date"]},
            "metadata": {"tutor_id": str(tutor_id)},
        }
        return await self._put_once(account_id, "account", data)

    async def retrieve_account(self, account_id: str) -> dict[str, Any]:
        data = await self._get(account_id)
        if data is None:
            raise ProviderError(f"no such account: {account_id}")
        return data

    async def account_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        return f"/payouts/offline-onboarding/{account_id}"

    async def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """The offline onboarding page's submit: the account can take charges and receive payouts."""
        return await self._update(
            account_id,
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            requirements={"currently_due": []},
        )

    async def create_checkout(
        self,
        *,
        booking_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
        customer_email: str,
        expires_at: datetime,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutInfo:
        stored = await self._checkout(
            reference=str(booking_id),
            transfer_group=transfer_group(booking_id),
            metadata={"booking_id": str(booking_id)},
            amount=amount,
            currency=currency,
            description=description,
            customer_email=customer_email,
            expires_at=expires_at,
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=idempotency_key,
        )
        return CheckoutInfo(id=stored["id"], url=stored["url"], expires_at=expires_at)

    async def create_package_checkout(
        self,
        *,
        package_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
        customer_email: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutInfo:
        from datetime import UTC, timedelta

        stored = await self._checkout(
            reference=package_reference(package_id),
            transfer_group=package_reference(package_id),
            metadata={"package_id": str(package_id)},
            amount=amount,
            currency=currency,
            description=description,
            customer_email=customer_email,
            expires_at=datetime.now(UTC) + timedelta(minutes=PACKAGE_CHECKOUT_MINUTES),
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=idempotency_key,
        )
        return CheckoutInfo(
            id=stored["id"], url=stored["url"], expires_at=datetime.fromtimestamp(stored["expires_at"], UTC)
        )

    async def _checkout(
        self,
        *,
        reference: str,
        transfer_group: str,
        metadata: dict[str, str],
        amount: int,
        currency: str,
        description: str,
        customer_email: str,
        expires_at: datetime,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """One test-mode checkout session, stored once per idempotency key (as Stripe would)."""
        session_id = _offline_id("cs", idempotency_key)
        data = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": currency.lower(),
            "client_reference_id": reference,
            "metadata": metadata,
            "description": description,
            "customer_email": customer_email,
            "expires_at": int(expires_at.timestamp()),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "payment_intent": None,
            "transfer_group": transfer_group,
            "url": f"/pay/offline/{session_id}",
        }
        return await self._put_once(session_id, "checkout.session", data)

    async def retrieve_checkout(self, session_id: str) -> dict[str, Any] | None:
        return await self._get(session_id)

    async def pay_checkout(self, session_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """The test-mode "card" was accepted: a payment intent and a charge exist; returns the session."""
        data = await self._get(session_id)
        if data is None:
            raise ProviderError(f"no such checkout session: {session_id}")
        if data["status"] != "open":
            return data
        pi_id = _offline_id("pi", session_id)
        ch_id = _offline_id("ch", session_id)
        await self._put_once(
            ch_id,
            "charge",
            {
                "id": ch_id,
                "object": "charge",
                "amount": data["amount_total"],
                "amount_refunded": 0,
                "currency": data["currency"],
                "payment_intent": pi_id,
                "transfer_group": data["transfer_group"],
                "paid": succeed,
            },
        )
        await self._put_once(
            pi_id,
            "payment_intent",
            {
                "id": pi_id,
                "object": "payment_intent",
                "amount": data["amount_total"],
                "currency": data["currency"],
                "latest_charge": ch_id,
                "status": "succeeded" if succeed else "requires_payment_method",
                "transfer_group": data["transfer_group"],
            },
        )
        return await self._update(
            session_id, status="complete", payment_status="paid" if succeed else "unpaid", payment_intent=pi_id
        )

    async def expire_checkout(self, session_id: str) -> bool:
        data = await self._get(session_id)
        if data is None or data["status"] == "complete":
            return False
        if data["status"] == "open":
            await self._update(session_id, status="expired")
        return True

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        data = await self._get(payment_intent_id)
        if data is None:
            raise ProviderError(f"no such payment intent: {payment_intent_id}")
        return data

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        data = await self._get(charge_id)
        if data is None:
            raise ProviderError(f"no such charge: {charge_id}")
        return data

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount: int,
        idempotency_key: str,
        booking_id: uuid.UUID | None,
        package_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        refund_id = _offline_id("re", idempotency_key)
        existing = await self._get(refund_id)
        if existing is not None:
            return existing
        intent = await self.retrieve_payment_intent(payment_intent_id)
        charge = await self.retrieve_charge(intent["latest_charge"])
        if charge["amount_refunded"] + amount > charge["amount"]:
            raise ProviderError("refund larger than the remaining charge")
        await self._update(charge["id"], amount_refunded=charge["amount_refunded"] + amount)
        return await self._put_once(
            refund_id,
            "refund",
            {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "charge": charge["id"],
                "payment_intent": payment_intent_id,
                "currency": charge["currency"],
                "status": "succeeded",
                "metadata": _refund_metadata(booking_id, package_id),
            },
        )

    async def transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        transfer_group: str,
        source_transaction: str | None,
        idempotency_key: str,
        booking_id: uuid.UUID,
    ) -> dict[str, Any]:
        transfer_id = _offline_id("tr", idempotency_key)
        return await self._put_once(
            transfer_id,
            "transfer",
            {
                "id": transfer_id,
                "object": "transfer",
                "amount": amount,
                "amount_reversed": 0,
                "currency": currency.lower(),
                "destination": destination,
                "transfer_group": transfer_group,
                "source_transaction": source_transaction,
                "reversed": False,
                "created": int(time.time()),
                "metadata": {"booking_id": str(booking_id)},
            },
        )

    async def reverse_transfer(self, *, transfer_id: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        reversal_id = _offline_id("trr", idempotency_key)
        existing = await self._get(reversal_id)
        if existing is not None:
            return existing
        transfer = await self.retrieve_transfer(transfer_id)
        if transfer["amount_reversed"] + amount > transfer["amount"]:
            raise ProviderError("reversal larger than the transfer")
        reversed_total = transfer["amount_reversed"] + amount
        await self._update(transfer_id, amount_reversed=reversed_total, reversed=reversed_total == transfer["amount"])
        return await self._put_once(
            reversal_id,
            "transfer_reversal",
            {"id": reversal_id, "object": "transfer_reversal", "amount": amount, "transfer": transfer_id},
        )

    async def retrieve_transfer(self, transfer_id: str) -> dict[str, Any]:
        data = await self._get(transfer_id)
        if data is None:
            raise ProviderError(f"no such transfer: {transfer_id}")
        return data


# ---- choosing the provider -------------------------------------------------------------------------

_override: PaymentProvider | None = None
_cached: tuple[str, PaymentProvider] | None = None


def set_provider(provider: PaymentProvider | None) -> None:
    """Tests (and the benchmark) put a provider in place; ``None`` goes back to the settings."""
    global _override
    _override = provider


def get_provider() -> PaymentProvider:
    """Stripe when ``STRIPE_SECRET_KEY`` is set, else the offline provider. Building the Stripe
    provider makes no request: the app starts without calling Stripe."""
    global _cached
    if _override is not None:
        return _override
    from marketplace.settings import get_settings

    key = get_settings().stripe_secret_key
    if _cached is None or _cached[0] != key:
        if key:
            from payouts.stripe import StripeProvider

            _cached = (key, StripeProvider(api_key=key))
        else:
            _cached = (key, OfflineProvider())
    return _cached[1]
