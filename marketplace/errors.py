"""One application error hierarchy, mapped to HTML, htmx and JSON responses in one place."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from marketplace.i18n import gettext as _

log = logging.getLogger("marketplace.errors")


class CodedError(ValueError):
    """Refused input from a pure module: ``code`` is stable, ``params`` feed the translated message
    that the web layer chooses (pure modules carry no user-facing text)."""

    def __init__(self, code: str, /, **params: object) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        details = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.code} ({details})" if details else self.code


class AppError(Exception):
    """A failure the user can understand; ``message`` is already translated."""

    status_code = 400

    def __init__(self, message: str, *, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class ValidationFailed(AppError):
    status_code = 422


class Conflict(AppError):
    status_code = 409


class NotFound(AppError):
    status_code = 404


class Forbidden(AppError):
    status_code = 403


class TooManyRequests(AppError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wants_json(request: Request) -> bool:
    if request.url.path.startswith(("/api/", "/webhooks/", "/healthz")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        401: _("Please log in"),
        403: _("Access denied"),
        404: _("Page not found"),
        405: _("Method not allowed"),
        409: _("Conflict"),
        413: _("Too large"),
        422: _("Please check your input"),
        429: _("Too many attempts"),
        500: _("Something went wrong"),
        503: _("Temporarily unavailable"),
    }


def _default_message(status: int) -> str:
    return {
        403: _("You do not have permission to open this page."),
        404: _("We could not find the page you were looking for."),
        405: _("This page cannot be used that way."),
        413: _("What you sent is too large."),
        500: _("An unexpected error occurred. We have been notified; please try again later."),
        503: _("The service is temporarily unavailable. Please try again shortly."),
    }.get(status, _("Your request could not be processed."))


def _ensure_locale(request: Request) -> None:
    """Unmatched routes skip the route middleware: negotiate the locale here for them."""
    state = request.scope.setdefault("state", {})
    if "locale" in state:
        return
    from marketplace.i18n import negotiate_locale, set_request_locale
    from marketplace.web import LOCALE_COOKIE

    locale = negotiate_locale(
        user_locale=None,
        cookie_locale=request.cookies.get(LOCALE_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )
    state["locale"] = locale
    set_request_locale(locale, None)


def error_response(request: Request, status: int, message: str | None = None, **extra: Any) -> Response:
    _ensure_locale(request)
    titles = _titles()
    title = titles.get(status, titles[400] if status < 500 else titles[500])
    text = message or _default_message(status)
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    if _wants_json(request):
        body: dict[str, Any] = {"error": title, "detail": text, "status": status}
        if extra.get("errors"):
            body["errors"] = extra["errors"]
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    return Template(
        "errors/error.html",
        context={"status": status, "title": title, "message": text},
        status_code=status,
        headers=headers,
    )


def _csrf_failure(exc: HTTPException) -> bool:
    return "csrf" in str(exc.detail).lower()


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, NotAuthorizedException):
        if _wants_json(request):
            return error_response(request, 401, _("Please log in to continue."))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        if request.headers.get("hx-request"):
            return Response(b"", status_code=401, headers={"HX-Redirect": f"/login?next={quote(target)}"})
        return Redirect(f"/login?next={quote(target)}")
    if isinstance(exc, PermissionDeniedException) and _csrf_failure(exc):
        return error_response(
            request, 403, _("Your form expired or was sent from another site. Reload the page and try again.")
        )
    if isinstance(exc, NotFoundException):
        return error_response(request, 404)
    if isinstance(exc, ValidationException):
        return error_response(request, 400, _("Some parameters are missing or malformed."))
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
        return error_response(request, status)
    return error_response(request, status)


def handle_app_error(request: Request, exc: AppError) -> Response:
    extra: dict[str, Any] = {"errors": exc.errors}
    if isinstance(exc, TooManyRequests):
        extra["retry_after"] = exc.retry_after
    return error_response(request, exc.status_code, exc.message, **extra)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR)


exception_handlers = {
    AppError: handle_app_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
