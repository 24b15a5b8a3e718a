from __future__ import annotations

import pytest

from marketplace.settings import get_settings
from payouts.providers import set_provider
from tests.payouts.support import CONNECT_SECRET, WEBHOOK_SECRET, FakeStripe

STRIPE_KEY = "sk_test_cadenza_0123456789"


@pytest.fixture
def stripe_fake(monkeypatch):
    """Stripe settings in the environment and the Stripe provider talking to a recording fake."""
    from payouts.stripe import StripeProvider

    monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_KEY)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_cadenza")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
    get_settings.cache_clear()
    fake = FakeStripe()
    set_provider(StripeProvider(api_key=STRIPE_KEY, http_client=fake))
    yield fake
    set_provider(None)
    monkeypatch.undo()
    get_settings.cache_clear()
