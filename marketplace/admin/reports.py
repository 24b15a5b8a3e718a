"""Reports: anyone signed in reports a profile, a review or a message with a reason; admins work
through the queue and resolve or dismiss each report (audited).

- ``POST /reports`` (signed in): ``target_type``, ``target_id``, ``reason`` (5 to 1000 characters)
  and an optional ``next``. The target must exist and be visible to the reporter (a message only to
  the two people of its thread). One open report per reporter and target: a second one is refused
  politely. Success and refusal redirect (303) back to ``next`` (same site only) or the target.
- ``GET /admin/reports``: the queue, open reports first (oldest first), then the handled ones.
- ``POST /admin/reports/{id}/resolve`` and ``/dismiss`` with an optional ``note``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Role, User
from marketplace.admin.models import Report, ReportStatus, ReportTarget
from marketplace.audit import audit_record
from marketplace.db import session_factory, transaction, utcnow
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.messaging.models import Message, Thread
from marketplace.reviews.models import Review
from marketplace.tutors.models import TutorProfile
from marketplace.tutors.text import TextError, plain_text
from marketplace.web import admin_required, current_user, flash, form_data, login_required, redirect, safe_next

REASON_MIN = 5
REASON_MAX = 1000
NOTE_MAX = 1000
PAGE_SIZE = 25


# ---- services ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportTargetInfo:
    type: ReportTarget
    id: uuid.UUID
    url: str  # where the reporter goes back to


def clean_reason(raw: str) -> str:
    try:
        reason = plain_text(raw or "", max_length=REASON_MAX, multiline=True)
    except TextError:
        reason = None
    if reason is None or len(reason) < REASON_MIN:
        message = _("Describe the problem in %(min)d to %(max)d characters.", min=REASON_MIN, max=REASON_MAX)
        raise ValidationFailed(message, errors={"reason": message})
    return reason


def _parse_target(target_type: str, target_id: str) -> tuple[ReportTarget, uuid.UUID]:
    try:
        kind = ReportTarget(target_type)
    except ValueError:
        raise ValidationFailed(_("This cannot be reported."), errors={"target_type": _("Unknown type.")}) from None
    try:
        return kind, uuid.UUID(str(target_id)[:64])
    except ValueError:
        raise NotFound(_("We could not find what you wanted to report.")) from None


async def report_target_find(
    session: AsyncSession, *, reporter: User, target_type: str, target_id: str
) -> ReportTargetInfo:
    """The target, when it exists and the reporter can see it (404 otherwise)."""
    kind, ident = _parse_target(target_type, target_id)
    missing = NotFound(_("We could not find what you wanted to report."))
    if kind == ReportTarget.profile:
        row = (
            await session.execute(
                select(TutorProfile, User.banned_at)
                .join(User, User.id == TutorProfile.user_id)
                .where(TutorProfile.id == ident)
            )
        ).first()
        if row is None:
            raise missing
        profile, banned_at = row
        if reporter.role != Role.admin and (not profile.is_public or banned_at is not None):
            raise missing
        if profile.user_id == reporter.id:
            raise ValidationFailed(_("You cannot report your own profile."))
        return ReportTargetInfo(kind, ident, f"/tutors/{profile.slug}")
    if kind == ReportTarget.review:
        row = (
            await session.execute(
                select(Review, TutorProfile.slug)
                .outerjoin(TutorProfile, TutorProfile.user_id == Review.tutor_id)
                .where(Review.id == ident)
            )
        ).first()
        if row is None or (row[0].hidden_at is not None and reporter.role != Role.admin):
            raise missing
        review, slug = row
        return ReportTargetInfo(kind, ident, f"/tutors/{slug}#review-{review.id}" if slug else "/")
    row = (
        await session.execute(
            select(Message, Thread).join(Thread, Thread.id == Message.thread_id).where(Message.id == ident)
        )
    ).first()
    if row is None:
        raise missing
    message, thread = row
    if reporter.id not in (thread.student_id, thread.tutor_id):
        raise missing  # not a participant: the message does not exist for them
    if message.sender_id == reporter.id:
        raise ValidationFailed(_("You cannot report your own message."))
    return ReportTargetInfo(kind, ident, f"/messages/{thread.id}")


async def report_create(
    session: AsyncSession, *, reporter: User, target_type: str, target_id: str, reason: str
) -> tuple[Report, ReportTargetInfo]:
    """File a report. Conflict when the reporter already has an open report on the same target."""
    target = await report_target_find(session, reporter=reporter, target_type=target_type, target_id=target_id)
    reason = clean_reason(reason)
    # Serialise one reporter's reports (PostgreSQL row lock; SQLite writes are serialised anyway),
    # so a double click cannot file the same report twice.
    await session.execute(select(User.id).where(User.id == reporter.id).with_for_update())
    duplicate = await session.execute(
        select(Report.id).where(
            Report.reporter_id == reporter.id,
            Report.target_type == target.type,
            Report.target_id == target.id,
            Report.status == ReportStatus.open,
        )
    )
    if duplicate.first() is not None:
        raise Conflict(_("You have already reported this. Thank you: our team will look at it soon."))
    report = Report(reporter_id=reporter.id, target_type=target.type, target_id=target.id, reason=reason)
    session.add(report)
    await session.flush()
    return report


async def report_close(
    session: AsyncSession, *, admin: User, report_id: uuid.UUID, status: ReportStatus, note: str = ""
) -> Report:
    """Resolve (acted on it) or dismiss (nothing to do) an open report, with an optional note."""
    if admin.role != Role.admin:
        raise Forbidden(_("Only admins can do this."))
    if status not in (ReportStatus.resolved, ReportStatus.dismissed):
        raise ValidationFailed(_("This action does not exist."))
    try:
        note = plain_text(note or "", max_length=NOTE_MAX, multiline=True)
    except TextError:
        message = _("A note can have at most %(max)d characters.", max=NOTE_MAX)
        raise ValidationFailed(message, errors={"note": message}) from None
    report = await session.get(Report, report_id, with_for_update=True)
    if report is None:
        raise NotFound(_("We could not find that report."))
    if report.status != ReportStatus.open:
        raise Conflict(_("This report was already handled."))
    before = {"status": report.status.value}
    report.status = status
    report.resolved_by = admin.id
    report.resolved_at = utcnow()
    report.resolution = note or None
    await audit_record(
        session,
        actor_id=admin.id,
        action=f"report.{'resolve' if status == ReportStatus.resolved else 'dismiss'}",
        target_type="report",
        target_id=report.id,
        before=before,
        after={
            "status": report.status.value,
            "target_type": report.target_type.value,
            "target_id": str(report.target_id),
        },
        reason=note or None,
    )
    return report


# ---- selectors -----------------------------------------------------------------------------


def _excerpt(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def report_queue(session: AsyncSession, *, page: int) -> dict[str, Any]:
    """A page of reports, open ones first (oldest first), with the reporter and a description of
    each target, in a fixed number of statements (targets are outer-joined, never loaded one by one)."""
    reporter = aliased(User)
    reported_profile = aliased(TutorProfile)
    review_profile = aliased(TutorProfile)
    is_open = Report.status == ReportStatus.open
    counts = (await session.execute(select(func.count(), func.count(case((is_open, 1)))).select_from(Report))).one()
    total, open_count = counts
    rows = (
        await session.execute(
            select(
                Report,
                reporter.email,
                reported_profile.id,
                reported_profile.slug,
                reported_profile.live,
                reported_profile.draft,
                Review.text,
                Review.rating,
                review_profile.slug,
                Message.body,
                Message.thread_id,
            )
            .join(reporter, reporter.id == Report.reporter_id)
            .outerjoin(
                reported_profile,
                and_(Report.target_type == ReportTarget.profile, reported_profile.id == Report.target_id),
            )
            .outerjoin(Review, and_(Report.target_type == ReportTarget.review, Review.id == Report.target_id))
            .outerjoin(review_profile, review_profile.user_id == Review.tutor_id)
            .outerjoin(Message, and_(Report.target_type == ReportTarget.message, Message.id == Report.target_id))
            .order_by(
                case((is_open, 0), else_=1),
                case((is_open, Report.created_at), else_=None).asc(),
                Report.resolved_at.desc(),
                Report.created_at.desc(),
            )
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    ).all()
    items = []
    for (
        report,
        email,
        profile_id,
        profile_slug,
        live,
        draft,
        review_text,
        review_rating,
        review_slug,
        message_body,
        thread_id,
    ) in rows:
        target: dict[str, Any] = {"exists": True, "links": []}
        if report.target_type == ReportTarget.profile:
            doc = live or draft or {}
            target["exists"] = profile_id is not None
            target["title"] = doc.get("display_name") or profile_slug or ""
            target["excerpt"] = doc.get("headline", "")
            if profile_id is not None:
                target["links"] = [
                    (f"/tutors/{profile_slug}", _("Public page")),
                    (f"/admin/profiles/{profile_id}", _("Moderate profile")),
                ]
        elif report.target_type == ReportTarget.review:
            target["exists"] = review_text is not None
            target["title"] = _("Review, %(rating)d of 5", rating=review_rating) if review_rating else ""
            target["excerpt"] = _excerpt(review_text)
            if review_slug:
                target["links"] = [(f"/tutors/{review_slug}#review-{report.target_id}", _("Tutor page"))]
        else:
            target["exists"] = message_body is not None
            target["title"] = _("Message")
            target["excerpt"] = _excerpt(message_body)
            if thread_id is not None:
                target["links"] = [(f"/messages/{thread_id}", _("Conversation"))]
        items.append({"report": report, "reporter": email, "target": target})
    return {
        "entries": items,
        "total": total,
        "open_count": open_count,
        "page": page,
        "has_next": page * PAGE_SIZE < total,
    }


# ---- controller ----------------------------------------------------------------------------


def _page(raw: str | None) -> int:
    return max(1, min(int(raw), 10_000)) if raw and raw.isdigit() and len(raw) < 8 else 1


def type_labels() -> dict[str, str]:
    return {"profile": _("Profile"), "review": _("Review"), "message": _("Message")}


def status_labels() -> dict[str, str]:
    return {"open": _("Open"), "resolved": _("Resolved"), "dismissed": _("Dismissed")}


class ReportsController(Controller):
    """Filing reports (signed in) and the admin queue."""

    path = "/"
    include_in_schema = False
    tags = ["admin"]

    @post("/reports", guards=[login_required], name="report_create")
    async def create(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        target_type = form.get("target_type", "")[:16]
        target_id = form.get("target_id", "")[:64]
        reason = form.get("reason", "")
        next_url = form.get("next", "")
        duplicate = None
        try:
            async with transaction() as session:
                reporter = await session.get(User, current_user(request).id)
                target = await report_target_find(
                    session, reporter=reporter, target_type=target_type, target_id=target_id
                )
                try:
                    await report_create(
                        session, reporter=reporter, target_type=target_type, target_id=target_id, reason=reason
                    )
                except Conflict as exc:
                    duplicate = exc.message
        except ValidationFailed as exc:
            if "reason" not in exc.errors:
                raise
            return Template(
                "profiles/report.html",
                context={
                    "target_type": target_type,
                    "target_id": target_id,
                    "type_label": type_labels().get(target_type, ""),
                    "reason": reason[: REASON_MAX + 100],
                    "next": safe_next(next_url, ""),
                    "error": exc.errors["reason"],
                },
                status_code=422,
            )
        if duplicate:
            flash(request, duplicate, "info")
        else:
            flash(request, _("Thank you for your report. Our team will look at it."))
        return redirect(safe_next(next_url, target.url))

    @get("/admin/reports", guards=[admin_required], name="admin_reports")
    async def queue(self, request: Request) -> Template:
        return await self._queue(request)

    async def _queue(
        self, request: Request, *, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        page = _page(request.query_params.get("page"))
        async with session_factory()() as session:
            context = await report_queue(session, page=page)
        return Template(
            "admin/reports.html",
            context={
                **context,
                "types": type_labels(),
                "statuses": status_labels(),
                "errors": errors or {},
            },
            status_code=status_code,
        )

    @post("/admin/reports/{report_id:uuid}/{action:str}", guards=[admin_required], name="admin_report_action")
    async def act(self, request: Request, report_id: FromPath[uuid.UUID], action: FromPath[str]) -> Template | Redirect:
        statuses = {"resolve": ReportStatus.resolved, "dismiss": ReportStatus.dismissed}
        if action not in statuses:
            raise NotFound(_("This action does not exist."))
        form = await form_data(request)
        try:
            async with transaction() as session:
                admin = await session.get(User, current_user(request).id)
                await report_close(
                    session, admin=admin, report_id=report_id, status=statuses[action], note=form.get("note", "")
                )
        except ValidationFailed as exc:
            return await self._queue(request, errors={str(report_id): exc.message}, status_code=422)
        except Conflict as exc:
            flash(request, exc.message, "error")
            return redirect("/admin/reports")
        flash(request, _("The report was resolved.") if action == "resolve" else _("The report was dismissed."))
        return redirect("/admin/reports")
