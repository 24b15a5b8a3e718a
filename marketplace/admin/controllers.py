"""Admin pages of the shell: dashboard, the mail outbox (development mail reader), users."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy import func, select

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory
from marketplace.mail import OutboxMessage
from marketplace.web import admin_required

PAGE_SIZE = 50


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 10_000))
    except ValueError:
        return 1


class AdminController(Controller):
    path = "/admin"
    guards = [admin_required]
    include_in_schema = False

    @get("/", name="admin_home")
    async def home(self) -> Template:
        async with session_factory()() as session:
            by_role = dict((await session.execute(select(User.role, func.count()).group_by(User.role))).all())
            queued = (await session.execute(select(func.count()).where(OutboxMessage.status == "queued"))).scalar_one()
        return Template(
            "admin/home.html",
            context={"by_role": {r.value: by_role.get(r, 0) for r in Role}, "queued": queued},
        )

    @get("/outbox", name="admin_outbox")
    async def outbox(self, request: Request) -> Template:
        page = _page_number(request.query_params.get("page"))
        to = (request.query_params.get("to") or "").strip().lower()[:254]
        async with session_factory()() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc())
            count = select(func.count()).select_from(OutboxMessage)
            if to:
                query = query.where(OutboxMessage.to_address == to)
                count = count.where(OutboxMessage.to_address == to)
            total = (await session.execute(count)).scalar_one()
            messages = (await session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))).scalars().all()
        return Template(
            "admin/outbox.html",
            context={
                "messages": messages,
                "page": page,
                "to": to,
                "has_next": page * PAGE_SIZE < total,
                "total": total,
            },
        )
