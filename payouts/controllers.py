"""Payments pages: checkout (start, success, cancel), the offline provider's TEST MODE checkout and
onboarding, the tutor's payouts and earnings pages, the student's payment history and receipts,
and the admin finance page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.i18n import format_money
from marketplace.i18n import gettext as _
from marketplace.tutors.models import TutorProfile
from marketplace.web import (
    admin_required,
    current_user,
    flash,
    form_data,
    login_required,
    redirect,
    tutor_required,
)
from payouts import packages, reports, services
from payouts.models import PackageStatus, PaymentStatus
from payouts.providers import OfflineProvider, ProviderError, get_provider
from scheduling.models import Booking, BookingStatus


def _test_mode() -> bool:
    return get_provider().test_mode


def _external(url: str) -> Redirect:
    return Redirect(url, status_code=303)


async def _to_onboarding(request: Request) -> Redirect:
    """A fresh Account Link for the signed-in tutor (links are single-use), or back to /payouts."""
    try:
        url = await services.payout_onboarding_link(tutor=current_user(request))
    except ProviderError:
        flash(request, _("The payment service is not reachable right now. Please try again."), "error")
        return redirect("/payouts")
    return _external(url)


class CheckoutController(Controller):
    """``POST /pay/{booking_id}`` starts (or resumes) the provider's checkout for a held booking."""

    path = "/pay"
    guards = [login_required]
    include_in_schema = False

    @get("/{booking_id:uuid}", name="pay_review")
    async def review(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        """Review and pay: the entry point after a hold (the booking page sends the student here)."""
        booking, payment = await self._status(request, booking_id)
        if payment is not None and payment.status in (PaymentStatus.paid, PaymentStatus.processing):
            return redirect(f"/pay/{booking_id}/success")
        async with session_factory()() as session:
            tutor = await session.get(User, booking.tutor_id)
            ready = await services.payout_account_ready(session, tutor_id=booking.tutor_id)
            credits = await packages.credits_for_booking(session, booking=booking)
        now = datetime.now(UTC)
        payable = booking.status == BookingStatus.held and booking.hold_expires_at and booking.hold_expires_at > now
        return Template(
            "payouts/review.html",
            context={
                "booking": booking,
                "tutor": tutor,
                "ready": ready,
                "credits": credits,
                "payable": payable,
                "test_mode": _test_mode(),
                "minutes_left": int((booking.hold_expires_at - now).total_seconds() // 60) if payable else 0,
            },
        )

    @post("/{booking_id:uuid}", name="pay_start")
    async def start(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Redirect:
        try:
            url = await services.checkout_start(booking_id=booking_id, student=current_user(request))
        except ProviderError:
            flash(request, _("The payment service is not reachable right now. Please try again."), "error")
            return redirect(f"/pay/{booking_id}/cancel")
        return _external(url)

    @post("/{booking_id:uuid}/credit", name="pay_with_credit")
    async def pay_with_credit(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Redirect:
        """Pay a held lesson with a package credit: confirmed at once, no provider involved."""
        try:
            await packages.package_credit_spend(student=current_user(request), booking_id=booking_id)
        except (Conflict, ValidationFailed) as exc:
            flash(request, exc.message, "error")
            return redirect(f"/pay/{booking_id}")
        except ProviderError:
            flash(request, _("The payment service is not reachable right now. Please try again."), "error")
            return redirect(f"/pay/{booking_id}")
        flash(request, _("Paid with a package credit. Your lesson is booked."))
        return redirect(f"/lessons/{booking_id}")

    async def _status(self, request: Request, booking_id: uuid.UUID) -> tuple[Booking, object]:
        user = current_user(request)
        async with session_factory()() as session:
            booking = await session.get(Booking, booking_id)
            if booking is None or booking.student_id != user.id:
                raise NotFound(_("We could not find this booking."))
            payment = await services.payment_for_booking(session, booking_id=booking_id)
        return booking, payment

    @get("/{booking_id:uuid}/success", name="pay_success")
    async def success(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        """Informs only: the booking is confirmed by the provider's event, never by this page."""
        booking, payment = await self._status(request, booking_id)
        return Template(
            "payouts/success.html",
            context={"booking": booking, "payment": payment, "test_mode": _test_mode(), "PaymentStatus": PaymentStatus},
        )

    @get("/{booking_id:uuid}/cancel", name="pay_cancel")
    async def cancel(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        booking, payment = await self._status(request, booking_id)
        return Template("payouts/cancel.html", context={"booking": booking, "payment": payment})

    @get("/{booking_id:uuid}/dispute", name="pay_dispute_form")
    async def dispute_form(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        booking, _payment = await self._status(request, booking_id)
        return Template(
            "payouts/dispute.html", context={"booking": booking, "errors": {}, "message": None, "reason": ""}
        )

    @post("/{booking_id:uuid}/dispute", name="pay_dispute")
    async def dispute(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        try:
            async with transaction() as session:
                await services.dispute_open(
                    session, student=current_user(request), booking_id=booking_id, reason=form.get("reason", "")
                )
        except (ValidationFailed, Conflict) as exc:
            booking, _payment = await self._status(request, booking_id)
            return Template(
                "payouts/dispute.html",
                context={
                    "booking": booking,
                    "errors": exc.errors,
                    "message": exc.message,
                    "reason": form.get("reason", "")[:2100],
                },
                status_code=exc.status_code,
            )
        flash(request, _("Your dispute was sent. We hold the payment to the tutor until an admin has decided."))
        return redirect("/payments")

    @get("/offline/{session_id:str}", name="pay_offline")
    async def offline(self, request: Request, session_id: FromPath[str]) -> Template:
        provider = get_provider()
        data = await provider.retrieve_checkout(session_id) if isinstance(provider, OfflineProvider) else None
        package_id = packages.package_id_of(data or {})
        if data is not None and package_id is not None:
            async with session_factory()() as session:
                row = await packages.package_for_checkout(
                    session, student_id=current_user(request).id, package_id=package_id
                )
            return Template(
                "payouts/offline_checkout.html",
                context={"checkout": data, "package": row.package, "tutor": row.other, "session_id": session_id},
            )
        booking_id = services._booking_id(data or {})
        if data is None or booking_id is None:
            raise NotFound(_("We could not find this checkout."))
        booking, _payment = await self._status(request, booking_id)
        async with session_factory()() as session:
            tutor = await session.get(User, booking.tutor_id)
        return Template(
            "payouts/offline_checkout.html",
            context={"checkout": data, "booking": booking, "tutor": tutor, "session_id": session_id},
        )

    @post("/offline/{session_id:str}", name="pay_offline_submit")
    async def offline_pay(self, request: Request, session_id: FromPath[str]) -> Redirect:
        form = await request.form()
        succeed = form.get("outcome", "succeed") != "fail"
        provider = get_provider()
        data = await provider.retrieve_checkout(session_id) if isinstance(provider, OfflineProvider) else None
        if data is not None and packages.package_id_of(data) is not None:
            package_id = await services.offline_package_pay(
                session_id=session_id, student=current_user(request), succeed=succeed
            )
            return redirect(f"/payments/packages/{package_id}/{'success' if succeed else 'cancel'}")
        booking_id = await services.offline_checkout_pay(
            session_id=session_id, student=current_user(request), succeed=succeed
        )
        if not succeed:
            return redirect(f"/pay/{booking_id}/cancel")
        return redirect(f"/pay/{booking_id}/success")


class PayoutsController(Controller):
    """The tutor's payouts: onboarding status, earnings, CSV."""

    path = "/payouts"
    guards = [tutor_required]
    include_in_schema = False

    @get("/", name="payouts_home")
    async def home(self, request: Request) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            account = await services.payout_account_get(session, tutor_id=user.id)
            payouts = await reports.tutor_payouts(session, tutor_id=user.id, limit=20)
        return Template(
            "payouts/tutor.html", context={"account": account, "payouts": payouts, "test_mode": _test_mode()}
        )

    @post("/onboarding", name="payouts_onboarding")
    async def onboarding(self, request: Request) -> Redirect:
        return await _to_onboarding(request)

    @get("/onboarding/refresh", name="payouts_onboarding_refresh")
    async def onboarding_refresh(self, request: Request) -> Redirect:
        """The Account Link expired or was used: make a new one."""
        return await _to_onboarding(request)

    @get("/onboarding/return", name="payouts_onboarding_return")
    async def onboarding_return(self, request: Request) -> Redirect:
        """Back from onboarding: that does not mean it is done; the status comes from the provider."""
        try:
            account = await services.payout_account_refresh(tutor_id=current_user(request).id)
        except ProviderError:
            account = None
        if account is not None and account.ready:
            flash(request, _("Your payouts are set up."))
        else:
            flash(request, _("Thanks. We will update your payout status as soon as the details are checked."), "info")
        return redirect("/payouts")

    @get("/offline-onboarding/{account_id:str}", name="payouts_offline_onboarding")
    async def offline_onboarding(self, request: Request, account_id: FromPath[str]) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            account = await services.payout_account_get(session, tutor_id=user.id)
        if not isinstance(get_provider(), OfflineProvider) or account is None or account.account_id != account_id:
            raise NotFound(_("We could not find this page."))
        return Template("payouts/offline_onboarding.html", context={"account": account})

    @post("/offline-onboarding/{account_id:str}", name="payouts_offline_onboarding_submit")
    async def offline_onboarding_submit(self, request: Request, account_id: FromPath[str]) -> Redirect:
        user = current_user(request)
        async with session_factory()() as session:
            account = await services.payout_account_get(session, tutor_id=user.id)
        if account is None or account.account_id != account_id:
            raise NotFound(_("We could not find this page."))
        await services.offline_onboarding_complete(tutor=user)
        return redirect("/payouts/onboarding/return")

    @get("/earnings", name="payouts_earnings")
    async def earnings(self, request: Request) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            earnings = await reports.tutor_earnings(session, tutor_id=user.id)
            sold = await packages.tutor_packages(session, tutor_id=user.id)
        return Template("payouts/earnings.html", context={"earnings": earnings, "sold": sold})

    async def _packages_page(
        self, request: Request, *, values: dict[str, str] | None = None, exc: ValidationFailed | None = None
    ) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            offers = await packages.package_offers(session, tutor_id=user.id)
            quotes = {q.lessons: q for q in await packages.package_quotes(session, tutor_id=user.id)}
            profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == user.id))
        if values is None:
            values = {}
            for n in packages.SIZES:
                offer = offers.get(n)
                values[f"enabled_{n}"] = "1" if offer is not None and offer.active else ""
                values[f"discount_{n}"] = str(offer.discount_percent) if offer is not None else "10"
        return Template(
            "payouts/packages_tutor.html",
            context={
                "sizes": packages.SIZES,
                "values": values,
                "quotes": quotes,
                "unit": packages.lesson_price(profile),
                "errors": exc.errors if exc else {},
                "message": exc.message if exc else None,
                "min": packages.DISCOUNT_MIN,
                "max": packages.DISCOUNT_MAX,
            },
            status_code=exc.status_code if exc else 200,
        )

    @get("/packages", name="payouts_packages")
    async def packages_form(self, request: Request) -> Template:
        return await self._packages_page(request)

    @post("/packages", name="payouts_packages_save")
    async def packages_save(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        try:
            offers = {
                n: (
                    bool(form.get(f"enabled_{n}")),
                    packages.parse_discount(form.get(f"discount_{n}"), field=f"discount_{n}"),
                )
                for n in packages.SIZES
            }
            async with transaction() as session:
                await packages.package_offers_set(session, tutor=current_user(request), offers=offers)
        except ValidationFailed as exc:
            return await self._packages_page(request, values=form, exc=exc)
        flash(request, _("Your lesson packages are saved."))
        return redirect("/payouts/packages")

    @get("/earnings.csv", name="payouts_earnings_csv")
    async def earnings_csv(self, request: Request) -> Response:
        user = current_user(request)
        async with session_factory()() as session:
            body = await reports.tutor_earnings_csv(session, tutor_id=user.id)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cadenza-earnings.csv"'},
        )


class StudentPaymentsController(Controller):
    path = "/payments"
    guards = [login_required]
    include_in_schema = False

    @get("/", name="payments_history")
    async def history(self, request: Request) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            rows = await reports.student_payments(session, student_id=user.id)
            credits = await packages.credit_payments_info(session, [r.payment for r in rows])
        return Template("payouts/history.html", context={"rows": rows, "credits": credits})

    @get("/packages", name="payments_packages")
    async def packages_list(self, request: Request) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            rows = await packages.student_packages(session, student_id=user.id)
        return Template("payouts/packages.html", context={"rows": rows, "PackageStatus": PackageStatus})

    @post("/packages/buy", name="payments_packages_buy")
    async def packages_buy(self, request: Request) -> Redirect:
        form = await form_data(request)
        back = "/payments/packages"
        try:
            try:
                tutor_id = uuid.UUID(form.get("tutor_id", ""))
                lessons = int(form.get("lessons", ""))
            except ValueError:
                raise ValidationFailed(_("Choose a package.")) from None
            url = await packages.package_checkout_start(
                student=current_user(request), tutor_id=tutor_id, lessons=lessons
            )
        except (ValidationFailed, Conflict, NotFound) as exc:
            flash(request, exc.message, "error")
            return redirect(back)
        except ProviderError:
            flash(request, _("The payment service is not reachable right now. Please try again."), "error")
            return redirect(back)
        return _external(url)

    @get("/packages/{package_id:uuid}/success", name="payments_package_success")
    async def package_success(self, request: Request, package_id: FromPath[uuid.UUID]) -> Template:
        """Informs only: the package is activated by the provider's event, never by this page."""
        async with session_factory()() as session:
            row = await packages.package_for_checkout(
                session, student_id=current_user(request).id, package_id=package_id
            )
        return Template(
            "payouts/package_status.html",
            context={"row": row, "PackageStatus": PackageStatus, "cancelled": False, "test_mode": _test_mode()},
        )

    @get("/packages/{package_id:uuid}/cancel", name="payments_package_cancel")
    async def package_cancel(self, request: Request, package_id: FromPath[uuid.UUID]) -> Template:
        async with session_factory()() as session:
            row = await packages.package_for_checkout(
                session, student_id=current_user(request).id, package_id=package_id
            )
        return Template(
            "payouts/package_status.html",
            context={"row": row, "PackageStatus": PackageStatus, "cancelled": True, "test_mode": _test_mode()},
        )

    @get("/packages/{package_id:uuid}/refund", name="payments_package_refund_form")
    async def package_refund_form(self, request: Request, package_id: FromPath[uuid.UUID]) -> Template:
        async with session_factory()() as session:
            row = await packages.package_for_student(
                session, student_id=current_user(request).id, package_id=package_id
            )
        return Template("payouts/package_refund.html", context={"row": row})

    @post("/packages/{package_id:uuid}/refund", name="payments_package_refund")
    async def package_refund(self, request: Request, package_id: FromPath[uuid.UUID]) -> Template | Redirect:
        try:
            package = await packages.package_refund_request(student=current_user(request), package_id=package_id)
        except Conflict as exc:
            flash(request, exc.message, "error")
            return redirect("/payments/packages")
        flash(
            request,
            _(
                "We are refunding %(amount)s for your unused credits.",
                amount=format_money(package.refund_requested, package.currency),
            ),
        )
        return redirect("/payments/packages")

    @get("/{payment_id:uuid}", name="payments_receipt")
    async def receipt(self, request: Request, payment_id: FromPath[uuid.UUID]) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            row = await reports.payment_receipt(session, payment_id=payment_id, student_id=user.id)
            if row is None:
                raise NotFound(_("We could not find this payment."))
            credit = (await packages.credit_payments_info(session, [row.payment])).get(row.payment.id)
        provider = credit[0].provider if credit else row.payment.provider
        return Template(
            "payouts/receipt.html",
            context={"row": row, "credit": credit, "test_mode": provider == "offline"},
        )


class FinanceController(Controller):
    path = "/admin/finance"
    guards = [admin_required]
    include_in_schema = False

    @get("/", name="admin_finance")
    async def finance(self, request: Request) -> Template:
        async with session_factory()() as session:
            rows, pending, unapplied = await reports.finance_summary(session)
            attention = await reports.payments_needing_attention(session)
            unbalanced = await services.ledger_unbalanced(session)
        return Template(
            "payouts/finance.html",
            context={
                "rows": rows,
                "pending": pending,
                "unapplied": unapplied,
                "attention": attention,
                "unbalanced": unbalanced,
                "Role": Role,
            },
        )


class DisputesAdminController(Controller):
    path = "/admin/disputes"
    guards = [admin_required]
    include_in_schema = False

    @get("/", name="admin_disputes")
    async def disputes(self, request: Request) -> Template:
        async with session_factory()() as session:
            rows = await services.disputes_open(session)
        return Template("payouts/admin_disputes.html", context={"rows": rows, "errors": {}, "message": None})

    @post("/{dispute_id:uuid}", name="admin_dispute_resolve")
    async def resolve(self, request: Request, dispute_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        raw_amount = form.get("amount", "").strip().replace(",", ".")
        amount: int | None = None
        async with session_factory()() as session:
            from payouts.models import Dispute

            dispute = await session.get(Dispute, dispute_id)
            payment = await services.payment_for_booking(session, booking_id=dispute.booking_id) if dispute else None
        try:
            if payment is None:
                raise NotFound(_("We could not find this dispute."))
            if raw_amount:
                amount = parse_amount(raw_amount, payment.currency)
            async with transaction() as session:
                await services.dispute_resolve(
                    session,
                    admin=current_user(request),
                    dispute_id=dispute_id,
                    outcome=form.get("outcome", ""),
                    amount=amount,
                    reason=form.get("reason", ""),
                )
        except ValidationFailed as exc:
            async with session_factory()() as session:
                rows = await services.disputes_open(session)
            return Template(
                "payouts/admin_disputes.html",
                context={"rows": rows, "errors": exc.errors, "message": exc.message, "failed": dispute_id},
                status_code=422,
            )
        flash(request, _("The dispute is resolved."))
        return redirect("/admin/disputes")


def parse_amount(raw: str, currency: str) -> int:
    """A decimal amount typed by an admin ("12.50") in minor units of ``currency``."""
    from decimal import Decimal, InvalidOperation

    from babel.numbers import get_currency_precision

    digits = get_currency_precision(currency)
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        message = _("Enter an amount such as 12.50.")
        raise ValidationFailed(message, errors={"amount": message}) from exc
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value() or minor <= 0:
        message = _("Enter an amount such as 12.50.")
        raise ValidationFailed(message, errors={"amount": message})
    return int(minor)


ROUTES = [CheckoutController, PayoutsController, StudentPaymentsController, FinanceController, DisputesAdminController]
