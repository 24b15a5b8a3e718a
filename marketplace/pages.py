"""Shell pages: home, role dashboards, health check, and the bare route used as a benchmark floor."""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, get
from litestar.response import Redirect, Response, Template
from sqlalchemy import select, text

from marketplace import jobs
from marketplace.accounts.models import Role, User
from marketplace.db import session_factory
from marketplace.ports import lesson_facts
from marketplace.reviews.models import Review
from marketplace.web import current_user, login_required, redirect, tutor_required


class PagesController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="home")
    async def home(self) -> Template:
        return Template("home.html")

    @get("/dashboard", guards=[login_required], name="dashboard")
    async def dashboard(self, request: Request) -> Template | Redirect:
        user = current_user(request)
        if user.role == Role.admin:
            return redirect("/admin")
        if user.role == Role.tutor:
            return redirect("/tutor")
        async with session_factory()() as session:
            lessons = await lesson_facts().completed_lessons_for_student(session, student_id=user.id, limit=20)
            tutor_ids = {lesson.tutor_id for lesson in lessons}
            booking_ids = [lesson.booking_id for lesson in lessons]
            names = (
                dict((await session.execute(select(User.id, User.display_name).where(User.id.in_(tutor_ids)))).all())
                if tutor_ids
                else {}
            )
            reviewed = (
                set(
                    (
                        await session.execute(select(Review.booking_id).where(Review.booking_id.in_(booking_ids)))
                    ).scalars()
                )
                if booking_ids
                else set()
            )
        past = [
            {"lesson": lesson, "tutor": names.get(lesson.tutor_id, ""), "reviewed": lesson.booking_id in reviewed}
            for lesson in lessons
        ]
        return Template("dashboard/student.html", context={"past": past})

    @get("/tutor", guards=[tutor_required], name="tutor_home")
    async def tutor_home(self) -> Template:
        return Template("dashboard/tutor.html")


@get("/healthz", include_in_schema=False, opt={"skip_session": True}, exclude_from_csrf=True)
async def healthz() -> Response:
    checks: dict[str, str] = {}
    ok = True
    try:
        async with session_factory()() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=3)
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(asyncio.to_thread(jobs.broker_ping), timeout=3)
        checks["broker"] = "ok" if not jobs.is_in_process() else "ok (in-process)"
    except Exception as exc:
        ok = False
        checks["broker"] = f"error: {type(exc).__name__}"
    return Response({"status": "ok" if ok else "error", "checks": checks}, status_code=200 if ok else 503)


@get("/bare", include_in_schema=False, opt={"skip_session": True}, sync_to_thread=False)
def bare() -> str:
    """The benchmark's floor: a route that does nothing through the same application."""
    return "ok"
