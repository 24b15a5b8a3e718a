"""The public side of tutor profiles: the profile page, its intro-video page, approved photos,
and the students' saved tutors ("my tutors").

Pages:

- ``GET /tutors/{slug}``: the live version of an approved profile (admins also see profiles that
  are not public, with a notice), its reviews (``?page=N``, 10 per page, newest first), the calls
  to action (message, book, save), schema.org JSON-LD and Open Graph tags. A fixed number of SQL
  statements whatever the number of reviews.
- ``GET /tutors/{slug}/video``: the intro video, embedded from the privacy-friendly host
  (youtube-nocookie.com, Vimeo with ``dnt=1``). The profile page only links here, so no
  third-party request happens before a visitor asks to play the video.
- ``GET /media/tutors/{sha256}-{size}.{ext}``: a photo rendition, only when it belongs to a
  profile the public can see (admins: any profile), cached for a year (names are content hashes).
- ``POST /tutors/{slug}/favourite`` and ``/unfavourite``: students save a tutor; htmx gets the
  toggle button back, a plain form is redirected (303) back.
- ``GET /my/tutors``: the student's saved tutors.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, get_currency_precision
from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import File, Redirect, Template
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory, transaction
from marketplace.errors import NotFound
from marketplace.i18n import current_locale, ngettext
from marketplace.i18n import gettext as _
from marketplace.reviews.models import Review
from marketplace.settings import get_settings
from marketplace.tutors import services
from marketplace.tutors.controllers import age_labels, level_labels, media_dir, photo_file_name
from marketplace.tutors.models import Favourite, ProfileStatus, TaxonomyTerm, TutorProfile
from marketplace.tutors.text import TextError, language_name, parse_intro_video, render_bio
from marketplace.web import current_user, flash, form_data, is_htmx, redirect, role_required, safe_next

REVIEWS_PER_PAGE = 10
MY_TUTORS_LIMIT = 200
MAX_PAGE = 10_000
OG_IMAGE_SIZE = 640
PHOTO_SIZE = 256
THUMB_SIZE = 96
# <64 hex digits of the original's sha256>-<nominal size>.<webp|jpg>; nothing else is ever served.
MEDIA_NAME = re.compile(r"(?P<hash>[0-9a-f]{64})-(?P<size>96|256|640)\.(?P<ext>webp|jpg)")
MEDIA_TYPES = {"webp": "image/webp", "jpg": "image/jpeg"}
YEAR = 365 * 24 * 3600

student_required = role_required(Role.student)

#: Parts of the profile page that other domains render (scheduling's week picker): each is
#: ``async (session, request, context) -> dict`` whose result is merged into the page's context.
#: A domain registers its section when it is imported, so the core never imports a domain.
ProfileSection = Callable[[AsyncSession, Request, dict[str, Any]], Awaitable[dict[str, Any]]]
PROFILE_SECTIONS: list[ProfileSection] = []


def register_profile_section(section: ProfileSection) -> None:
    if section not in PROFILE_SECTIONS:
        PROFILE_SECTIONS.append(section)


# ---- small formatting helpers --------------------------------------------------------------


def _locale() -> Locale:
    try:
        return Locale.parse(current_locale())
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def country_name(code: str | None) -> str:
    if not code:
        return ""
    return _locale().territories.get(code.upper(), code)


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def average_rating(rating_sum: int, rating_count: int) -> Decimal | None:
    """The average with one decimal, rounded half up (4.25 -> 4.3)."""
    if not rating_count:
        return None
    return (Decimal(rating_sum) / Decimal(rating_count)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def stars(value: Decimal | int) -> str:
    """Five stars as text, filled to the nearest whole star: 4.5 -> "★★★★★", 4.4 -> "★★★★☆"."""
    full = int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    full = max(0, min(5, full))
    return "★" * full + "☆" * (5 - full)


@dataclass(frozen=True, slots=True)
class Rating:
    average: Decimal | None
    count: int

    @property
    def text(self) -> str:
        return format_decimal(self.average, format="0.0", locale=_locale()) if self.average is not None else ""

    @property
    def stars(self) -> str:
        return stars(self.average) if self.average is not None else ""

    @property
    def label(self) -> str:
        if self.average is None:
            return _("No reviews yet")
        return ngettext(
            "Rated %(rating)s out of 5 from %(num)d review",
            "Rated %(rating)s out of 5 from %(num)d reviews",
            self.count,
            rating=self.text,
        )


def rating_of(profile: TutorProfile) -> Rating:
    return Rating(average_rating(profile.rating_sum, profile.rating_count), profile.rating_count)


def major_units(minor: int, currency: str) -> str:
    """A price in minor units as a plain decimal string for machines ("45.00")."""
    digits = get_currency_precision(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def photo_url(photo: dict[str, Any] | None, size: int, ext: str = "webp") -> str | None:
    if not photo or not photo.get("hash"):
        return None
    sizes = photo.get("sizes") or []
    if ext == "webp" and sizes and size not in sizes:
        size = max(sizes)
    return "/media/tutors/" + photo_file_name(photo["hash"], size, ext)


def safe_json(data: Any) -> Markup:
    """JSON for a ``<script type="application/ld+json">`` block: "<", ">" and "&" are escaped as
    JSON unicode escapes, so no value can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # noqa: S704  # escaped just above; JSON-LD is data, never executed


def _page_number(raw: str | None) -> int:
    return max(1, min(int(raw), MAX_PAGE)) if raw and raw.isdigit() and len(raw) < 8 else 1


# ---- selectors -----------------------------------------------------------------------------


async def term_names(session: AsyncSession, doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Names in the viewer's locale of the taxonomy terms the document uses (retired ones too)."""
    slugs = {item.get("slug") for item in doc.get("instruments") or []}
    slugs |= set(doc.get("genres") or []) | set(doc.get("languages") or [])
    slugs.discard(None)
    if not slugs:
        return {}
    locale = current_locale()
    rows = await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.slug.in_(sorted(slugs))))
    return {(term.kind.value, term.slug): term.name(locale) for term in rows.scalars()}


def lesson_language(code: str, names: dict[tuple[str, str], str]) -> str:
    try:
        return capitalise(language_name(code, current_locale()))
    except TextError:
        return names.get(("language", code), code)


def profile_view(doc: dict[str, Any], names: dict[tuple[str, str], str]) -> dict[str, Any]:
    """The profile document as display values in the viewer's language."""
    levels, ages = level_labels(), age_labels()
    city = doc.get("city") or None
    currency = doc.get("currency") or "EUR"
    video = None
    if doc.get("intro_video"):
        try:
            video = parse_intro_video(doc["intro_video"])
        except TextError:
            video = None
    try:
        bio_html = render_bio(doc.get("bio") or "")
    except TextError:
        bio_html = Markup("")
    qualifications = [line for line in (doc.get("qualifications") or "").split("\n") if line.strip()]
    return {
        "display_name": doc.get("display_name") or "",
        "headline": doc.get("headline") or "",
        "photo": doc.get("photo"),
        "photo_url": photo_url(doc.get("photo"), PHOTO_SIZE),
        "bio_html": bio_html,
        "instruments": [
            {
                "name": names.get(("instrument", item.get("slug")), item.get("slug")),
                "levels": [levels.get(level, level) for level in item.get("levels", [])],
            }
            for item in doc.get("instruments") or []
        ],
        "genres": [names.get(("genre", slug), slug) for slug in doc.get("genres") or []],
        "languages": [lesson_language(code, names) for code in doc.get("languages") or []],
        "ages": [ages.get(age, age) for age in doc.get("age_groups") or []],
        "city": city,
        "country": country_name(city.get("country")) if city else "",
        "online": bool(doc.get("online")),
        "in_person": bool(doc.get("in_person")),
        "radius": doc.get("travel_radius_km") or 0,
        "currency": currency,
        "durations": [d for d in doc.get("durations") or [] if d.get("price") is not None],
        "trial": doc.get("trial") if (doc.get("trial") or {}).get("price") is not None else None,
        "video": video,
        "experience_years": doc.get("experience_years"),
        "qualifications": qualifications,
    }


async def reviews_page(session: AsyncSession, *, tutor_id: uuid.UUID, page: int) -> dict[str, Any]:
    """One page of the tutor's visible reviews, newest first, with the reviewer's first name."""
    visible = (Review.tutor_id == tutor_id, Review.hidden_at.is_(None))
    total = (await session.execute(select(func.count()).select_from(Review).where(*visible))).scalar_one()
    pages = max(1, -(-total // REVIEWS_PER_PAGE))
    page = min(page, pages)
    rows = (
        await session.execute(
            select(Review, User.display_name)
            .join(User, User.id == Review.student_id)
            .where(*visible)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(REVIEWS_PER_PAGE)
            .offset((page - 1) * REVIEWS_PER_PAGE)
        )
    ).all()
    items = [
        {
            "review": review,
            "author": (name or "").split(" ")[0] or _("A student"),
            "stars": stars(review.rating),
            "label": _("Rated %(rating)d out of 5", rating=review.rating),
            "paragraphs": [p for p in review.text.split("\n") if p.strip()],
            "reply": [p for p in (review.reply_text or "").split("\n") if p.strip()],
        }
        for review, name in rows
    ]
    return {"entries": items, "page": page, "pages": pages, "total": total}


async def is_favourite(session: AsyncSession, *, student: User | None, profile_id: uuid.UUID) -> bool:
    if student is None or student.role != Role.student:
        return False
    found = await session.execute(
        select(Favourite.id).where(Favourite.student_id == student.id, Favourite.profile_id == profile_id)
    )
    return found.first() is not None


def profile_jsonld(view: dict[str, Any], rating: Rating, *, url: str, image: str | None) -> dict[str, Any]:
    """schema.org ProfessionalService: name, description, image, address, rating and offers."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ProfessionalService",
        "name": view["display_name"],
        "description": view["headline"],
        "url": url,
    }
    if image:
        data["image"] = image
    if view["city"]:
        data["address"] = {
            "@type": "PostalAddress",
            "addressLocality": view["city"].get("name", ""),
            "addressCountry": view["city"].get("country", ""),
        }
    if rating.average is not None:
        data["aggregateRating"] = {
            "@type": "AggregateRating",
            "ratingValue": str(rating.average),
            "reviewCount": rating.count,
            "bestRating": 5,
            "worstRating": 1,
        }
    offers = [
        {
            "@type": "Offer",
            "name": _("%(minutes)d-minute lesson", minutes=item["minutes"]),
            "price": major_units(item["price"], view["currency"]),
            "priceCurrency": view["currency"],
        }
        for item in view["durations"]
    ]
    if view["trial"]:
        offers.append(
            {
                "@type": "Offer",
                "name": _("%(minutes)d-minute trial lesson", minutes=view["trial"]["minutes"]),
                "price": major_units(view["trial"]["price"], view["currency"]),
                "priceCurrency": view["currency"],
            }
        )
    if offers:
        data["makesOffer"] = offers
    return data


def not_public_notice(profile: TutorProfile, banned: bool) -> str | None:
    """Why an admin sees a profile the public does not, or None when it is public."""
    if banned:
        return _("The tutor is banned: only admins can see this profile.")
    if profile.status == ProfileStatus.suspended:
        return _("This profile is suspended: only admins can see it.")
    if not profile.is_public:
        return _("This profile is not approved yet: only admins can see it. It shows the submitted version.")
    return None


async def load_profile(session: AsyncSession, *, slug: str, viewer: User | None) -> tuple[TutorProfile, bool]:
    """The profile the viewer may see, and whether its tutor is banned (one statement)."""
    return await services.profile_lookup(session, slug=slug, viewer=viewer)


def document(profile: TutorProfile) -> dict[str, Any]:
    """What the page shows: the live version; for an admin looking at a never-approved profile, the draft."""
    return profile.live if profile.live is not None else (profile.draft or {})


async def profile_page_context(session: AsyncSession, *, slug: str, viewer: User | None, page: int) -> dict[str, Any]:
    profile, banned = await load_profile(session, slug=slug, viewer=viewer)
    doc = document(profile)
    view = profile_view(doc, await term_names(session, doc))
    reviews = await reviews_page(session, tutor_id=profile.user_id, page=page)
    saved = await is_favourite(session, student=viewer, profile_id=profile.id)
    base = get_settings().base_url
    url = f"{base}/tutors/{profile.slug}"
    og_image = photo_url(view["photo"], OG_IMAGE_SIZE, "jpg")
    rating = rating_of(profile)
    jsonld = profile_jsonld(view, rating, url=url, image=f"{base}{og_image}" if og_image else None)
    return {
        "profile": profile,
        "p": view,
        "rating": rating,
        "reviews": reviews,
        "saved": saved,
        "viewer": viewer,
        "is_student": viewer is not None and viewer.role == Role.student,
        "is_own": viewer is not None and viewer.id == profile.user_id,
        "notice": not_public_notice(profile, banned) if viewer is not None and viewer.role == Role.admin else None,
        "canonical_url": url,
        "og_image": f"{base}{og_image}" if og_image else None,
        "jsonld": safe_json(jsonld),
        "profile_path": f"/tutors/{profile.slug}",
    }


async def favourite_set(session: AsyncSession, *, student: User, slug: str, saved: bool) -> TutorProfile:
    """Save (or forget) a public tutor for a student; idempotent."""
    profile = await services.profile_public(session, slug=slug, viewer=None)
    if saved:
        exists = await is_favourite(session, student=student, profile_id=profile.id)
        if not exists:
            session.add(Favourite(student_id=student.id, profile_id=profile.id))
            await session.flush()
    else:
        await session.execute(
            delete(Favourite).where(Favourite.student_id == student.id, Favourite.profile_id == profile.id)
        )
    return profile


async def favourites_list(session: AsyncSession, *, student: User) -> list[dict[str, Any]]:
    """The student's saved tutors that the public can still see, most recently saved first."""
    rows = (
        await session.execute(
            select(TutorProfile)
            .join(Favourite, Favourite.profile_id == TutorProfile.id)
            .join(User, User.id == TutorProfile.user_id)
            .where(
                Favourite.student_id == student.id,
                TutorProfile.status == ProfileStatus.approved,
                TutorProfile.live.is_not(None),
                User.banned_at.is_(None),
            )
            .order_by(Favourite.created_at.desc(), Favourite.id)
            .limit(MY_TUTORS_LIMIT)
        )
    ).scalars()
    items = []
    for profile in rows:
        live = profile.live or {}
        if not live:
            continue
        items.append(
            {
                "slug": profile.slug,
                "name": live.get("display_name", ""),
                "headline": live.get("headline", ""),
                "photo_url": photo_url(live.get("photo"), THUMB_SIZE),
                "rating": rating_of(profile),
            }
        )
    return items


async def media_visible(session: AsyncSession, *, photo_hash: str, viewer: User | None) -> bool:
    """Does a photo belong to a profile this viewer may see (public: approved, tutor not banned)?"""
    live_hash = TutorProfile.live["photo"]["hash"].as_string()
    query = select(TutorProfile.id).join(User, User.id == TutorProfile.user_id)
    if viewer is not None and viewer.role == Role.admin:
        draft_hash = TutorProfile.draft["photo"]["hash"].as_string()
        query = query.where(or_(live_hash == photo_hash, draft_hash == photo_hash))
    else:
        query = query.where(
            live_hash == photo_hash, TutorProfile.status == ProfileStatus.approved, User.banned_at.is_(None)
        )
    return (await session.execute(query.limit(1))).first() is not None


# ---- controllers ---------------------------------------------------------------------------


def _wants_reviews_partial(request: Request) -> bool:
    return (
        is_htmx(request)
        and request.headers.get("hx-target") == "reviews"
        and request.headers.get("hx-history-restore-request") != "true"
    )


class PublicProfileController(Controller):
    """The public profile page, its video page and the approved photos."""

    path = "/"
    include_in_schema = False
    tags = ["tutors"]

    @get("/tutors/{slug:str}", name="tutor_public")
    async def show(self, request: Request, slug: FromPath[str]) -> Template:
        viewer = current_user(request)
        page = _page_number(request.query_params.get("page"))
        reviews_only = _wants_reviews_partial(request)
        async with session_factory()() as session:
            context = await profile_page_context(session, slug=slug, viewer=viewer, page=page)
            for section in PROFILE_SECTIONS if not reviews_only else ():
                context.update(await section(session, request, context))
        name = "profiles/_reviews.html" if reviews_only else "profiles/profile.html"
        return Template(name, context=context, headers={"Vary": "HX-Request, HX-Target"})

    @get("/tutors/{slug:str}/video", name="tutor_public_video")
    async def video(self, request: Request, slug: FromPath[str]) -> Template:
        viewer = current_user(request)
        async with session_factory()() as session:
            profile, _banned = await load_profile(session, slug=slug, viewer=viewer)
        doc = document(profile)
        video = None
        if doc.get("intro_video"):
            try:
                video = parse_intro_video(doc["intro_video"])
            except TextError:
                video = None
        if video is None:
            raise NotFound(_("This tutor has no intro video."))
        return Template(
            "profiles/video.html",
            context={
                "profile": profile,
                "name": doc.get("display_name") or "",
                "video": video,
                "profile_path": f"/tutors/{profile.slug}",
            },
        )

    @get("/media/tutors/{name:str}", name="tutor_media")
    async def media(self, request: Request, name: FromPath[str]) -> File:
        match = MEDIA_NAME.fullmatch(name)
        if match is None:
            raise NotFound(_("We could not find that photo."))
        folder = media_dir().resolve()
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():
            raise NotFound(_("We could not find that photo."))
        viewer = current_user(request)
        async with session_factory()() as session:
            visible = await media_visible(session, photo_hash=match["hash"], viewer=None)
            if not visible and viewer is not None and viewer.role == Role.admin:
                admin_only = await media_visible(session, photo_hash=match["hash"], viewer=viewer)
                if admin_only:
                    return File(
                        path=path,
                        media_type=MEDIA_TYPES[match["ext"]],
                        content_disposition_type="inline",
                        headers={"Cache-Control": "private, no-store"},
                    )
        if not visible:
            raise NotFound(_("We could not find that photo."))
        return File(
            path=path,
            media_type=MEDIA_TYPES[match["ext"]],
            content_disposition_type="inline",
            headers={"Cache-Control": f"public, max-age={YEAR}, immutable"},
        )


class FavouritesController(Controller):
    """Students save tutors ("my tutors")."""

    path = "/"
    guards = [student_required]
    include_in_schema = False
    tags = ["tutors"]

    @post("/tutors/{slug:str}/favourite", name="tutor_favourite")
    async def favourite(self, request: Request, slug: FromPath[str]) -> Template | Redirect:
        return await self._toggle(request, slug, saved=True)

    @post("/tutors/{slug:str}/unfavourite", name="tutor_unfavourite")
    async def unfavourite(self, request: Request, slug: FromPath[str]) -> Template | Redirect:
        return await self._toggle(request, slug, saved=False)

    async def _toggle(self, request: Request, slug: str, *, saved: bool) -> Template | Redirect:
        form = await form_data(request)
        student = current_user(request)
        try:
            async with transaction() as session:
                profile = await favourite_set(session, student=student, slug=slug, saved=saved)
                profile_slug = profile.slug
        except IntegrityError:  # saved twice at the same moment: the first one counts
            profile_slug = slug
        if is_htmx(request):
            return Template(
                "profiles/_favourite.html",
                context={"slug": profile_slug, "saved": saved, "next": safe_next(form.get("next"), "")},
            )
        flash(request, _("Saved to your tutors.") if saved else _("Removed from your tutors."))
        return redirect(safe_next(form.get("next"), f"/tutors/{profile_slug}"))

    @get("/my/tutors", name="my_tutors")
    async def my_tutors(self, request: Request) -> Template:
        async with session_factory()() as session:
            items = await favourites_list(session, student=current_user(request))
        return Template("profiles/my_tutors.html", context={"items": items})
