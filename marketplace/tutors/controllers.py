"""Tutor onboarding wizard: a guided, resumable multi-step form that ends in a submitted profile.

Pages (all for tutors and admins; students get 403, visitors are sent to log in):

- ``GET /tutor/profile``: the steps with their state, the profile's status, "continue" link.
- ``GET/POST /tutor/profile/{step}``: one step of the draft (``schemas.STEPS``). A valid POST
  stores the step and redirects (303) to the next one; bad input re-renders the step (422) with
  the field messages and what the tutor typed, and stores nothing.
- ``GET /tutor/profile/cities?q=``: the place step's city suggestions (an htmx partial).
- ``GET /tutor/profile/photo/{size}``: the tutor's own draft photo, for the previews.
- ``GET /tutor/profile/review`` and ``POST /tutor/profile/submit``: summary and submission.

City input without JavaScript: the text field is the source of truth. A picked suggestion
(``city_id`` radio) is used when it agrees with the typed text; otherwise the typed text
("Madrid" or "Madrid, ES") is resolved with :func:`places.city_search`: an exact name match wins
over a prefix match, a country code after the comma narrows the search, and among what is left
the biggest city is taken. An empty text field means "no city".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath
from litestar.response import File, Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.db import transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import current_locale, format_money
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.tutors import schemas, services
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TaxonomyTerm, TutorProfile
from marketplace.tutors.places import City, city_get, city_search, fold
from marketplace.web import current_user, page, redirect, tutor_required

try:  # written in parallel; the photo step says "coming soon" until it exists
    from marketplace.tutors import photos
except ImportError:  # pragma: no cover - depends on the checkout
    photos = None  # type: ignore[assignment]

try:
    from marketplace.tutors import text as profile_text
except ImportError:  # pragma: no cover - depends on the checkout
    profile_text = None  # type: ignore[assignment]

BASE = "/tutor/profile"
STEP_FIELDS = {
    "basics": ("display_name", "headline"),
    "photo": ("photo",),
    "teaching": ("instruments", "age_groups"),
    "place": ("languages",),
    "pricing": ("currency", "durations"),
    "about": ("bio",),
}
OPTIONAL_STEPS = frozenset({"photo", "about"})
FIELD_STEP = {field: step for step, fields in STEP_FIELDS.items() for field in fields}
PHOTO_UPLOAD_LIMIT = (photos.MAX_UPLOAD_BYTES if photos else 8 * 1024 * 1024) + 256 * 1024
CITY_SUGGESTIONS = 8
MAX_EXPERIENCE_YEARS = 80


# ---- labels (computed per request, so they follow the viewer's language) ---------------------


def step_titles() -> dict[str, str]:
    return {
        "basics": _("Name and headline"),
        "photo": _("Photo"),
        "teaching": _("What you teach"),
        "place": _("Languages and place"),
        "pricing": _("Prices"),
        "about": _("About you"),
    }


def level_labels() -> dict[str, str]:
    return {"beginner": _("Beginner"), "intermediate": _("Intermediate"), "advanced": _("Advanced")}


def age_labels() -> dict[str, str]:
    return {"children": _("Children"), "teens": _("Teenagers"), "adults": _("Adults")}


def field_labels() -> dict[str, str]:
    return {
        "display_name": _("Your name"),
        "headline": _("Headline"),
        "photo": _("Photo"),
        "instruments": _("Instruments and levels"),
        "age_groups": _("Who you teach"),
        "languages": _("Lesson languages"),
        "currency": _("Currency"),
        "durations": _("Lesson lengths and prices"),
        "bio": _("About you"),
        "genres": _("Genres"),
        "city": _("City"),
        "online": _("Online"),
        "in_person": _("In person"),
        "travel_radius_km": _("Travel distance"),
        "trial": _("Trial lesson"),
        "intro_video": _("Introduction video"),
        "experience_years": _("Years of teaching experience"),
        "qualifications": _("Qualifications"),
    }


def photo_message(error: Exception) -> str:
    code = getattr(error, "code", "")
    params = getattr(error, "params", {}) or {}
    if code == "empty":
        return _("Choose a photo to upload.")
    if code == "too_large":
        return _("This file is too large: at most %(mb)d MB.", mb=PHOTO_UPLOAD_LIMIT // (1024 * 1024))
    if code == "unsupported_format":
        return _(
            "This image format (%(format)s) is not supported. Export it as JPEG or PNG.",
            format=str(params.get("format", "")).upper(),
        )
    if code == "animated":
        return _("Animated images are not accepted. Choose a still photo.")
    if code == "too_many_pixels":
        return _("This image has too many pixels. Choose a smaller one.")
    if code == "too_small":
        return _("This photo is too small: it needs at least %(px)d × %(px)d pixels.", px=params.get("min_width", 200))
    return _("This file is not a photo we can read. Choose a JPEG, PNG, WebP or GIF image.")


# ---- form values ---------------------------------------------------------------------------


class FormValues:
    """A form's values as lists (as browsers send them), for the templates: ``one``, ``many``."""

    def __init__(self, data: Mapping[str, Sequence[str]] | None = None) -> None:
        self.data: dict[str, list[str]] = {k: [str(v) for v in vs] for k, vs in (data or {}).items()}

    def one(self, name: str, default: str = "") -> str:
        values = self.data.get(name) or []
        return values[0] if values else default

    def many(self, name: str) -> list[str]:
        return self.data.get(name, [])

    def has(self, name: str, value: str = "1") -> bool:
        return value in self.data.get(name, [])


async def form_lists(request: Request) -> dict[str, list[str]]:
    """The submitted form with every value of every field (checkbox groups send several)."""
    form = await request.form()
    data: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "_csrf_token":
            data.setdefault(key, []).append(value)
    return data


def price_text(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    value = Decimal(minor).scaleb(-schemas.currency_digits(currency))
    return str(value.quantize(Decimal(1))) if value == value.to_integral_value() else str(value)


def city_label(city: City | dict | None) -> str:
    if not city:
        return ""
    if isinstance(city, dict):
        return f"{city.get('name', '')}, {city.get('country', '')}"
    return f"{city.name}, {city.country}"


def draft_values(step: str, draft: dict[str, Any]) -> FormValues:
    """The stored draft as the form fields of ``step`` (what a GET shows)."""
    values: dict[str, list[str]] = {}
    if step == "basics":
        values = {"display_name": [draft.get("display_name", "")], "headline": [draft.get("headline", "")]}
    elif step == "teaching":
        values["instrument"] = [item["slug"] for item in draft.get("instruments", [])]
        for item in draft.get("instruments", []):
            values[f"levels_{item['slug']}"] = list(item.get("levels", []))
        values["genre"] = list(draft.get("genres", []))
        values["age_group"] = list(draft.get("age_groups", []))
    elif step == "place":
        values["language"] = list(draft.get("languages", []))
        if draft.get("online"):
            values["online"] = ["1"]
        if draft.get("in_person"):
            values["in_person"] = ["1"]
        if draft.get("city"):
            values["city"] = [city_label(draft["city"])]
            values["city_id"] = [str(draft["city"].get("geonameid", ""))]
        if "travel_radius_km" in draft:
            values["travel_radius_km"] = [str(draft["travel_radius_km"])]
    elif step == "pricing":
        currency = draft.get("currency") or "EUR"
        values["currency"] = [currency]
        for item in draft.get("durations", []):
            values[f"offer_{item['minutes']}"] = ["1"]
            values[f"price_{item['minutes']}"] = [price_text(item.get("price"), currency)]
        trial = draft.get("trial")
        if trial:
            values["trial"] = ["1"]
            values["trial_minutes"] = [str(trial.get("minutes", ""))]
            values["trial_price"] = [price_text(trial.get("price"), currency)]
    elif step == "about":
        for key in ("bio", "intro_video", "qualifications"):
            if draft.get(key):
                values[key] = [str(draft[key])]
        if draft.get("experience_years") is not None:
            values["experience_years"] = [str(draft["experience_years"])]
    return FormValues(values)


# ---- cities --------------------------------------------------------------------------------


def _split_city_text(typed: str) -> tuple[str, str]:
    name, _sep, country = typed.partition(",")
    return name.strip(), country.strip().upper()


def _city_matches(city: City, typed: str) -> bool:
    """Does the typed text still describe the picked city?"""
    name, country = _split_city_text(typed)
    if country and country != city.country:
        return False
    return any(c.geonameid == city.geonameid for c in city_search(name, limit=500))


def city_from_text(typed: str) -> City | None:
    """Resolve a typed city: exact name before prefix, country code narrows, biggest first."""
    name, country = _split_city_text(typed)
    candidates = city_search(name, limit=500)
    if country:
        candidates = [c for c in candidates if c.country == country]
    exact = [c for c in candidates if fold(c.name) == fold(name)]
    pool = exact or candidates
    return pool[0] if pool else None


def resolve_city(data: dict[str, list[str]]) -> tuple[dict[str, list[str]], str | None]:
    """Put the ``city_id`` that the typed city text means into ``data`` (see the module doc)."""
    typed = " ".join(FormValues(data).one("city").split())[:100]
    chosen = FormValues(data).one("city_id")
    data = {**data, "city": [typed]}
    if not typed:
        data.pop("city_id", None)
        return data, None
    if chosen:
        city = city_get(int(chosen)) if chosen.isdigit() and len(chosen) < 12 else None
        if city is None or _city_matches(city, typed):
            return data, None  # an unknown id is reported by clean_place
    city = city_from_text(typed)
    if city is None:
        data.pop("city_id", None)
        return data, _("We found no city called “%(name)s”. Check the spelling or pick a suggestion.", name=typed)
    data["city_id"] = [str(city.geonameid)]
    return data, None


# ---- loading -------------------------------------------------------------------------------


async def taxonomy_options(session: AsyncSession, kind: TaxonomyKind) -> list[tuple[str, str]]:
    """Active terms of ``kind`` as (slug, name in the viewer's language), sorted by that name."""
    rows = await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.kind == kind, TaxonomyTerm.active.is_(True)))
    locale = current_locale()
    terms = [(term.slug, term.name(locale)) for term in rows.scalars()]
    return sorted(terms, key=lambda item: (fold(item[1]), item[0]))


def _check_step(step: str) -> None:
    if step not in schemas.STEPS:
        raise NotFound(_("This step does not exist."))


def next_url(step: str) -> str:
    index = schemas.STEPS.index(step)
    return f"{BASE}/{schemas.STEPS[index + 1]}" if index + 1 < len(schemas.STEPS) else f"{BASE}/review"


def previous_url(step: str) -> str | None:
    index = schemas.STEPS.index(step)
    return f"{BASE}/{schemas.STEPS[index - 1]}" if index > 0 else None


def step_available(step: str) -> bool:
    if step == "photo":
        return photos is not None
    if step == "about":
        return profile_text is not None
    return True


def step_states(profile: TutorProfile) -> list[dict[str, Any]]:
    """Each step with its state: done, skipped (optional and passed by), or todo."""
    draft = profile.draft or {}
    titles = step_titles()
    states = []
    for index, step in enumerate(schemas.STEPS):
        done = all(draft.get(field) for field in STEP_FIELDS[step])
        if done:
            state = "done"
        elif step in OPTIONAL_STEPS and (index < profile.onboarding_step or not step_available(step)):
            state = "skipped"
        else:
            state = "todo"
        states.append(
            {
                "step": step,
                "number": index + 1,
                "title": titles[step],
                "state": state,
                "optional": step in OPTIONAL_STEPS,
                "url": f"{BASE}/{step}",
            }
        )
    return states


def resume_url(profile: TutorProfile) -> str:
    for item in step_states(profile):
        if item["state"] == "todo":
            return item["url"]
    return f"{BASE}/review"


async def _user(session: AsyncSession, request: Request) -> User:
    return await session.get(User, current_user(request).id)


# ---- rendering helpers ---------------------------------------------------------------------


def price_ranges() -> list[dict[str, str]]:
    return [
        {
            "code": code,
            "low": format_money(schemas.price_bounds(code)[0], code),
            "high": format_money(schemas.price_bounds(code)[1], code),
        }
        for code in schemas.CURRENCIES
    ]


def currency_options() -> list[tuple[str, str]]:
    from babel.numbers import get_currency_name

    locale = current_locale()
    return [(code, f"{code} · {get_currency_name(code, locale=locale)}") for code in schemas.CURRENCIES]


async def step_context(
    session: AsyncSession, step: str, profile: TutorProfile, form: FormValues, errors: dict[str, str]
) -> dict[str, Any]:
    states = step_states(profile)
    context: dict[str, Any] = {
        "step": step,
        "steps": states,
        "number": schemas.STEPS.index(step) + 1,
        "total": len(schemas.STEPS),
        "title": step_titles()[step],
        "profile": profile,
        "form": form,
        "errors": errors,
        "next_url": next_url(step),
        "previous_url": previous_url(step),
        "available": step_available(step),
        "action": f"{BASE}/{step}",
    }
    if step == "teaching":
        context.update(
            instruments=await taxonomy_options(session, TaxonomyKind.instrument),
            genres=await taxonomy_options(session, TaxonomyKind.genre),
            levels=list(level_labels().items()),
            ages=list(age_labels().items()),
            max_instruments=schemas.MAX_INSTRUMENTS,
            max_genres=schemas.MAX_GENRES,
        )
    elif step == "place":
        typed = form.one("city")
        cities = city_search(_split_city_text(typed)[0], limit=CITY_SUGGESTIONS) if typed else []
        chosen = form.one("city_id")
        picked = city_get(int(chosen)) if chosen.isdigit() and len(chosen) < 12 else None
        if picked is not None and all(c.geonameid != picked.geonameid for c in cities):
            cities = [picked, *cities[: CITY_SUGGESTIONS - 1]]
        context.update(
            languages=await taxonomy_options(session, TaxonomyKind.language),
            cities=cities,
            city_selected=str(picked.geonameid) if picked else "",
            city_query=typed,
            max_languages=schemas.MAX_LANGUAGES,
            max_radius=schemas.MAX_RADIUS_KM,
        )
    elif step == "pricing":
        currency = form.one("currency") if form.one("currency") in schemas.CURRENCIES else "EUR"
        low, high = schemas.price_bounds(currency)
        context.update(
            currencies=currency_options(),
            currency=currency,
            durations=schemas.DURATIONS,
            trial_durations=[(str(m), _("%(minutes)d minutes", minutes=m)) for m in schemas.TRIAL_DURATIONS],
            price_low=low,
            price_high=high,
            ranges=price_ranges(),
        )
    elif step == "photo":
        context.update(photo=(profile.draft or {}).get("photo"), max_mb=PHOTO_UPLOAD_LIMIT // (1024 * 1024))
        if photos is not None:
            context.update(min_edge=photos.MIN_EDGE)
    elif step == "about":
        context.update(
            qualifications_max=schemas.QUALIFICATIONS_MAX,
            bio_max=getattr(profile_text, "MAX_BIO_LENGTH", 5000),
            max_years=MAX_EXPERIENCE_YEARS,
        )
    return context


def render_step(request: Request, context: dict[str, Any], status_code: int = 200) -> Template:
    return page(request, f"tutors/step_{context['step']}.html", status_code=status_code, **context)


async def show_step(request: Request, step: str) -> Template:
    async with transaction() as session:
        user = await _user(session, request)
        profile = await services.profile_start(session, user=user)
        context = await step_context(session, step, profile, draft_values(step, profile.draft or {}), {})
    return render_step(request, context)


# ---- photo storage -------------------------------------------------------------------------


def media_dir() -> Path:
    return get_settings().var_dir / "media" / "tutors"


def photo_file_name(photo_hash: str, size: int, extension: str = "webp") -> str:
    return f"{photo_hash}-{size}.{extension}"


def store_photo(processed: Any) -> dict[str, Any]:
    """Write the renditions (never the original) and return what the draft keeps."""
    folder = media_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for rendition in processed.renditions:
        target = folder / processed.filename(rendition)
        if not target.exists():
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_bytes(rendition.data)
            tmp.replace(target)
    sizes = sorted({r.size for r in processed.renditions if r.content_type == photos.WEBP})
    return {"hash": processed.sha256, "sizes": sizes}


# ---- review --------------------------------------------------------------------------------


async def review_context(
    session: AsyncSession, profile: TutorProfile, missing: list[str] | None = None
) -> dict[str, Any]:
    draft = profile.draft or {}
    instruments = dict(await taxonomy_options(session, TaxonomyKind.instrument))
    genres = dict(await taxonomy_options(session, TaxonomyKind.genre))
    languages = dict(await taxonomy_options(session, TaxonomyKind.language))
    levels, ages = level_labels(), age_labels()
    labels, titles = field_labels(), step_titles()
    missing = services.profile_missing(profile) if missing is None else missing
    status = profile.status
    can_submit = status in (ProfileStatus.draft, ProfileStatus.rejected) or (
        status == ProfileStatus.approved and services.has_material_changes(profile)
    )
    return {
        "profile": profile,
        "draft": draft,
        "steps": step_states(profile),
        "instruments": [
            {
                "name": instruments.get(item["slug"], item["slug"]),
                "levels": [levels.get(lvl, lvl) for lvl in item.get("levels", [])],
            }
            for item in draft.get("instruments", [])
        ],
        "genres": [genres.get(slug, slug) for slug in draft.get("genres", [])],
        "ages": [ages.get(a, a) for a in draft.get("age_groups", [])],
        "languages": [languages.get(slug, slug) for slug in draft.get("languages", [])],
        "city": city_label(draft.get("city")),
        "bio_html": _bio_html(draft.get("bio") or ""),
        "missing": [
            {
                "field": field,
                "label": labels.get(field, field),
                "url": f"{BASE}/{FIELD_STEP.get(field, 'basics')}",
                "step": titles[FIELD_STEP.get(field, "basics")],
            }
            for field in missing
        ],
        "can_submit": can_submit and not missing,
        "status": status.value,
    }


def _bio_html(bio: str) -> Any:
    if not bio or profile_text is None:
        return None
    try:
        return profile_text.render_bio(bio)
    except profile_text.TextError:
        return None


# ---- controller ----------------------------------------------------------------------------


class TutorProfileController(Controller):
    """The tutor onboarding wizard under /tutor/profile."""

    path = BASE
    guards = [tutor_required]
    include_in_schema = False
    tags = ["tutors"]

    @get("/", name="tutor_profile")
    async def overview(self, request: Request) -> Template:
        async with transaction() as session:
            user = await _user(session, request)
            profile = await services.profile_start(session, user=user)
            states = step_states(profile)
            missing = services.profile_missing(profile)
            context = {
                "profile": profile,
                "status": profile.status.value,
                "steps": states,
                "resume_url": resume_url(profile),
                "missing": missing,
                "started": profile.onboarding_step > 0,
            }
        return page(request, "tutors/overview.html", **context)

    @get("/cities", name="tutor_profile_cities")
    async def cities(self, request: Request) -> Template:
        query = (request.query_params.get("q") or request.query_params.get("city") or "")[:100]
        name = _split_city_text(query)[0]
        found = city_search(name, limit=CITY_SUGGESTIONS)
        selected = request.query_params.get("city_id", "")
        return Template(
            "tutors/_city_options.html",
            context={"cities": found, "city_selected": selected, "city_query": query, "errors": {}},
        )

    @get("/photo/{size:int}", name="tutor_profile_photo")
    async def photo_file(self, request: Request, size: FromPath[int]) -> File:
        async with transaction(write=False) as session:
            profile = await services.profile_for_user(session, user=current_user(request))
            photo = (profile.draft or {}).get("photo") if profile else None
        if not photo or size not in photo.get("sizes", []):
            raise NotFound(_("There is no photo yet."))
        path = media_dir() / photo_file_name(photo["hash"], size)
        if not path.is_file():
            raise NotFound(_("There is no photo yet."))
        return File(
            path=path,
            media_type="image/webp",
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @get("/review", name="tutor_profile_review")
    async def review(self, request: Request) -> Template:
        async with transaction() as session:
            user = await _user(session, request)
            profile = await services.profile_start(session, user=user)
            context = await review_context(session, profile)
        return page(request, "tutors/review.html", **context)

    @post("/submit", name="tutor_profile_submit")
    async def submit(self, request: Request) -> Template | Redirect:
        from marketplace.web import flash

        try:
            async with transaction() as session:
                user = await _user(session, request)
                profile = await services.profile_submit(session, user=user)
                changes = profile.status == ProfileStatus.approved and profile.changes_pending
        except ValidationFailed as exc:
            async with transaction() as session:
                profile = await services.profile_start(session, user=await _user(session, request))
                context = await review_context(session, profile, missing=list(exc.errors))
            return page(request, "tutors/review.html", status_code=422, error=exc.message, **context)
        if changes:
            flash(request, _("Your changes were sent for review; your current profile stays visible."))
        else:
            flash(request, _("Thank you! An admin will review your profile."))
        return redirect(BASE)

    @get("/{step:str}", name="tutor_profile_step")
    async def step_form(self, request: Request, step: FromPath[str]) -> Template:
        _check_step(step)
        return await show_step(request, step)

    @post("/{step:str}")
    async def step_save(self, request: Request, step: FromPath[str]) -> Template | Redirect:
        _check_step(step)
        if not step_available(step):
            return redirect(next_url(step))
        data = await form_lists(request)
        async with transaction() as session:
            user = await _user(session, request)
            profile = await services.profile_start(session, user=user)
            fragment, errors, data = await self._clean(session, step, data)
            if errors:
                context = await step_context(session, step, profile, FormValues(data), errors)
                return render_step(request, context, status_code=422)
            await services.profile_save_step(session, user=user, step=step, fragment=fragment)
        return redirect(next_url(step))

    @staticmethod
    async def _clean(
        session: AsyncSession, step: str, data: dict[str, list[str]]
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, list[str]]]:
        if step == "basics":
            fragment, errors = schemas.clean_basics(data)
        elif step == "teaching":
            fragment, errors = schemas.clean_teaching(
                data,
                instruments=await services.taxonomy_slugs(session, TaxonomyKind.instrument),
                genres=await services.taxonomy_slugs(session, TaxonomyKind.genre),
            )
        elif step == "place":
            data, city_error = resolve_city(data)
            fragment, errors = schemas.clean_place(
                data, languages=await services.taxonomy_slugs(session, TaxonomyKind.language)
            )
            if city_error:
                errors["city_id"] = city_error
        elif step == "pricing":
            fragment, errors = schemas.clean_pricing(data)
        elif step == "about":
            fragment, errors = clean_about(data)
        else:  # pragma: no cover - guarded by _check_step and step_available
            raise NotFound(_("This step does not exist."))
        return fragment, errors, data

    @get("/photo", name="tutor_profile_photo_step")
    async def photo_form(self, request: Request) -> Template:
        return await show_step(request, "photo")

    @post("/photo", request_max_body_size=PHOTO_UPLOAD_LIMIT)
    async def photo_save(self, request: Request) -> Template | Redirect:
        """The photo step: a multipart upload, checked and re-encoded by ``tutors.photos``."""
        if photos is None:
            return redirect(next_url("photo"))
        form = await request.form()
        upload = form.get("photo")
        errors: dict[str, str] = {}
        stored: dict[str, Any] | None = None
        if not isinstance(upload, UploadFile):
            errors["photo"] = _("Choose a photo to upload.")
        else:
            data = await upload.read()
            try:
                processed = await asyncio.to_thread(photos.process_photo, data)
            except photos.PhotoError as exc:
                errors["photo"] = photo_message(exc)
            else:
                stored = await asyncio.to_thread(store_photo, processed)
        async with transaction() as session:
            user = await _user(session, request)
            profile = await services.profile_start(session, user=user)
            if errors:
                context = await step_context(session, "photo", profile, FormValues(), errors)
                return render_step(request, context, status_code=422)
            await services.profile_save_step(session, user=user, step="photo", fragment={"photo": stored})
        return redirect(next_url("photo"))


def text_message(error: Exception, field: str) -> str:
    """A translated message for a :class:`tutors.text.TextError`."""
    code = getattr(error, "code", "")
    params = getattr(error, "params", {}) or {}
    if code == "too_long":
        return _(
            "At most %(max)d characters, please (you wrote %(length)d).",
            max=int(params.get("max_length", 0)),
            length=int(params.get("length", 0)),
        )
    if code == "unsupported_video_host":
        return _("Videos from %(host)s are not supported. Paste a YouTube or Vimeo link.", host=params.get("host", ""))
    if code == "no_video_id":
        return _("We could not find a video in this link. Paste the link of the video itself.")
    if code == "invalid_url":
        return _("This is not a valid link. Paste a YouTube or Vimeo link.")
    return _("Check this field.")


def clean_about(data: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The "about" step: a Markdown bio (stored raw, checked by rendering it), an intro video
    (stored as its canonical link), years of experience and qualifications. All optional."""
    form = FormValues(data)
    errors: dict[str, str] = {}
    bio = form.one("bio").replace("\r\n", "\n").strip()
    try:
        profile_text.render_bio(bio)
    except profile_text.TextError as exc:
        errors["bio"] = text_message(exc, "bio")
    video = None
    try:
        parsed = profile_text.parse_intro_video(form.one("intro_video"))
        video = parsed.watch_url if parsed else None
    except profile_text.TextError as exc:
        errors["intro_video"] = text_message(exc, "intro_video")
    raw_years = form.one("experience_years").strip()
    years = None
    if raw_years:
        years = int(raw_years) if raw_years.isdigit() and len(raw_years) < 4 else -1
        if not 0 <= years <= MAX_EXPERIENCE_YEARS:
            errors["experience_years"] = _("Enter a number of years from 0 to %(max)d.", max=MAX_EXPERIENCE_YEARS)
    qualifications = ""
    try:
        qualifications = profile_text.plain_text(
            form.one("qualifications"), max_length=schemas.QUALIFICATIONS_MAX, multiline=True
        )
    except profile_text.TextError as exc:
        errors["qualifications"] = text_message(exc, "qualifications")
    return {
        "bio": bio,
        "intro_video": video,
        "experience_years": years,
        "qualifications": qualifications,
    }, errors
