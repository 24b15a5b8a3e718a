"""Account verbs: sign-up, authentication, verification, password reset and change, settings.

Services take a session (the caller owns the transaction) and keyword arguments, raise
AppError subclasses with translated messages, and queue mail in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import AccountToken, Role, TokenPurpose, User
from marketplace.accounts.schemas import (
    FieldErrors,
    SignUp,
    clean_display_name,
    clean_email,
    clean_locale,
    clean_password,
    clean_timezone,
)
from marketplace.accounts.throttle import Throttle
from marketplace.db import transaction, utcnow
from marketplace.errors import AppError, NotFound, TooManyRequests, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.i18n import ngettext, use_locale
from marketplace.mail import mail_queue
from marketplace.settings import get_settings

VERIFY_TTL = timedelta(hours=48)
RESET_TTL = timedelta(hours=1)

# argon2id (the library's default type) with its recommended parameters (RFC 9106, low-memory).
hasher = PasswordHasher()
_DUMMY_HASH = hasher.hash("cadenza-timing-equaliser")


def password_hash(password: str) -> str:
    return hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def user_by_email(session: AsyncSession, *, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()


async def user_get(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def _token_issue(session: AsyncSession, *, user: User, purpose: TokenPurpose, ttl: timedelta) -> str:
    # A new token replaces earlier unused ones of the same purpose.
    await session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AccountToken(user_id=user.id, purpose=purpose, token_hash=_token_digest(token), expires_at=utcnow() + ttl)
    )
    return token


async def _token_consume(session: AsyncSession, *, token: str, purpose: TokenPurpose) -> User:
    """Use a token once. Unknown, forged, expired and reused tokens all fail the same way."""
    invalid = AppError(_("This link is invalid or has expired. Request a new one."))
    if not token or len(token) > 200:
        raise invalid
    row = (
        await session.execute(
            select(AccountToken).where(AccountToken.token_hash == _token_digest(token), AccountToken.purpose == purpose)
        )
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise invalid
    # Claim it atomically: of two concurrent uses only one updates the row.
    claimed = await session.execute(
        update(AccountToken).where(AccountToken.id == row.id, AccountToken.used_at.is_(None)).values(used_at=utcnow())
    )
    if claimed.rowcount != 1:
        raise invalid
    user = await session.get(User, row.user_id)
    if user is None or user.banned_at is not None:
        raise invalid
    return user


def _link(path: str, token: str) -> str:
    return f"{get_settings().base_url}{path}?token={token}"


async def email_verification_send(session: AsyncSession, *, user: User) -> None:
    token = await _token_issue(session, user=user, purpose=TokenPurpose.verify_email, ttl=VERIFY_TTL)
    with use_locale(user.locale, user.timezone):
        await mail_queue(
            session,
            to=user.email,
            subject=_("Confirm your email address for Cadenza"),
            body=_(
                "Hello %(name)s,\n\nplease confirm your email address by opening this link:\n%(link)s\n\n"
                "The link is valid for 48 hours. If you did not sign up for Cadenza, ignore this message."
            )
            % {"name": user.display_name, "link": _link("/verify-email", token)},
        )


async def user_sign_up(session: AsyncSession, *, data: SignUp) -> User:
    if await user_by_email(session, email=data.email) is not None:
        raise ValidationFailed(
            _("We could not create an account with these details."),
            errors={
                "email": _(
                    "This email address cannot be used to sign up. If it is yours, log in or reset your password."
                )
            },
        )
    user = User(
        email=data.email,
        password_hash=await asyncio.to_thread(password_hash, data.password),
        display_name=data.display_name,
        role=data.role,
        timezone=data.timezone,
        locale=data.locale,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same address won the race
        raise ValidationFailed(
            _("We could not create an account with these details."),
            errors={"email": _("This email address cannot be used to sign up.")},
        ) from exc
    await email_verification_send(session, user=user)
    return user


async def email_verify(session: AsyncSession, *, token: str) -> User:
    user = await _token_consume(session, token=token, purpose=TokenPurpose.verify_email)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


async def user_authenticate(*, email: str, password: str, address: str, throttle: Throttle) -> User:
    """Check credentials, throttled per account and per address. One message for every failure.

    Runs its own short transactions: the throttle's counters must be written even when the
    log-in fails, and SQLite allows one writer at a time.
    """
    settings = get_settings()
    normalized = (email or "").strip().lower()[:254]
    account_key = f"account:{normalized}"
    address_key = f"address:{address}"
    wait = max(
        await throttle.blocked_for(account_key, settings.login_max_failures_account),
        await throttle.blocked_for(address_key, settings.login_max_failures_address),
    )
    if wait:
        minutes = max(1, (wait + 59) // 60)
        raise TooManyRequests(
            ngettext(
                "Too many failed attempts. Try again in %(num)d minute.",
                "Too many failed attempts. Try again in %(num)d minutes.",
                minutes,
            ),
            retry_after=wait,
        )
    password = (password or "")[:1024]
    async with transaction(write=False) as session:
        user = await user_by_email(session, email=normalized) if normalized else None
    # argon2 takes tens of milliseconds of CPU by design: keep it off the event loop.
    ok = await asyncio.to_thread(password_matches, user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or user.banned_at is not None:
        await throttle.record_failure(account_key, address_key)
        raise ValidationFailed(_("The email address or password is not correct."))
    await throttle.clear(account_key)
    async with transaction() as session:
        user = await session.get(User, user.id)
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = password_hash(password)
        user.last_login_at = utcnow()
    return user


async def password_reset_request(session: AsyncSession, *, email: str) -> None:
    """Mail a reset link if the address has an account. The caller says the same thing either way."""
    user = await user_by_email(session, email=email)
    if user is None or user.banned_at is not None:
        return
    token = await _token_issue(session, user=user, purpose=TokenPurpose.reset_password, ttl=RESET_TTL)
    with use_locale(user.locale, user.timezone):
        await mail_queue(
            session,
            to=user.email,
            subject=_("Reset your Cadenza password"),
            body=_(
                "Hello %(name)s,\n\nsomeone asked to reset the password of your Cadenza account. "
                "To choose a new password, open this link:\n%(link)s\n\n"
                "The link is valid for one hour and works once. If you did not ask for it, ignore this message."
            )
            % {"name": user.display_name, "link": _link("/reset-password", token)},
        )


async def password_reset(session: AsyncSession, *, token: str, new_password: str) -> User:
    errors = FieldErrors()
    clean_password(new_password, errors)
    if errors:
        raise ValidationFailed(_("Please choose another password."), errors=errors)
    user = await _token_consume(session, token=token, purpose=TokenPurpose.reset_password)
    user.password_hash = await asyncio.to_thread(password_hash, new_password)
    user.auth_version += 1  # every existing session ends
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # they proved they read the mailbox
    return user


async def password_change(session: AsyncSession, *, user: User, current: str, new: str) -> User:
    errors = FieldErrors()
    if not await asyncio.to_thread(password_matches, user.password_hash, current or ""):
        errors["current_password"] = _("Your current password is not correct.")
    clean_password(new, errors, field="new_password", email=user.email)
    if not errors and current == new:
        errors["new_password"] = _("Choose a password different from the current one.")
    if errors:
        raise ValidationFailed(_("Your password was not changed."), errors=errors)
    user.password_hash = await asyncio.to_thread(password_hash, new)
    user.auth_version += 1  # other sessions end; the caller refreshes its own
    return user


async def user_update_settings(
    session: AsyncSession, *, user: User, display_name: str, timezone: str, locale: str
) -> User:
    errors = FieldErrors()
    name = clean_display_name(display_name, errors)
    tz = clean_timezone(timezone, errors)
    loc = clean_locale(locale, errors)
    if errors:
        raise ValidationFailed(_("Your settings were not saved."), errors=errors)
    user.display_name, user.timezone, user.locale = name, tz, loc
    return user


async def user_set_locale(session: AsyncSession, *, user: User, locale: str) -> None:
    errors = FieldErrors()
    user.locale = clean_locale(locale, errors)
    if errors:
        raise ValidationFailed(errors["locale"])


async def admin_create(
    session: AsyncSession, *, email: str, password: str, display_name: str, timezone: str = "UTC"
) -> User:
    """Create an admin, or promote an existing account (and set its password)."""
    errors = FieldErrors()
    email = clean_email(email, errors)
    clean_password(password, errors, email=email)
    name = clean_display_name(display_name, errors)
    if errors:
        raise ValidationFailed("; ".join(errors.values()), errors=errors)
    user = await user_by_email(session, email=email)
    if user is None:
        user = User(
            email=email,
            display_name=name,
            timezone=timezone,
            locale=get_settings().default_locale,
            password_hash="",
        )
        session.add(user)
    user.role = Role.admin
    user.password_hash = password_hash(password)
    user.email_verified_at = user.email_verified_at or utcnow()
    user.auth_version = (user.auth_version or 1) + 1
    await session.flush()
    return user


async def user_count(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(User))).scalar_one()


def require_user(user: User | None) -> User:
    if user is None:
        raise NotFound(_("We could not find that account."))
    return user


async def _reindex_profile_of(session: AsyncSession, user: User) -> None:
    """A tutor's ban or unban hides or shows the profile in search: re-index it after commit."""
    from marketplace.ports import search_indexer
    from marketplace.tutors.models import TutorProfile

    profile_id = (
        await session.execute(select(TutorProfile.id).where(TutorProfile.user_id == user.id))
    ).scalar_one_or_none()
    if profile_id is not None:
        search_indexer().schedule(session, profile_id)


async def user_ban(session: AsyncSession, *, admin: User, user_id: uuid.UUID, reason: str) -> User:
    """Ban an account: every session ends at once (auth version raised) and log-in is refused."""
    from marketplace.audit import audit_reason, audit_record
    from marketplace.errors import Forbidden

    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(_("We could not find that account."))
    if user.id == admin.id:
        raise Forbidden(_("You cannot ban yourself."))
    reason = audit_reason(reason)
    if user.banned_at is not None:
        return user
    before = {"banned_at": None, "auth_version": user.auth_version}
    user.banned_at = utcnow()
    user.auth_version += 1
    await _reindex_profile_of(session, user)
    await audit_record(
        session,
        actor_id=admin.id,
        action="user.ban",
        target_type="user",
        target_id=user.id,
        before=before,
        after={"banned_at": user.banned_at.isoformat(), "auth_version": user.auth_version},
        reason=reason,
    )
    return user


async def user_unban(session: AsyncSession, *, admin: User, user_id: uuid.UUID, reason: str) -> User:
    from marketplace.audit import audit_record

    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(_("We could not find that account."))
    if user.banned_at is None:
        return user
    before = {"banned_at": user.banned_at.isoformat()}
    user.banned_at = None
    await _reindex_profile_of(session, user)
    await audit_record(
        session,
        actor_id=admin.id,
        action="user.unban",
        target_type="user",
        target_id=user.id,
        before=before,
        after={"banned_at": None},
        reason=(reason or "").strip()[:1000] or None,
    )
    return user
