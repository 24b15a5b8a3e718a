"""Admin moderation: the profile queue with the difference to the live version, the moderation
actions, and the audit log (filterable)."""

from __future__ import annotations

import uuid

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from marketplace.accounts.models import User
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.ports import lesson_facts
from marketplace.tutors import services as tutor_services
from marketplace.tutors.controllers import field_labels
from marketplace.tutors.models import ProfileStatus, TutorProfile
from marketplace.web import admin_required, current_user, flash, form_data, redirect

PAGE_SIZE = 25
QUEUES = ("waiting", "approved", "rejected", "suspended", "draft")


def _page(raw: str | None) -> int:
    return max(1, min(int(raw), 10_000)) if raw and raw.isdigit() else 1


def _queue_filter(queue: str):
    if queue == "waiting":
        return or_(TutorProfile.status == ProfileStatus.pending, TutorProfile.changes_pending.is_(True))
    return TutorProfile.status == ProfileStatus(queue)


class ModerationController(Controller):
    path = "/admin"
    guards = [admin_required]
    include_in_schema = False

    @get("/profiles", name="admin_profiles")
    async def queue(self, request: Request) -> Template:
        queue = request.query_params.get("queue", "waiting")
        if queue not in QUEUES:
            queue = "waiting"
        page = _page(request.query_params.get("page"))
        async with session_factory()() as session:
            where = _queue_filter(queue)
            total = (await session.execute(select(func.count()).select_from(TutorProfile).where(where))).scalar_one()
            rows = (
                await session.execute(
                    select(TutorProfile, User.email, User.display_name)
                    .join(User, User.id == TutorProfile.user_id)
                    .where(where)
                    .order_by(TutorProfile.submitted_at.asc().nulls_last(), TutorProfile.created_at)
                    .limit(PAGE_SIZE)
                    .offset((page - 1) * PAGE_SIZE)
                )
            ).all()
        return Template(
            "admin/profiles.html",
            context={
                "rows": rows,
                "queue": queue,
                "queues": QUEUES,
                "page": page,
                "total": total,
                "has_next": page * PAGE_SIZE < total,
            },
        )

    @get("/profiles/{profile_id:uuid}", name="admin_profile")
    async def detail(self, profile_id: FromPath[uuid.UUID]) -> Template:
        return await self._detail(profile_id)

    async def _detail(self, profile_id: uuid.UUID, *, errors: dict | None = None, status_code: int = 200) -> Template:
        async with session_factory()() as session:
            row = (
                await session.execute(
                    select(TutorProfile, User)
                    .join(User, User.id == TutorProfile.user_id)
                    .where(TutorProfile.id == profile_id)
                )
            ).first()
            if row is None:
                raise NotFound(_("We could not find that profile."))
            profile, tutor = row
            reliability = await lesson_facts().tutor_reliability(session, tutor_id=tutor.id)
            history = (
                (
                    await session.execute(
                        select(AuditEntry)
                        .where(AuditEntry.target_type == "tutor_profile", AuditEntry.target_id == str(profile.id))
                        .order_by(AuditEntry.created_at.desc())
                        .limit(20)
                    )
                )
                .scalars()
                .all()
            )
        return Template(
            "admin/profile.html",
            context={
                "profile": profile,
                "tutor": tutor,
                "diff": tutor_services.profile_diff(profile),
                "labels": field_labels(),
                "history": history,
                "reliability": reliability,
                "errors": errors or {},
            },
            status_code=status_code,
        )

    @post("/profiles/{profile_id:uuid}/{action:str}", name="admin_profile_action")
    async def act(
        self, request: Request, profile_id: FromPath[uuid.UUID], action: FromPath[str]
    ) -> Template | Redirect:
        verbs = {
            "approve": (tutor_services.profile_approve, False, _("The profile was approved.")),
            "reject": (tutor_services.profile_reject, True, _("The profile was sent back to the tutor.")),
            "suspend": (tutor_services.profile_suspend, True, _("The profile was suspended.")),
            "reinstate": (tutor_services.profile_reinstate, False, _("The profile was reinstated.")),
        }
        if action not in verbs:
            raise NotFound(_("This action does not exist."))
        verb, needs_reason, done = verbs[action]
        form = await form_data(request)
        kwargs = {"reason": form.get("reason", "")} if needs_reason or action == "reinstate" else {}
        try:
            async with transaction() as session:
                admin = await session.get(User, current_user(request).id)
                await verb(session, admin=admin, profile_id=profile_id, **kwargs)
        except ValidationFailed as exc:
            return await self._detail(profile_id, errors={f"{action}_reason": exc.message}, status_code=422)
        flash(request, done)
        return redirect(f"/admin/profiles/{profile_id}")

    @get("/audit", name="admin_audit")
    async def audit(self, request: Request) -> Template:
        action = (request.query_params.get("action") or "")[:64]
        actor = (request.query_params.get("actor") or "").strip().lower()[:254]
        target = (request.query_params.get("target") or "").strip()[:64]
        page = _page(request.query_params.get("page"))
        query = select(AuditEntry, User.email).outerjoin(User, User.id == AuditEntry.actor_id)
        count = select(func.count()).select_from(AuditEntry).outerjoin(User, User.id == AuditEntry.actor_id)
        filters = []
        if action:
            filters.append(AuditEntry.action == action)
        if actor:
            filters.append(User.email == actor)
        if target:
            filters.append(AuditEntry.target_id == target)
        async with session_factory()() as session:
            total = (await session.execute(count.where(*filters))).scalar_one()
            rows = (
                await session.execute(
                    query.where(*filters)
                    .order_by(AuditEntry.created_at.desc())
                    .limit(PAGE_SIZE)
                    .offset((page - 1) * PAGE_SIZE)
                )
            ).all()
            actions = (
                await session.execute(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
            ).scalars()
            action_list = list(actions)
        return Template(
            "admin/audit.html",
            context={
                "rows": rows,
                "actions": action_list,
                "filters": {"action": action, "actor": actor, "target": target},
                "page": page,
                "total": total,
                "has_next": page * PAGE_SIZE < total,
            },
        )
