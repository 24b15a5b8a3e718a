"""Input validation for account forms. Each validator returns a cleaned value or raises
ValidationFailed with per-field messages in the user's language."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email

from marketplace.accounts.models import Role
from marketplace.i18n import gettext as _
from marketplace.i18n import is_valid_timezone
from marketplace.settings import SUPPORTED_LOCALES

PASSWORD_MIN = 10
PASSWORD_MAX = 128
NAME_MAX = 80
EMAIL_MAX = 254

# The most common passwords of at least PASSWORD_MIN characters (from public breach top lists).
COMMON_PASSWORDS = frozenset(
    """
    1234567890 0123456789 1q2w3e4r5t qwertyuiop 1qaz2wsx3edc password123 password12 password1!
    iloveyou12 qwerty1234 1234qwerty abcdefghij abc1234567 aaaaaaaaaa 1111111111 0000000000
    passw0rd12 letmein123 welcome123 football12 baseball12 monkey1234 dragon1234 sunshine12
    princess12 qwerty12345 12345678910 administrator changeme123 trustno1234 superman12
    """.split()
)


class FieldErrors(dict[str, str]):
    pass


def clean_email(raw: str, errors: FieldErrors, field: str = "email") -> str:
    value = (raw or "").strip()
    if not value:
        errors[field] = _("Enter your email address.")
        return ""
    if len(value) > EMAIL_MAX:
        errors[field] = _("An email address can have at most %(max)d characters.") % {"max": EMAIL_MAX}
        return ""
    try:
        info = _validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        errors[field] = _("Enter a valid email address, like name@example.com.")
        return ""
    return info.normalized.lower()


def clean_password(raw: str, errors: FieldErrors, *, field: str = "password", email: str = "") -> str:
    value = raw or ""
    if len(value) < PASSWORD_MIN:
        errors[field] = _("Use at least %(min)d characters for your password.") % {"min": PASSWORD_MIN}
    elif len(value) > PASSWORD_MAX:
        errors[field] = _("A password can have at most %(max)d characters.") % {"max": PASSWORD_MAX}
    elif value.lower() in COMMON_PASSWORDS or len(set(value)) < 4:
        errors[field] = _("This password is too easy to guess. Choose a less common one.")
    elif email and value.lower() == email.lower():
        errors[field] = _("Your password must differ from your email address.")
    return value


def clean_display_name(raw: str, errors: FieldErrors) -> str:
    value = " ".join((raw or "").split())
    if not value:
        errors["display_name"] = _("Enter the name others will see.")
    elif len(value) > NAME_MAX:
        errors["display_name"] = _("A name can have at most %(max)d characters.") % {"max": NAME_MAX}
    elif any(ch in value for ch in "<>"):
        errors["display_name"] = _("A name cannot contain angle brackets.")
    return value


def clean_timezone(raw: str, errors: FieldErrors) -> str:
    value = (raw or "").strip()
    if not is_valid_timezone(value):
        errors["timezone"] = _("Choose a time zone from the list.")
    return value


def clean_locale(raw: str, errors: FieldErrors) -> str:
    value = (raw or "").strip()
    if value not in SUPPORTED_LOCALES:
        errors["locale"] = _("Choose a language from the list.")
    return value


def clean_role(raw: str, errors: FieldErrors) -> Role:
    if raw in (Role.student.value, Role.tutor.value):
        return Role(raw)
    errors["role"] = _("Choose whether you want to learn or to teach.")
    return Role.student


@dataclass(frozen=True)
class SignUp:
    email: str
    password: str
    display_name: str
    role: Role
    timezone: str
    locale: str


def parse_sign_up(form: dict[str, str]) -> tuple[SignUp, FieldErrors]:
    errors = FieldErrors()
    email = clean_email(form.get("email", ""), errors)
    data = SignUp(
        email=email,
        password=clean_password(form.get("password", ""), errors, email=email),
        display_name=clean_display_name(form.get("display_name", ""), errors),
        role=clean_role(form.get("role", ""), errors),
        timezone=clean_timezone(form.get("timezone", ""), errors),
        locale=clean_locale(form.get("locale", ""), errors),
    )
    return data, errors
