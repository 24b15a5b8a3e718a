"""Stripe Connect (Express accounts, separate charges and transfers) through the official SDK.

Every call goes through one ``stripe.StripeClient``; tests hand it a recording ``http_client`` and
check each request against Stripe's documented parameters. Building the provider makes no request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from payouts.providers import (
    PACKAGE_CHECKOUT_MINUTES,
    CheckoutInfo,
    ProviderError,
    _refund_metadata,
    package_reference,
    transfer_group,
)

#: Stripe accepts a Checkout Session ``expires_at`` between 30 minutes and 24 hours after creation.
#: A hold is shorter: the session outlives it by a little, the hold's expiry job expires the session,
#: and a payment that still arrives for a lapsed hold is refunded automatically.
MIN_SESSION_LIFETIME = timedelta(minutes=31)


def _plain(obj: Any) -> dict[str, Any]:
    # StripeObject is a dict subclass; its to_dict()/to_dict_recursive() are deprecated in stripe 13.
    return dict(obj)


class StripeProvider:
    name = "stripe"

    def __init__(self, *, api_key: str, http_client: stripe.HTTPClient | None = None) -> None:
        self.test_mode = api_key.startswith(("sk_test_", "rk_test_"))
        self.client = stripe.StripeClient(
            api_key,
            http_client=http_client or stripe.HTTPXClient(),
            max_network_retries=2,
        )

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return _plain(await fn(*args, **kwargs))
        except stripe.StripeError as exc:
            raise ProviderError(f"stripe: {exc.__class__.__name__}: {exc.user_message or exc}") from exc

    async def create_account(self, *, tutor_id: uuid.UUID, email: str, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.accounts.create_async,
            {
                "type": "express",
                "email": email,
                "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
                "metadata": {"tutor_id": str(tutor_id)},
            },
            {"idempotency_key": idempotency_key},
        )

    async def retrieve_account(self, account_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.accounts.retrieve_async, account_id)

    async def account_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        link = await self._call(
            self.client.v1.account_links.create_async,
            {"account": account_id, "refresh_url": refresh_url, "return_url": return_url, "type": "account_onboarding"},
        )
        return link["url"]

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
        return await self._checkout(
            reference=str(booking_id),
            transfer_group=transfer_group(booking_id),
            metadata={"booking_id": str(booking_id)},
            amount=amount,
            currency=currency,
            description=description,
            customer_email=customer_email,
            expires_at=max(expires_at, datetime.now(UTC) + MIN_SESSION_LIFETIME),
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=idempotency_key,
        )

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
        """A lesson package: one line item in the tutor's currency, the package id in the session's
        and the payment intent's metadata (webhooks tell a package from a booking by it)."""
        return await self._checkout(
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
    ) -> CheckoutInfo:
        """One Checkout Session: one line item, the reference and metadata on the session and on
        its payment intent (with the transfer group of the later transfer)."""
        session = await self._call(
            self.client.v1.checkout.sessions.create_async,
            {
                "mode": "payment",
                "line_items": [
                    {
                        "price_data": {
                            "currency": currency.lower(),
                            "unit_amount": amount,
                            "product_data": {"name": description},
                        },
                        "quantity": 1,
                    }
                ],
                "customer_email": customer_email,
                "client_reference_id": reference,
                "metadata": metadata,
                "payment_intent_data": {"transfer_group": transfer_group, "metadata": metadata},
                "expires_at": int(expires_at.timestamp()),
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            {"idempotency_key": idempotency_key},
        )
        return CheckoutInfo(
            id=session["id"], url=session["url"], expires_at=datetime.fromtimestamp(session["expires_at"], UTC)
        )

    async def expire_checkout(self, session_id: str) -> bool:
        try:
            session = await self.client.v1.checkout.sessions.expire_async(session_id)
        except stripe.InvalidRequestError:
            # Not open any more: expired already, or complete (its event brings the payment).
            session = await self.client.v1.checkout.sessions.retrieve_async(session_id)
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return session.status == "expired"

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.payment_intents.retrieve_async, payment_intent_id)

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.charges.retrieve_async, charge_id)

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount: int,
        idempotency_key: str,
        booking_id: uuid.UUID | None,
        package_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            self.client.v1.refunds.create_async,
            {
                "payment_intent": payment_intent_id,
                "amount": amount,
                "metadata": _refund_metadata(booking_id, package_id),
            },
            {"idempotency_key": idempotency_key},
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
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "destination": destination,
            "transfer_group": transfer_group,
            "metadata": {"booking_id": str(booking_id)},
        }
        if source_transaction:
            params["source_transaction"] = source_transaction
        return await self._call(self.client.v1.transfers.create_async, params, {"idempotency_key": idempotency_key})

    async def reverse_transfer(self, *, transfer_id: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        return await self._call(
            self.client.v1.transfers.reversals.create_async,
            transfer_id,
            {"amount": amount},
            {"idempotency_key": idempotency_key},
        )

    async def retrieve_transfer(self, transfer_id: str) -> dict[str, Any]:
        return await self._call(self.client.v1.transfers.retrieve_async, transfer_id)

    async def list_payouts(self, account_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The connected account's payouts (its own objects: the Stripe-Account header)."""
        page = await self._call(self.client.v1.payouts.list_async, {"limit": limit}, {"stripe_account": account_id})
        return list(page.get("data", []))
