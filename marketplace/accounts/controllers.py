"""Account pages: sign up, verify, log in/out, password reset, settings, language switch."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Response, Template

from marketplace.accounts import services
from marketplace.accounts.models import User
from marketplace.accounts.schemas import FieldErrors, parse_sign_up
from marketplace.db import transaction
from marketplace.errors import AppError, ValidationFailed
from marketplace.i18n import all_timezones
from marketplace.i18n import gettext as _
from marketplace.web import (
    LOCALE_COOKIE,
    TZ_COOKIE,
    current_user,
    flash,
    form_data,
    is_htmx,
    locale_options,
    login_required,
    page,
    redirect,
    refresh_auth,
    safe_next,
    sign_in,
    sign_out,
)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class AccountController(Controller):
    path = "/"
    tags = ["accounts"]
    include_in_schema = False

    # ---- sign up ------------------------------------------------------------------------
    @get("/signup", name="signup")
    async def signup_form(self, request: Request) -> Template | Redirect:
        if current_user(request):
            return redirect("/")
        role = request.query_params.get("role", "student")
        return Template(
            "accounts/signup.html",
            context={
                "form": {"role": role if role in ("student", "tutor") else "student"},
                "errors": {},
                "timezones": all_timezones(),
                "locales": locale_options(),
            },
        )

    @post("/signup")
    async def signup(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        data, errors = parse_sign_up(form)
        context = {"form": form, "timezones": all_timezones(), "locales": locale_options()}
        if errors:
            return Template("accounts/signup.html", context={**context, "errors": errors}, status_code=422)
        try:
            async with transaction() as session:
                user = await services.user_sign_up(session, data=data)
        except ValidationFailed as exc:
            return Template("accounts/signup.html", context={**context, "errors": exc.errors}, status_code=422)
        sign_in(request, user)
        flash(request, _("Welcome to Cadenza! We sent you a link to confirm your email address."))
        return redirect("/dashboard")

    # ---- email verification -------------------------------------------------------------
    @get("/verify-email", name="verify_email")
    async def verify_form(self, request: Request) -> Template:
        return Template("accounts/verify.html", context={"token": request.query_params.get("token", "")[:200]})

    @post("/verify-email")
    async def verify(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        try:
            async with transaction() as session:
                await services.email_verify(session, token=form.get("token", ""))
        except AppError as exc:
            return Template("accounts/verify.html", context={"token": "", "error": exc.message}, status_code=400)
        flash(request, _("Thank you! Your email address is confirmed."))
        return redirect("/dashboard" if current_user(request) else "/login")

    @post("/verify-email/resend", guards=[login_required])
    async def verify_resend(self, request: Request) -> Redirect:
        user = current_user(request)
        async with transaction() as session:
            user = await session.get(User, user.id)
            if not user.is_verified:
                await services.email_verification_send(session, user=user)
        flash(request, _("We sent you a new confirmation link."))
        return redirect("/dashboard")

    # ---- log in / out -------------------------------------------------------------------
    @get("/login", name="login")
    async def login_form(self, request: Request) -> Template | Redirect:
        target = request.query_params.get("next", "")
        if current_user(request):
            return redirect(safe_next(target, "/dashboard"))
        return Template("accounts/login.html", context={"form": {"next": safe_next(target, "")}, "error": None})

    @post("/login")
    async def login(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        target = safe_next(form.get("next"), "/dashboard")
        try:
            user = await services.user_authenticate(
                email=form.get("email", ""),
                password=form.get("password", ""),
                address=_address(request),
                throttle=request.app.state.throttle,
            )
        except AppError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else {}
            return Template(
                "accounts/login.html",
                context={
                    "form": {"email": form.get("email", "")[:254], "next": form.get("next", "")},
                    "error": exc.message,
                },
                status_code=exc.status_code,
                headers=headers,
            )
        sign_in(request, user)
        return redirect(target)

    @post("/logout", name="logout")
    async def logout(self, request: Request) -> Redirect:
        sign_out(request)
        return redirect("/")

    # ---- password reset -----------------------------------------------------------------
    @get("/forgot-password", name="forgot_password")
    async def forgot_form(self) -> Template:
        return Template("accounts/forgot.html", context={"form": {}, "errors": {}, "sent": False})

    @post("/forgot-password")
    async def forgot(self, request: Request) -> Template:
        form = await form_data(request)
        errors = FieldErrors()
        from marketplace.accounts.schemas import clean_email

        email = clean_email(form.get("email", ""), errors)
        if errors:
            return Template(
                "accounts/forgot.html",
                context={"form": form, "errors": errors, "sent": False},
                status_code=422,
            )
        async with transaction() as session:
            await services.password_reset_request(session, email=email)
        # The same answer whether or not the address has an account.
        return Template("accounts/forgot.html", context={"form": {}, "errors": {}, "sent": True})

    @get("/reset-password", name="reset_password")
    async def reset_form(self, request: Request) -> Template:
        token = request.query_params.get("token", "")[:200]
        return Template("accounts/reset.html", context={"token": token, "errors": {}, "error": None})

    @post("/reset-password")
    async def reset(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        token = form.get("token", "")
        if form.get("password", "") != form.get("password_confirm", ""):
            errors = {"password_confirm": _("The two passwords do not match.")}
            return Template(
                "accounts/reset.html",
                context={"token": token, "errors": errors, "error": None},
                status_code=422,
            )
        try:
            async with transaction() as session:
                await services.password_reset(session, token=token, new_password=form.get("password", ""))
        except ValidationFailed as exc:
            return Template(
                "accounts/reset.html",
                context={"token": token, "errors": exc.errors, "error": None if exc.errors else exc.message},
                status_code=422,
            )
        except AppError as exc:
            return Template(
                "accounts/reset.html",
                context={"token": "", "errors": {}, "error": exc.message},
                status_code=400,
            )
        sign_out(request)
        flash(request, _("Your password was changed. Log in with your new password."))
        return redirect("/login")

    # ---- settings -----------------------------------------------------------------------
    @get("/account/settings", guards=[login_required], name="settings")
    async def settings_form(self, request: Request) -> Template:
        user = current_user(request)
        return Template("accounts/settings.html", context=self._settings_context(user))

    @staticmethod
    def _settings_context(user, **extra) -> dict:
        form = {"display_name": user.display_name, "timezone": user.timezone, "locale": user.locale}
        return {
            "form": form,
            "errors": {},
            "pw_errors": {},
            "timezones": all_timezones(),
            "locales": locale_options(),
            "saved": False,
            "pw_saved": False,
            **extra,
        }

    @post("/account/settings", guards=[login_required])
    async def settings_save(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        user = current_user(request)
        try:
            async with transaction() as session:
                user = await session.get(User, user.id)
                await services.user_update_settings(
                    session,
                    user=user,
                    display_name=form.get("display_name", ""),
                    timezone=form.get("timezone", ""),
                    locale=form.get("locale", ""),
                )
        except ValidationFailed as exc:
            ctx = self._settings_context(current_user(request), errors=exc.errors)
            ctx["form"] = form
            return page(
                request,
                "accounts/settings.html",
                partial="accounts/_settings_form.html",
                status_code=422,
                **ctx,
            )
        from marketplace.i18n import set_request_locale

        set_request_locale(user.locale, user.timezone)
        if is_htmx(request):
            # The language may have changed: reload the whole page so that every string follows.
            return (
                Response(b"", status_code=200, headers={"HX-Refresh": "true"})
                if form.get("locale") != request.scope["state"].get("locale")
                else page(
                    request,
                    "accounts/settings.html",
                    partial="accounts/_settings_form.html",
                    **self._settings_context(user, saved=True),
                )
            )
        flash(request, _("Your settings were saved."))
        return redirect("/account/settings")

    @post("/account/password", guards=[login_required])
    async def password_change(self, request: Request) -> Template | Redirect:
        form = await form_data(request)
        user = current_user(request)
        if form.get("new_password", "") != form.get("new_password_confirm", ""):
            ctx = self._settings_context(user, pw_errors={"new_password_confirm": _("The two passwords do not match.")})
            return Template("accounts/settings.html", context=ctx, status_code=422)
        try:
            async with transaction() as session:
                user = await session.get(User, user.id)
                await services.password_change(
                    session,
                    user=user,
                    current=form.get("current_password", ""),
                    new=form.get("new_password", ""),
                )
        except ValidationFailed as exc:
            return Template(
                "accounts/settings.html",
                context=self._settings_context(current_user(request), pw_errors=exc.errors),
                status_code=422,
            )
        refresh_auth(request, user)
        flash(request, _("Your password was changed. You were logged out everywhere else."))
        return redirect("/account/settings")

    # ---- language switcher --------------------------------------------------------------
    @post("/locale", name="set_locale")
    async def set_locale(self, request: Request) -> Redirect:
        form = await form_data(request)
        locale = form.get("locale", "")
        target = safe_next(form.get("next"), "/")
        user = current_user(request)
        if user is not None:
            try:
                async with transaction() as session:
                    db_user = await session.get(User, user.id)
                    await services.user_set_locale(session, user=db_user, locale=locale)
            except ValidationFailed as exc:
                raise AppError(exc.message) from exc
        from marketplace.settings import SUPPORTED_LOCALES

        if locale not in SUPPORTED_LOCALES:
            raise AppError(_("Choose a language from the list."))
        response = redirect(target)
        response.set_cookie(LOCALE_COOKIE, locale, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
        return response

    @post("/timezone", name="set_timezone", include_in_schema=False)
    async def set_timezone(self, request: Request) -> Response:
        """Remembers the browser's zone for visitors who are not signed in (sent by app.js)."""
        form = await form_data(request)
        from marketplace.i18n import is_valid_timezone

        tz = form.get("timezone", "")
        if not is_valid_timezone(tz):
            raise AppError(_("Choose a time zone from the list."))
        response = Response(b"", status_code=204)
        response.set_cookie(TZ_COOKIE, tz, max_age=365 * 24 * 3600, samesite="lax", httponly=False)
        return response
