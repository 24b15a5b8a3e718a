"""Payments jobs: apply stored provider events, refund, transfer, expire checkouts, and a periodic
repair pass. Each loads by id and calls a service; all are idempotent."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from marketplace import jobs, periodic
from marketplace.db import session_factory

log = logging.getLogger(__name__)


@jobs.actor(queue_name="payments", max_retries=10)
async def process_event(event_id: str) -> None:
    from payouts.services import event_process

    await event_process(event_id)


@jobs.actor(queue_name="payments", max_retries=3)
async def retry_deferred_events() -> None:
    from payouts.services import events_retry_deferred

    await events_retry_deferred()


@jobs.actor(queue_name="payments", max_retries=10)
async def refund_booking(booking_id: str, total: int) -> None:
    from payouts.services import refund_to_total, transfer_for_booking

    await refund_to_total(booking_id=uuid.UUID(booking_id), total=int(total))
    # A completed lesson whose transfer waited for this refund goes now.
    await transfer_for_booking(booking_id=uuid.UUID(booking_id))


@jobs.actor(queue_name="payments", max_retries=10)
async def transfer_booking(booking_id: str) -> None:
    from payouts.services import transfer_for_booking

    await transfer_for_booking(booking_id=uuid.UUID(booking_id))


@jobs.actor(queue_name="payments", max_retries=5)
async def expire_checkout(booking_id: str) -> None:
    from payouts.services import checkout_expire

    await checkout_expire(booking_id=uuid.UUID(booking_id))


@periodic.every(300)
@jobs.actor(queue_name="payments", max_retries=0)
async def payments_repair() -> None:
    """Repair what a lost job or webhook left behind: deferred events, refunds asked for but not
    made, transfers of completed lessons not yet sent."""
    from payouts.models import Payment, PaymentStatus, TransferStatus
    from payouts.services import events_retry_deferred, refund_to_total, transfer_for_booking
    from scheduling.models import Booking, BookingStatus

    await events_retry_deferred()
    async with session_factory()() as session:
        refunds = (
            await session.execute(
                select(Payment.booking_id, Payment.refund_requested).where(
                    Payment.refund_requested > Payment.refunded_amount, Payment.paid_amount > 0
                )
            )
        ).all()
        transfers = list(
            (
                await session.execute(
                    select(Payment.booking_id)
                    .join(Booking, Booking.id == Payment.booking_id)
                    .where(
                        Payment.status == PaymentStatus.paid,
                        Payment.transfer_status.in_(
                            (TransferStatus.none, TransferStatus.pending, TransferStatus.released)
                        ),
                        Booking.status.in_((BookingStatus.completed, BookingStatus.no_show, BookingStatus.resolved)),
                    )
                    .limit(500)
                )
            ).scalars()
        )
    for booking_id, total in refunds:
        try:
            await refund_to_total(booking_id=booking_id, total=total)
        except Exception:
            log.exception("refund repair failed for booking %s", booking_id)
    for booking_id in transfers:
        try:
            await transfer_for_booking(booking_id=booking_id)
        except Exception:
            log.exception("transfer repair failed for booking %s", booking_id)


@jobs.actor(queue_name="payments", max_retries=10)
async def refund_package(package_id: str) -> None:
    from payouts.packages import package_refund_apply

    await package_refund_apply(package_id=uuid.UUID(package_id))


@periodic.every(3600)
@jobs.actor(queue_name="payments", max_retries=0)
async def packages_tick() -> None:
    """Lesson packages: reminders before the credits expire (once each), expiry at the deadline,
    and refunds asked for but not made yet. Idempotent."""
    from payouts.models import LessonPackage
    from payouts.packages import package_refund_apply, packages_expire, packages_remind

    await packages_remind()
    await packages_expire()
    async with session_factory()() as session:
        pending = list(
            (
                await session.execute(
                    select(LessonPackage.id)
                    .where(LessonPackage.refund_requested > LessonPackage.refunded_amount)
                    .limit(500)
                )
            ).scalars()
        )
    for package_id in pending:
        try:
            await package_refund_apply(package_id=package_id)
        except Exception:
            log.exception("package refund repair failed for %s", package_id)


def _wire() -> None:
    """Imported through ``marketplace.db.MODEL_MODULES``: the payments tables exist for Alembic and
    the booking listener is registered with scheduling (when its bookings module is there), and the
    payments port (payout status, lesson receipts and disputes) with ``marketplace.ports``."""
    import payouts.models  # noqa: F401
    from marketplace.ports import register_payments
    from payouts.services import PaymentsPort, register_booking_listener

    register_payments(PaymentsPort())
    from payouts.packages import register_profile_section

    register_profile_section()

    if not register_booking_listener():
        log.warning("scheduling.bookings has no on_booking_change: payments do not react to bookings")


_wire()
