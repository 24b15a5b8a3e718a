"""Review pages: the student writes or edits a lesson review, the tutor reads and replies, admins
list, hide and unhide. Parsing and rendering only; the rules live in ``reviews.services``."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.reviews import services
from marketplace.reviews.models import Review
from marketplace.web import (
    admin_required,
    current_user,
    flash,
    form_data,
    login_required,
    page,
    redirect,
    tutor_required,
)

ADMIN_PAGE_SIZE = 25
TUTOR_PAGE_SIZE = 10
ADMIN_FILTERS = ("all", "visible", "hidden")


def _page(raw: str | None) -> int:
    return max(1, min(int(raw), 10_000)) if raw and raw.isascii() and raw.isdigit() else 1


def _admin_filter(raw: str | None) -> str:
    return raw if raw in ADMIN_FILTERS else "all"


def _admin_list_url(status: str, page_number: int) -> str:
    return f"/admin/reviews?status={status}&page={page_number}"


class ReviewController(Controller):
    path = "/"
    include_in_schema = False
    tags = ["reviews"]

    # ---- the student's review of a lesson ---------------------------------------------------
    @get("/lessons/{booking_id:uuid}/review", guards=[login_required], name="review_form")
    async def review_form(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        return await self._review_page(request, booking_id)

    async def _review_page(
        self,
        request: Request,
        booking_id: uuid.UUID,
        *,
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        message: str | None = None,
        status_code: int = 200,
    ) -> Template:
        async with session_factory()() as session:
            student = await session.get(User, current_user(request).id)
            facts = await services.review_form_facts(session, student=student, booking_id=booking_id)
        if form is None:
            review = facts.review
            form = {"rating": str(review.rating), "text": review.text} if review else {"rating": "", "text": ""}
        return page(
            request,
            "reviews/form.html",
            partial="reviews/_form.html",
            status_code=status_code,
            facts=facts,
            form=form,
            errors=errors or {},
            message=message,
            min_length=services.MIN_TEXT_LENGTH,
            max_length=services.MAX_TEXT_LENGTH,
        )

    @post("/lessons/{booking_id:uuid}/review", guards=[login_required])
    async def review_save(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        review_id = _uuid(form.get("review_id"))
        try:
            async with transaction() as session:
                student = await session.get(User, current_user(request).id)
                if review_id is None:
                    await services.review_create(
                        session,
                        student=student,
                        booking_id=booking_id,
                        rating=form.get("rating", ""),
                        text=form.get("text", ""),
                    )
                else:
                    await _check_review_booking(session, review_id=review_id, booking_id=booking_id)
                    await services.review_update(
                        session,
                        student=student,
                        review_id=review_id,
                        rating=form.get("rating", ""),
                        text=form.get("text", ""),
                    )
        except ValidationFailed as exc:
            return await self._review_page(
                request, booking_id, form=form, errors=exc.errors, message=exc.message, status_code=422
            )
        flash(request, _("Thank you! Your review was saved.") if review_id is None else _("Your review was updated."))
        return redirect(f"/lessons/{booking_id}/review")

    # ---- the tutor's reviews and replies ----------------------------------------------------
    @get("/tutor/reviews", guards=[tutor_required], name="tutor_reviews")
    async def tutor_reviews(self, request: Request) -> Template:
        return await self._tutor_page(request, _page(request.query_params.get("page")))

    async def _tutor_page(
        self,
        request: Request,
        page_number: int,
        *,
        errors: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        async with session_factory()() as session:
            result = await services.reviews_for_tutor(
                session, tutor_id=current_user(request).id, page=page_number, per_page=TUTOR_PAGE_SIZE
            )
        return page(
            request,
            "reviews/tutor.html",
            status_code=status_code,
            result=result,
            errors=errors or {},
            form=form or {},
            max_length=services.MAX_REPLY_LENGTH,
        )

    @post("/reviews/{review_id:uuid}/reply", guards=[login_required], name="review_reply")
    async def reply(self, request: Request, review_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        page_number = _page(form.get("page"))
        try:
            async with transaction() as session:
                tutor = await session.get(User, current_user(request).id)
                await services.review_reply(session, tutor=tutor, review_id=review_id, text=form.get("reply", ""))
        except ValidationFailed as exc:
            return await self._tutor_page(
                request,
                page_number,
                errors={str(review_id): exc.message},
                form={str(review_id): form.get("reply", "")},
                status_code=422,
            )
        flash(request, _("Your reply was published."))
        return redirect(f"/tutor/reviews?page={page_number}")

    # ---- admin moderation -------------------------------------------------------------------
    @get("/admin/reviews", guards=[admin_required], name="admin_reviews")
    async def admin_list(self, request: Request) -> Template:
        return await self._admin_page(
            request, _admin_filter(request.query_params.get("status")), _page(request.query_params.get("page"))
        )

    async def _admin_page(
        self,
        request: Request,
        status: str,
        page_number: int,
        *,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        hidden = {"all": None, "visible": False, "hidden": True}[status]
        async with session_factory()() as session:
            result = await services.reviews_recent(session, page=page_number, per_page=ADMIN_PAGE_SIZE, hidden=hidden)
        return page(
            request,
            "reviews/admin.html",
            status_code=status_code,
            result=result,
            status=status,
            filters=ADMIN_FILTERS,
            errors=errors or {},
            max_reason=services.MAX_REASON_LENGTH,
        )

    @post("/admin/reviews/{review_id:uuid}/hide", guards=[admin_required], name="admin_review_hide")
    async def hide(self, request: Request, review_id: FromPath[uuid.UUID]) -> Template | Redirect:
        return await self._moderate(request, review_id, services.review_hide, _("The review is now hidden."))

    @post("/admin/reviews/{review_id:uuid}/unhide", guards=[admin_required], name="admin_review_unhide")
    async def unhide(self, request: Request, review_id: FromPath[uuid.UUID]) -> Template | Redirect:
        return await self._moderate(request, review_id, services.review_unhide, _("The review is visible again."))

    async def _moderate(self, request: Request, review_id: uuid.UUID, verb: Any, done: str) -> Template | Redirect:
        form = await form_data(request)
        status, page_number = _admin_filter(form.get("status")), _page(form.get("page"))
        try:
            async with transaction() as session:
                admin = await session.get(User, current_user(request).id)
                await verb(session, admin=admin, review_id=review_id, reason=form.get("reason", ""))
        except ValidationFailed as exc:
            return await self._admin_page(
                request, status, page_number, errors={str(review_id): exc.message}, status_code=422
            )
        flash(request, done)
        return redirect(_admin_list_url(status, page_number))


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


async def _check_review_booking(session: AsyncSession, *, review_id: uuid.UUID, booking_id: uuid.UUID) -> None:
    """The edited review must be the one of the booking in the address."""
    review = await session.get(Review, review_id)
    if review is None or review.booking_id != booking_id:
        raise NotFound(_("We could not find that review."))
