"""Admin pages for people and the taxonomy: find users, ban and unban them; edit the names of
instruments, genres and lesson languages, add new ones and retire old ones. Every change is audited."""

from __future__ import annotations

import re
import uuid

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from marketplace.accounts.models import Role, User
from marketplace.accounts.services import user_ban, user_unban
from marketplace.audit import audit_record
from marketplace.db import session_factory, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.settings import SUPPORTED_LOCALES
from marketplace.tutors.models import TaxonomyKind, TaxonomyTerm
from marketplace.web import admin_required, current_user, flash, form_data, redirect

PAGE_SIZE = 50
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _page(raw: str | None) -> int:
    return max(1, min(int(raw), 10_000)) if raw and raw.isdigit() else 1


async def taxonomy_save(
    session, *, admin: User, term_id: uuid.UUID | None, kind: str, slug: str, names: dict[str, str], active: bool
) -> TaxonomyTerm:
    """Create or edit a taxonomy term (names in every supported locale), audited."""
    errors: dict[str, str] = {}
    if kind not in {k.value for k in TaxonomyKind}:
        errors["kind"] = _("Choose a kind from the list.")
    cleaned = {loc: " ".join((names.get(loc) or "").split()) for loc in SUPPORTED_LOCALES}
    for loc, name in cleaned.items():
        if not name or len(name) > 80 or "<" in name:
            errors[f"name_{loc}"] = _("Enter a name of at most 80 characters, without HTML.")
    term = await session.get(TaxonomyTerm, term_id) if term_id else None
    if term_id and term is None:
        raise NotFound(_("We could not find that entry."))
    if term is None:
        slug = (slug or "").strip().lower()
        if not SLUG_RE.match(slug) or len(slug) > 64:
            errors["slug"] = _("Use lower-case letters, digits and hyphens, like “electric-guitar”.")
    if errors:
        raise ValidationFailed(_("The entry was not saved."), errors=errors)
    if term is None:
        exists = await session.execute(
            select(TaxonomyTerm.id).where(TaxonomyTerm.kind == TaxonomyKind(kind), TaxonomyTerm.slug == slug)
        )
        if exists.first():
            raise Conflict(_("An entry with this identifier already exists."))
        term = TaxonomyTerm(kind=TaxonomyKind(kind), slug=slug, names=cleaned, active=active)
        session.add(term)
        await session.flush()
        before = None
    else:
        before = {"names": term.names, "active": term.active}
        term.names = cleaned
        term.active = active
    await audit_record(
        session,
        actor_id=admin.id,
        action="taxonomy.save",
        target_type="taxonomy_term",
        target_id=term.id,
        before=before,
        after={"kind": term.kind.value, "slug": term.slug, "names": cleaned, "active": active},
    )
    return term


class PeopleController(Controller):
    path = "/admin"
    guards = [admin_required]
    include_in_schema = False

    @get("/users", name="admin_users")
    async def users(self, request: Request) -> Template:
        q = (request.query_params.get("q") or "").strip()[:100]
        role = request.query_params.get("role", "")
        page = _page(request.query_params.get("page"))
        filters = []
        if q:
            like = f"%{q.lower()}%"
            filters.append(or_(User.email.like(like), func.lower(User.display_name).like(like)))
        if role in {r.value for r in Role}:
            filters.append(User.role == Role(role))
        async with session_factory()() as session:
            total = (await session.execute(select(func.count()).select_from(User).where(*filters))).scalar_one()
            users = (
                (
                    await session.execute(
                        select(User)
                        .where(*filters)
                        .order_by(User.created_at.desc())
                        .limit(PAGE_SIZE)
                        .offset((page - 1) * PAGE_SIZE)
                    )
                )
                .scalars()
                .all()
            )
        return Template(
            "admin/users.html",
            context={
                "users": users,
                "q": q,
                "role": role,
                "page": page,
                "total": total,
                "has_next": page * PAGE_SIZE < total,
                "errors": {},
            },
        )

    @post("/users/{user_id:uuid}/{action:str}", name="admin_user_action")
    async def user_action(self, request: Request, user_id: FromPath[uuid.UUID], action: FromPath[str]) -> Redirect:
        if action not in ("ban", "unban"):
            raise NotFound(_("This action does not exist."))
        form = await form_data(request)
        async with transaction() as session:
            admin = await session.get(User, current_user(request).id)
            verb = user_ban if action == "ban" else user_unban
            user = await verb(session, admin=admin, user_id=user_id, reason=form.get("reason", ""))
        flash(
            request,
            _("%(email)s was banned.") % {"email": user.email}
            if action == "ban"
            else _("%(email)s may use Cadenza again.") % {"email": user.email},
        )
        return redirect(f"/admin/users?q={user.email}")

    @get("/taxonomy", name="admin_taxonomy")
    async def taxonomy(self, request: Request) -> Template:
        return await self._taxonomy(request)

    async def _taxonomy(
        self, request: Request, *, errors: dict | None = None, form: dict | None = None, status_code: int = 200
    ) -> Template:
        kind = request.query_params.get("kind") or (form or {}).get("kind") or "instrument"
        if kind not in {k.value for k in TaxonomyKind}:
            kind = "instrument"
        async with session_factory()() as session:
            terms = (
                (await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.kind == TaxonomyKind(kind))))
                .scalars()
                .all()
            )
        from marketplace.i18n import current_locale

        locale = current_locale()
        terms = sorted(terms, key=lambda t: t.name(locale).casefold())
        return Template(
            "admin/taxonomy.html",
            context={
                "terms": terms,
                "kind": kind,
                "kinds": list(TaxonomyKind),
                "errors": errors or {},
                "form": form or {},
                "locales": SUPPORTED_LOCALES,
            },
            status_code=status_code,
        )

    @post("/taxonomy", name="admin_taxonomy_save")
    async def taxonomy_post(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        raw_id = form.get("term_id", "")
        try:
            term_id = uuid.UUID(raw_id) if raw_id else None
        except ValueError as exc:
            raise NotFound(_("We could not find that entry.")) from exc
        try:
            async with transaction() as session:
                admin = await session.get(User, current_user(request).id)
                term = await taxonomy_save(
                    session,
                    admin=admin,
                    term_id=term_id,
                    kind=form.get("kind", ""),
                    slug=form.get("slug", ""),
                    names={loc: form.get(f"name_{loc}", "") for loc in SUPPORTED_LOCALES},
                    active=form.get("active") == "1",
                )
        except ValidationFailed as exc:
            return await self._taxonomy(request, errors=exc.errors, form=form, status_code=422)
        flash(request, _("Saved."))
        return redirect(f"/admin/taxonomy?kind={term.kind.value}")
