"""Request plumbing shared by every domain: the current user, locale and zone, flash messages,
guards, security headers, form parsing and the htmx partial-or-page convention."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory
from marketplace.i18n import is_valid_timezone, negotiate_locale, set_request_locale
from marketplace.settings import SUPPORTED_LOCALES, get_settings

LOCALE_COOKIE = "cadenza_locale"
TZ_COOKIE = "cadenza_tz"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'self'; "
    # Intro videos, only on the page a visitor opens to play one (privacy-friendly hosts).
    "frame-src https://www.youtube-nocookie.com https://player.vimeo.com; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """A real CSP, nosniff, Referrer-Policy and frame-ancestors on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hsts = get_settings().secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"permissions-policy", b"geolocation=(), payment=(), usb=()"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if self.hsts:
                    extra.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContextMiddleware:
    """Loads the signed-in user (if the session is still valid) and picks locale and zone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/bare")):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        user: User | None = None
        session = scope.get("session")
        if isinstance(session, dict) and session.get("uid"):
            try:
                uid = uuid.UUID(session["uid"])
            except (ValueError, TypeError):
                uid = None
            if uid is not None:
                async with session_factory()() as db:
                    user = await db.get(User, uid)
                if user is None or user.banned_at is not None or user.auth_version != session.get("ver"):
                    user = None
                    session.pop("uid", None)
                    session.pop("ver", None)
        state["user"] = user
        cookies = _cookies(scope)
        headers = dict(scope.get("headers", []))
        locale = negotiate_locale(
            user_locale=user.locale if user else None,
            cookie_locale=cookies.get(LOCALE_COOKIE),
            accept_language=headers.get(b"accept-language", b"").decode("latin-1"),
        )
        tz = user.timezone if user else cookies.get(TZ_COOKIE)
        if not is_valid_timezone(tz):
            tz = get_settings().default_timezone
        state["locale"] = locale
        state["timezone"] = tz
        set_request_locale(locale, tz)
        await self.app(scope, receive, send)


def _cookies(scope: Scope) -> dict[str, str]:
    from http.cookies import SimpleCookie

    raw = b"; ".join(v for k, v in scope.get("headers", []) if k == b"cookie").decode("latin-1")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header is ignored, not fatal
        return {}
    return {k: m.value for k, m in jar.items()}


def current_user(connection: ASGIConnection) -> User | None:
    return connection.scope.get("state", {}).get("user")


def login_required(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if current_user(connection) is None:
        raise NotAuthorizedException()


def role_required(*roles: Role):
    """A guard: signed in (else sent to log in) and holding one of ``roles`` (else 403)."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        user = current_user(connection)
        if user is None:
            raise NotAuthorizedException()
        if user.role not in roles:
            raise PermissionDeniedException()

    return guard


admin_required = role_required(Role.admin)
tutor_required = role_required(Role.tutor, Role.admin)


def sign_in(request: Request, user: User) -> None:
    """Start an authenticated session under a new session ID."""
    from marketplace.accounts.sessions import rotate_session

    flashes = request.session.get("_flash", []) if request.session else []
    request.clear_session()
    data = {"uid": str(user.id), "ver": user.auth_version}
    if flashes:
        data["_flash"] = flashes
    request.set_session(data)
    rotate_session(request)


def sign_out(request: Request) -> None:
    request.clear_session()


def refresh_auth(request: Request, user: User) -> None:
    """Keep this session valid after the user's auth version was raised (password change)."""
    sign_in(request, user)


def flash(request: Request, message: str, category: str = "success") -> None:
    """Show ``message`` on the next page this client sees."""
    session = request.scope.get("session")
    if not isinstance(session, dict):
        request.set_session({})
        session = request.scope["session"]
    session.setdefault("_flash", []).append({"message": str(message), "category": category})


def pop_flashes(request: Request) -> list[dict[str, str]]:
    session = request.scope.get("session")
    if isinstance(session, dict) and session.get("_flash"):
        return session.pop("_flash")
    return []


async def form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: (v if isinstance(v, str) else "") for k, v in form.items()}


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths may be a redirect target after log-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def page(
    request: Request, template: str, *, partial: str | None = None, status_code: int = 200, **context: Any
) -> Template:
    """Render the partial for htmx requests (when one is given) and the full page otherwise."""
    name = partial if partial and is_htmx(request) else template
    return Template(name, context=context, status_code=status_code)


def redirect(path: str) -> Redirect:
    return Redirect(path, status_code=303)


def locale_options() -> list[tuple[str, str]]:
    from marketplace.i18n import locale_name

    return [(code, locale_name(code)) for code in SUPPORTED_LOCALES]
