"""Shell pages: home, role dashboards, health check, and the bare route used as a benchmark floor."""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, get
from litestar.response import Redirect, Response, Template
from sqlalchemy import text

from marketplace import jobs
from marketplace.accounts.models import Role
from marketplace.db import session_factory
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
        return Template("dashboard/student.html")

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
