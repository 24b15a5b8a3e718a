"""Calendar pages: the private ICS feed (settings page, revoke, the feed itself) and a tutor's
external calendars (add, remove, refresh, fetch status for htmx polling).

The feed URL carries a random token (``secrets.token_urlsafe(32)``): it is the only credential,
so the feed needs no log-in and revoking replaces the token (the old URL then answers 404).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory, transaction
from marketplace.errors import NotFound
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.web import current_user, flash, form_data, is_htmx, login_required, page, redirect, tutor_required
from scheduling import external
from scheduling import reminders as _reminders  # noqa: F401 - declares the periodic reminder actor
from scheduling.ics import feed_text
from scheduling.models import CalendarFeed, ExternalBusy, ExternalCalendar

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
FEED_MAX_AGE = 300  # seconds; calendar apps poll far less often anyway


def feed_url(token: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/calendar/feed/{token}.ics"


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def calendar_view(cal: ExternalCalendar) -> dict[str, Any]:
    pending = cal.fetched_at is None and cal.last_error is None
    return {
        "id": cal.id,
        "url": cal.url,
        "fetched_at": cal.fetched_at,
        "pending": pending,
        "error": external.error_message(cal.last_error),
    }


async def _page_context(user: User, **extra: Any) -> dict[str, Any]:
    async with session_factory()() as session:
        feed = (await session.execute(select(CalendarFeed).where(CalendarFeed.user_id == user.id))).scalar_one_or_none()
        calendars: list[ExternalCalendar] = []
        if user.role in (Role.tutor, Role.admin):
            calendars = list(
                (
                    await session.execute(
                        select(ExternalCalendar)
                        .where(ExternalCalendar.tutor_id == user.id)
                        .order_by(ExternalCalendar.created_at)
                    )
                ).scalars()
            )
    return {
        "feed_url": feed_url(feed.token) if feed else None,
        "is_tutor": user.role in (Role.tutor, Role.admin),
        "calendars": [calendar_view(c) for c in calendars],
        "max_calendars": external.MAX_CALENDARS,
        "form": {"url": ""},
        "errors": {},
        "error_message": None,
        **extra,
    }


class CalendarController(Controller):
    path = "/calendar"
    include_in_schema = False
    tags = ["calendar"]

    @get("/", guards=[login_required], name="calendar_settings")
    async def settings_page(self, request: Request) -> Template:
        context = await _page_context(current_user(request))
        return Template("scheduling/calendar.html", context=context, headers={"X-Robots-Tag": "noindex"})

    # ---- the private feed -------------------------------------------------------------------

    @post("/feed", guards=[login_required], name="calendar_feed_create")
    async def feed_create(self, request: Request) -> Redirect:
        """Create the user's feed address (keeps an existing one: the button may be pressed twice)."""
        user = current_user(request)
        try:
            async with transaction() as session:
                exists = (
                    await session.execute(select(CalendarFeed.id).where(CalendarFeed.user_id == user.id))
                ).scalar_one_or_none()
                if exists is None:
                    session.add(CalendarFeed(user_id=user.id, token=_new_token()))
        except IntegrityError:
            pass  # a concurrent request created it
        flash(request, _("Your private calendar address is ready."))
        return redirect("/calendar")

    @post("/feed/revoke", guards=[login_required], name="calendar_feed_revoke")
    async def feed_revoke(self, request: Request) -> Redirect:
        """Replace the token: the old address stops working at once."""
        user = current_user(request)
        async with transaction() as session:
            feed = (
                await session.execute(select(CalendarFeed).where(CalendarFeed.user_id == user.id))
            ).scalar_one_or_none()
            if feed is None:
                session.add(CalendarFeed(user_id=user.id, token=_new_token()))
            else:
                feed.token = _new_token()
        flash(request, _("The old calendar address no longer works. Subscribe to the new one below."))
        return redirect("/calendar")

    @get("/feed/{filename:str}", name="calendar_feed", opt={"skip_session": True})
    async def feed(self, request: Request, filename: FromPath[str]) -> Response:
        """The feed: no log-in (the token is the capability), private short caching, an ETag."""
        token = filename.removesuffix(".ics")
        if not filename.endswith(".ics") or not TOKEN_RE.match(token):
            raise NotFound(_("This calendar address does not exist or was replaced."))
        async with session_factory()() as session:
            row = (
                await session.execute(
                    select(User).join(CalendarFeed, CalendarFeed.user_id == User.id).where(CalendarFeed.token == token)
                )
            ).scalar_one_or_none()
            if row is None or row.banned_at is not None:
                raise NotFound(_("This calendar address does not exist or was replaced."))
            body = (await feed_text(session, row)).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {
            "Cache-Control": f"private, max-age={FEED_MAX_AGE}",
            "ETag": etag,
            "X-Robots-Tag": "noindex, nofollow",
            "Content-Disposition": 'inline; filename="cadenza.ics"',
        }
        matches = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
        if etag in matches or f"W/{etag}" in matches:
            return Response(b"", status_code=304, headers=headers, media_type="text/calendar")
        return Response(body, media_type="text/calendar", headers=headers)

    # ---- external calendars (tutors) --------------------------------------------------------

    @post("/external", guards=[tutor_required], name="calendar_external_add")
    async def external_add(self, request: Request) -> Template | Redirect:
        user = current_user(request)
        form = await form_data(request)
        raw = form.get("url", "").strip()
        message: str | None = None
        url = raw
        try:
            url = await external.url_validate(raw)
        except external.FetchError as exc:
            message = external.error_message(exc.stored)
        if message is None:
            try:
                async with transaction() as session:
                    count = (
                        await session.execute(
                            select(func.count())
                            .select_from(ExternalCalendar)
                            .where(ExternalCalendar.tutor_id == user.id)
                        )
                    ).scalar_one()
                    duplicate = (
                        await session.execute(
                            select(ExternalCalendar.id).where(
                                ExternalCalendar.tutor_id == user.id, ExternalCalendar.url == url
                            )
                        )
                    ).scalar_one_or_none()
                    if duplicate is not None:
                        message = _("You have already added this calendar.")
                    elif count >= external.MAX_CALENDARS:
                        message = _("You can connect at most %(count)s calendars.") % {"count": external.MAX_CALENDARS}
                    else:
                        await external.calendar_add(session, tutor_id=user.id, url=url)
            except IntegrityError:
                message = _("You have already added this calendar.")
        if message is not None:
            context = await _page_context(
                user, form={"url": raw[:2000]}, errors={"url": message}, error_message=message
            )
            return Template("scheduling/calendar.html", context=context, status_code=400)
        flash(request, _("Calendar added. Its busy times are being read now."))
        return redirect("/calendar")

    async def _own_calendar(self, request: Request, calendar_id: uuid.UUID) -> ExternalCalendar:
        async with session_factory()() as session:
            cal = await session.get(ExternalCalendar, calendar_id)
        if cal is None or cal.tutor_id != current_user(request).id:
            raise NotFound(_("We could not find this calendar."))
        return cal

    @post("/external/{calendar_id:uuid}/delete", guards=[tutor_required], name="calendar_external_delete")
    async def external_delete(self, request: Request, calendar_id: FromPath[uuid.UUID]) -> Redirect:
        """Remove a calendar; its busy times go with it (ON DELETE CASCADE, deleted explicitly too)."""
        await self._own_calendar(request, calendar_id)
        async with transaction() as session:
            cal = await session.get(ExternalCalendar, calendar_id)
            if cal is not None:
                await session.execute(delete(ExternalBusy).where(ExternalBusy.calendar_id == calendar_id))
                await session.delete(cal)
        flash(request, _("Calendar removed. Its busy times no longer block your slots."))
        return redirect("/calendar")

    @post("/external/{calendar_id:uuid}/refresh", guards=[tutor_required], name="calendar_external_refresh")
    async def external_refresh(self, request: Request, calendar_id: FromPath[uuid.UUID]) -> Redirect:
        await self._own_calendar(request, calendar_id)
        external.external_calendar_fetch.send(str(calendar_id), True)
        flash(request, _("The calendar is being read again. Reload this page in a moment to see the result."))
        return redirect("/calendar")

    @get("/external/{calendar_id:uuid}/status", guards=[tutor_required], name="calendar_external_status")
    async def external_status(self, request: Request, calendar_id: FromPath[uuid.UUID]) -> Template | Redirect:
        """One calendar's fetch state (htmx polls it while the first fetch runs)."""
        cal = await self._own_calendar(request, calendar_id)
        if not is_htmx(request):
            return redirect("/calendar")
        return page(
            request, "scheduling/calendar.html", partial="scheduling/_calendar_status.html", cal=calendar_view(cal)
        )
