"""Tutor profile verbs: onboarding steps, submission, moderation (approve, reject, suspend,
reinstate) with re-approval of material edits while the approved version stays live.

State machine (``TutorProfile.status``)::

    draft --submit--> pending --approve--> approved --suspend--> suspended --reinstate--> approved
                        |  ^                  |  \\
                     reject |          material edit + submit: changes_pending (live unchanged)
                        v  |                       --approve--> live = draft
                     rejected --submit--> pending  --reject--> changes dropped, live unchanged

Every admin verb writes an audit record in the same transaction; a rejection mails the reason.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.audit import audit_reason, audit_record
from marketplace.db import utcnow
from marketplace.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.i18n import use_locale
from marketplace.mail import mail_queue
from marketplace.ports import search_indexer
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TaxonomyTerm, TutorProfile
from marketplace.tutors.places import fold
from marketplace.tutors.schemas import NON_MATERIAL_FIELDS, STEPS

REQUIRED_FIELDS = ("display_name", "headline", "instruments", "age_groups", "languages", "currency", "durations")


def slugify(value: str) -> str:
    import re

    slug = re.sub(r"[^a-z0-9]+", "-", fold(value)).strip("-")[:60].strip("-")
    return slug or "tutor"


RESERVED_SLUGS = frozenset({"cities", "search", "new", "api", "admin", "static", "media"})


async def _unique_slug(session: AsyncSession, base: str, *, exclude: uuid.UUID | None = None) -> str:
    base = slugify(base)
    if base in RESERVED_SLUGS:  # would clash with a page under /tutors/
        base = f"{base}-tutor"
    taken = set(
        (
            await session.execute(
                select(TutorProfile.slug).where(
                    TutorProfile.slug.like(f"{base}%"), TutorProfile.id != (exclude or uuid.UUID(int=0))
                )
            )
        ).scalars()
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def taxonomy_slugs(session: AsyncSession, kind: TaxonomyKind) -> set[str]:
    rows = await session.execute(
        select(TaxonomyTerm.slug).where(TaxonomyTerm.kind == kind, TaxonomyTerm.active.is_(True))
    )
    return set(rows.scalars())


async def profile_for_user(session: AsyncSession, *, user: User) -> TutorProfile | None:
    return (await session.execute(select(TutorProfile).where(TutorProfile.user_id == user.id))).scalar_one_or_none()


async def profile_start(session: AsyncSession, *, user: User) -> TutorProfile:
    """The tutor's profile, created as a draft on first use (onboarding resumes where it stopped)."""
    if user.role not in (Role.tutor, Role.admin):
        raise Forbidden(_("Only tutors have a tutor profile."))
    profile = await profile_for_user(session, user=user)
    if profile is None:
        profile = TutorProfile(
            user_id=user.id,
            slug=await _unique_slug(session, user.display_name),
            status=ProfileStatus.draft,
            onboarding_step=0,
            draft={"display_name": user.display_name},
        )
        session.add(profile)
        await session.flush()
    return profile


async def profile_save_step(session: AsyncSession, *, user: User, step: str, fragment: dict[str, Any]) -> TutorProfile:
    """Store a validated step of the draft. Non-material fields of an approved profile go live at once."""
    if step not in STEPS:
        raise NotFound(_("This step does not exist."))
    profile = await profile_start(session, user=user)
    if profile.status == ProfileStatus.suspended:
        raise Forbidden(_("Your profile is suspended. Please contact us."))
    draft = copy.deepcopy(profile.draft or {})
    draft.update(fragment)
    profile.draft = draft
    index = STEPS.index(step) + 1
    profile.onboarding_step = max(profile.onboarding_step, index)
    if profile.live is not None:
        live = copy.deepcopy(profile.live)
        for field in NON_MATERIAL_FIELDS & fragment.keys():
            live[field] = copy.deepcopy(fragment[field])
        if live != profile.live:
            profile.live = live
            search_indexer().schedule(session, profile.id)
    return profile


def profile_missing(profile: TutorProfile) -> list[str]:
    return [f for f in REQUIRED_FIELDS if not profile.draft.get(f)]


def profile_diff(profile: TutorProfile) -> list[tuple[str, Any, Any]]:
    """Fields whose draft differs from the live version: (field, live value, draft value)."""
    live = profile.live or {}
    draft = profile.draft or {}
    return [(k, live.get(k), draft.get(k)) for k in sorted(set(live) | set(draft)) if live.get(k) != draft.get(k)]


def has_material_changes(profile: TutorProfile) -> bool:
    return any(field not in NON_MATERIAL_FIELDS for field, _live, _draft in profile_diff(profile))


async def profile_submit(session: AsyncSession, *, user: User) -> TutorProfile:
    profile = await profile_start(session, user=user)
    missing = profile_missing(profile)
    if missing:
        raise ValidationFailed(
            _("Your profile is not complete yet."), errors={f: _("This part is still missing.") for f in missing}
        )
    if profile.status in (ProfileStatus.draft, ProfileStatus.rejected):
        profile.status = ProfileStatus.pending
    elif profile.status == ProfileStatus.approved:
        if not has_material_changes(profile):
            raise AppError(_("There are no changes that need a review."))
        profile.changes_pending = True
    elif profile.status == ProfileStatus.suspended:
        raise Forbidden(_("Your profile is suspended. Please contact us."))
    profile.submitted_at = utcnow()
    profile.rejection_reason = None
    return profile


async def _admin_profile(session: AsyncSession, admin: User, profile_id: uuid.UUID) -> TutorProfile:
    if admin.role != Role.admin:
        raise Forbidden(_("Only admins can do this."))
    profile = await session.get(TutorProfile, profile_id, with_for_update=True)
    if profile is None:
        raise NotFound(_("We could not find that profile."))
    return profile


def _state(profile: TutorProfile) -> dict[str, Any]:
    return {"status": profile.status.value, "changes_pending": profile.changes_pending}


async def profile_approve(session: AsyncSession, *, admin: User, profile_id: uuid.UUID) -> TutorProfile:
    profile = await _admin_profile(session, admin, profile_id)
    if not (profile.status == ProfileStatus.pending or profile.changes_pending):
        raise Conflict(_("This profile is not waiting for approval."))
    before = {**_state(profile), "live": profile.live}
    profile.live = copy.deepcopy(profile.draft)
    profile.status = ProfileStatus.approved
    profile.changes_pending = False
    profile.approved_at = utcnow()
    search_indexer().schedule(session, profile.id)
    await audit_record(
        session,
        actor_id=admin.id,
        action="profile.approve",
        target_type="tutor_profile",
        target_id=profile.id,
        before=before,
        after={**_state(profile), "live": profile.live},
    )
    return profile


async def profile_reject(session: AsyncSession, *, admin: User, profile_id: uuid.UUID, reason: str) -> TutorProfile:
    profile = await _admin_profile(session, admin, profile_id)
    reason = audit_reason(reason)
    if not (profile.status == ProfileStatus.pending or profile.changes_pending):
        raise Conflict(_("This profile is not waiting for approval."))
    before = _state(profile)
    if profile.changes_pending:
        profile.changes_pending = False  # the approved version stays live
    else:
        profile.status = ProfileStatus.rejected
    profile.rejection_reason = reason
    await audit_record(
        session,
        actor_id=admin.id,
        action="profile.reject",
        target_type="tutor_profile",
        target_id=profile.id,
        before=before,
        after=_state(profile),
        reason=reason,
    )
    tutor = await session.get(User, profile.user_id)
    with use_locale(tutor.locale, tutor.timezone):
        await mail_queue(
            session,
            to=tutor.email,
            subject=_("Your Cadenza profile needs changes"),
            body=_(
                "Hello %(name)s,\n\nwe could not publish your profile changes yet. The reason:\n\n%(reason)s\n\n"
                "Please edit your profile and submit it again."
            )
            % {"name": tutor.display_name, "reason": reason},
        )
    return profile


async def profile_suspend(session: AsyncSession, *, admin: User, profile_id: uuid.UUID, reason: str) -> TutorProfile:
    profile = await _admin_profile(session, admin, profile_id)
    reason = audit_reason(reason)
    if profile.status == ProfileStatus.suspended:
        return profile
    before = _state(profile)
    profile.status = ProfileStatus.suspended
    profile.suspension_reason = reason
    search_indexer().schedule(session, profile.id)
    await audit_record(
        session,
        actor_id=admin.id,
        action="profile.suspend",
        target_type="tutor_profile",
        target_id=profile.id,
        before=before,
        after=_state(profile),
        reason=reason,
    )
    return profile


async def profile_reinstate(
    session: AsyncSession, *, admin: User, profile_id: uuid.UUID, reason: str = ""
) -> TutorProfile:
    profile = await _admin_profile(session, admin, profile_id)
    if profile.status != ProfileStatus.suspended:
        raise Conflict(_("This profile is not suspended."))
    before = _state(profile)
    profile.status = ProfileStatus.approved if profile.live is not None else ProfileStatus.draft
    profile.suspension_reason = None
    search_indexer().schedule(session, profile.id)
    await audit_record(
        session,
        actor_id=admin.id,
        action="profile.reinstate",
        target_type="tutor_profile",
        target_id=profile.id,
        before=before,
        after=_state(profile),
        reason=(reason or "").strip()[:1000] or None,
    )
    return profile


async def profile_lookup(session: AsyncSession, *, slug: str, viewer: User | None) -> tuple[TutorProfile, bool]:
    """The profile the viewer may see and whether its tutor is banned, in one statement: 404 unless
    approved and the tutor not banned; admins see every profile."""
    row = (
        await session.execute(
            select(TutorProfile, User.banned_at)
            .join(User, User.id == TutorProfile.user_id)
            .where(TutorProfile.slug == slug[:64])
        )
    ).first()
    if row is None:
        raise NotFound(_("We could not find that tutor."))
    profile, banned_at = row
    if viewer is not None and viewer.role == Role.admin:
        return profile, banned_at is not None
    if not profile.is_public or banned_at is not None:
        raise NotFound(_("We could not find that tutor."))
    return profile, False


async def profile_public(session: AsyncSession, *, slug: str, viewer: User | None = None) -> TutorProfile:
    """The live profile for ``slug`` (see :func:`profile_lookup`)."""
    return (await profile_lookup(session, slug=slug, viewer=viewer))[0]
