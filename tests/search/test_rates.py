"""The admin-maintained exchange-rate table: the admin page (validation, audit), search using the
table at query time, and the re-index a change schedules for engines that precompute prices."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction
from search.models import ExchangeRate
from search.rates import SEED_RATES, current_rates, parse_rate
from tests.helpers import log_in, make_user, post_form
from tests.search.test_pages_api import indexed  # noqa: F401  (fixture)


@pytest.fixture
async def seeded() -> None:
    """The table as the migration seeds it (tests start from empty tables)."""
    async with transaction() as session:
        for code, rate in SEED_RATES.items():
            session.add(ExchangeRate(currency=code, rate=str(rate)))


async def as_admin(client):
    await make_user(email="root@example.com", role="admin")
    await log_in(client, "root@example.com", "correct horse battery")


def test_parse_rate_accepts_positive_numbers_within_bounds():
    assert parse_rate("1.08") == Decimal("1.08")
    assert parse_rate(" 1,5 ") == Decimal("1.5")
    assert parse_rate("162") == Decimal("162")
    for bad in ("", "0", "-1", "abc", "NaN", "Infinity", "1e9", "0.00001", "1" * 40, None):
        assert parse_rate(bad) is None, bad


async def test_only_admins_see_the_rates_page(client, seeded):
    assert (await client.get("/admin/rates", follow_redirects=False)).status_code in (302, 303, 401, 403)
    await make_user(email="sam@example.com")
    await log_in(client, "sam@example.com", "correct horse battery")
    assert (await client.get("/admin/rates")).status_code == 403


async def test_admin_changes_a_rate_and_the_change_is_audited(client, seeded, drain_jobs):
    await as_admin(client)
    page = await client.get("/admin/rates")
    assert page.status_code == 200 and "USD" in page.text and "1.08" in page.text
    saved = await post_form(client, "/admin/rates", {"currency": "usd", "rate": "1,25", "reason": "ECB fixing"})
    assert saved.status_code == 200 and "The rate of USD was saved." in saved.text
    assert (await current_rates())["USD"] == Decimal("1.25")
    async with session_factory()() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "exchange_rate.set"))).scalar_one()
    assert entry.before == {"currency": "USD", "rate": "1.08"}
    assert entry.after == {"currency": "USD", "rate": "1.25"} and entry.reason == "ECB fixing"
    added = await post_form(client, "/admin/rates", {"currency": "NOK", "rate": "11.7", "reason": "new market"})
    assert added.status_code == 200 and (await current_rates())["NOK"] == Decimal("11.7")
    drain_jobs()


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"currency": "XYZ", "rate": "1.2", "reason": "r"}, "currency"),
        ({"currency": "EUR", "rate": "1.2", "reason": "r"}, "currency"),
        ({"currency": "USD", "rate": "0", "reason": "r"}, "rate"),
        ({"currency": "USD", "rate": "-3", "reason": "r"}, "rate"),
        ({"currency": "USD", "rate": "99999999", "reason": "r"}, "rate"),
        ({"currency": "USD", "rate": "lots", "reason": "r"}, "rate"),
        ({"currency": "USD", "rate": "1.1", "reason": ""}, "reason"),
    ],
)
async def test_bad_rates_are_refused_with_the_form_back(client, seeded, form, field):
    await as_admin(client)
    response = await post_form(client, "/admin/rates", form)
    assert response.status_code == 422 and 'aria-invalid="true"' in response.text
    assert (await current_rates())["USD"] == Decimal("1.08")  # nothing changed
    async with session_factory()() as session:
        assert (await session.execute(select(AuditEntry))).first() is None


async def test_price_filters_follow_a_rate_change_at_once(client, seeded, indexed, drain_jobs):  # noqa: F811
    # Tom charges 34.00 GBP an hour: 40.00 EUR at 0.85 GBP per EUR.
    before = await client.get("/api/v1/tutors?price_min=39&price_max=41")
    assert "tom" in {h["slug"] for h in before.json()["hits"]}
    await as_admin(client)
    await post_form(client, "/admin/rates", {"currency": "GBP", "rate": "0.5", "reason": "test"})
    drain_jobs()
    after = await client.get("/api/v1/tutors?price_min=39&price_max=41")
    assert "tom" not in {h["slug"] for h in after.json()["hits"]}
    cheap = await client.get("/api/v1/tutors?price_min=67&price_max=69")  # 34 GBP at 0.5 = 68 EUR
    assert "tom" in {h["slug"] for h in cheap.json()["hits"]}
    unknown = await client.get("/api/v1/tutors?price_max=40&currency=NOK")
    assert unknown.status_code == 400 and "NOK" not in unknown.json()["detail"].split(":")[0]


async def test_a_rate_change_reindexes_meilisearch_prices_with_the_new_rates(seeded, indexed):  # noqa: F811
    from search.meili import MeiliSearchBackend
    from search.sync import rates_changed

    documents: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/settings"):
            from search.meili import desired_settings

            return httpx.Response(200, json=desired_settings())
        if request.method == "POST" and path.endswith("/documents"):
            documents.extend(json.loads(request.content))
            return httpx.Response(202, json={"taskUid": 1})
        if path.startswith("/tasks/"):
            return httpx.Response(200, json={"uid": 1, "status": "succeeded"})
        if request.method == "POST" and path.endswith("/documents/fetch"):
            return httpx.Response(200, json={"results": [], "total": 0})
        return httpx.Response(202, json={"taskUid": 1})

    async with transaction() as session:
        row = (await session.execute(select(ExchangeRate).where(ExchangeRate.currency == "GBP"))).scalar_one()
        row.rate = "0.5"
    engine = MeiliSearchBackend(url="http://meili.test", transport=httpx.MockTransport(handler), rates=SEED_RATES)
    try:
        count = await rates_changed(backend=engine)
    finally:
        await engine.aclose()
    assert count == len(documents) > 0
    tom = next(d for d in documents if d["slug"] == "tom")
    assert tom["price_eur_minor"] == pytest.approx(6800)  # 3400 pence at 0.5 GBP per EUR


async def test_the_sql_backend_needs_no_reindex_after_a_rate_change(seeded):
    from search.sql import SqlSearchBackend
    from search.sync import rates_changed

    assert await rates_changed(backend=SqlSearchBackend()) == 0
