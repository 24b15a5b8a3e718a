"""Admin page for the exchange-rate table (``/admin/rates``): view, change and add rates.

Every change is validated (a known ISO 4217 currency, a positive rate within sane bounds, a reason)
and audited in the same transaction (who, when, before and after). EUR is the base (always 1).
After the commit, ``search.sync.schedule_rates_changed`` brings the index up to date: the SQL
backend reads the rates at query time, Meilisearch re-indexes its precomputed EUR prices.
"""

from __future__ import annotations

from decimal import Decimal

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.audit import AuditEntry, audit_reason, audit_record
from marketplace.db import transaction
from marketplace.errors import ValidationFailed
from marketplace.i18n import format_number
from marketplace.i18n import gettext as _
from marketplace.web import admin_required, current_user, flash, form_data, redirect
from search.models import ExchangeRate
from search.rates import BASE_CURRENCY, MAX_RATE, MIN_RATE, known_currencies, parse_rate, rate_text
from search.sync import schedule_rates_changed

HISTORY = 20


async def rate_set(session: AsyncSession, *, admin: User, currency: str, rate: str, reason: str) -> ExchangeRate:
    """Set (or add) the rate of ``currency`` in units per 1 EUR, audited; raises ValidationFailed."""
    errors: dict[str, str] = {}
    code = (currency or "").strip().upper()
    if code not in known_currencies():
        errors["currency"] = _("Enter a three-letter ISO currency code, like USD.")
    elif code == BASE_CURRENCY:
        errors["currency"] = _("EUR is the base currency; its rate is always 1.")
    value = parse_rate(rate)
    if value is None:
        errors["rate"] = _(
            "Enter a positive number from %(min)s to %(max)s.",
            min=format_number(MIN_RATE),
            max=format_number(MAX_RATE),
        )
    try:
        reason_text = audit_reason(reason)
    except ValidationFailed as exc:
        errors.update(exc.errors or {})
        reason_text = ""
    if errors:
        raise ValidationFailed(_("The rate was not saved."), errors=errors)
    assert value is not None
    row = (await session.execute(select(ExchangeRate).where(ExchangeRate.currency == code))).scalar_one_or_none()
    before = None if row is None else {"currency": code, "rate": row.rate}
    if row is None:
        row = ExchangeRate(currency=code, rate=rate_text(value), updated_by=admin.id)
        session.add(row)
    else:
        row.rate = rate_text(value)
        row.updated_by = admin.id
    await session.flush()
    await audit_record(
        session,
        actor_id=admin.id,
        action="exchange_rate.set",
        target_type="exchange_rate",
        target_id=code,
        before=before,
        after={"currency": code, "rate": rate_text(value)},
        reason=reason_text,
    )
    schedule_rates_changed(session)
    return row


class ExchangeRateAdminController(Controller):
    path = "/admin/rates"
    guards = [admin_required]
    include_in_schema = False

    @get("/", name="admin_rates")
    async def rates(self, request: Request) -> Template:
        return await self._page()

    async def _page(self, *, errors: dict | None = None, form: dict | None = None, status_code: int = 200) -> Template:
        async with transaction(write=False) as session:
            rows = (await session.execute(select(ExchangeRate).order_by(ExchangeRate.currency))).scalars().all()
            history = (
                (
                    await session.execute(
                        select(AuditEntry)
                        .where(AuditEntry.action == "exchange_rate.set")
                        .order_by(AuditEntry.created_at.desc())
                        .limit(HISTORY)
                    )
                )
                .scalars()
                .all()
            )
        rates = [
            {
                "currency": row.currency,
                "rate": row.rate,
                "per_unit": _per_unit(row.rate),
                "updated_at": row.updated_at,
                "base": row.currency == BASE_CURRENCY,
            }
            for row in sorted(rows, key=lambda r: (r.currency != BASE_CURRENCY, r.currency))
        ]
        return Template(
            "admin/rates.html",
            context={
                "rates": rates,
                "history": history,
                "errors": errors or {},
                "form": form or {},
                "min_rate": MIN_RATE,
                "max_rate": MAX_RATE,
            },
            status_code=status_code,
        )

    @post("/", name="admin_rates_save")
    async def save(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        try:
            async with transaction() as session:
                admin = await session.get(User, current_user(request).id)
                row = await rate_set(
                    session,
                    admin=admin,
                    currency=form.get("currency", ""),
                    rate=form.get("rate", ""),
                    reason=form.get("reason", ""),
                )
                code = row.currency
        except ValidationFailed as exc:
            return await self._page(errors=exc.errors, form=form, status_code=422)
        flash(request, _("The rate of %(currency)s was saved.", currency=code))
        return redirect("/admin/rates")


def _per_unit(text: str) -> str:
    value = parse_rate(text)
    if value is None or value == 0:
        return ""
    return format_number((Decimal(1) / value).quantize(Decimal("0.0001")))
